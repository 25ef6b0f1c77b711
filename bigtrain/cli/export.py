"""`bigtrain export RUN_DIR --format savedmodel|keras`: a model to serve or load elsewhere."""

from __future__ import annotations

from pathlib import Path

import typer

from bigtrain.cli.errors import reported


def export(
    run_dir: Path = typer.Argument(..., help="A run dir written by `bigtrain fit`"),
    fmt: str = typer.Option("savedmodel", "--format", help="savedmodel or keras"),
    out: Path | None = typer.Option(None, "--out",
                                    help="Where to write (default: RUN_DIR/export/)"),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="latest or best"),
) -> None:
    """Export a checkpoint as a TensorFlow SavedModel (signature `serve`) or a .keras file."""
    from bigtrain.config.errors import ConfigError, check_choice

    with reported():
        check_choice("--format", fmt, ["savedmodel", "keras"])
        check_choice("--checkpoint", checkpoint, ["latest", "best"])
        if not run_dir.is_dir():
            raise ConfigError("RUN_DIR", f"{run_dir} does not exist")
        from bigtrain.logs import quiet_tensorflow
        from bigtrain.train.restore import export_run

        quiet_tensorflow()
        path = export_run(run_dir, fmt, out, checkpoint)
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command("export")(export)
