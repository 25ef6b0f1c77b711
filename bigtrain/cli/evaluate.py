"""`bigtrain eval RUN_DIR`: metrics of a finished (or running) run's checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from bigtrain.cli.errors import reported


def evaluate(
    run_dir: Path = typer.Argument(..., help="A run dir written by `bigtrain fit`"),
    split: str = typer.Option("val", "--split", help="val or test (or train)"),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="latest or best"),
) -> None:
    """Evaluate a checkpoint on a split; print a table and write eval_<split>_<ckpt>.json."""
    from rich.console import Console
    from rich.table import Table

    from bigtrain.config.errors import ConfigError, check_choice

    with reported():
        check_choice("--split", split, ["val", "test", "train"])
        check_choice("--checkpoint", checkpoint, ["latest", "best"])
        if not run_dir.is_dir():
            raise ConfigError("RUN_DIR", f"{run_dir} does not exist")
        from bigtrain.logs import quiet_tensorflow
        from bigtrain.train.restore import evaluate_run

        quiet_tensorflow()
        result = evaluate_run(run_dir, split, checkpoint)
    table = Table(title=f"{run_dir} · {checkpoint} checkpoint (step {result['step']}) · {split}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result["metrics"].items():
        table.add_row(k, f"{v:.6g}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
