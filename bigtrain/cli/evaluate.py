"""`bigtrain eval RUN_DIR`: metrics of a finished (or running) run's checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import CHECKPOINT, choice, run_dir_argument


def evaluate(
    run_dir: Path = run_dir_argument(),
    split: str = choice("val", "--split", ("val", "test", "train"), "The split to evaluate"),
    checkpoint: str = CHECKPOINT,
    data: Path | None = typer.Option(
        None, "--data", help="Evaluate on this labelled data instead of a split (the training "
        "format: a CSV with the label column, a folder of class folders), read with the "
        "run's preprocessing"),
    watch: bool = typer.Option(False, "--watch", help="Evaluate each new checkpoint as a "
                               "running `bigtrain fit` writes it (into eval_watch_<split>.jsonl "
                               "and tb/eval_<split>); ends when the run ends"),
    interval: float = typer.Option(5.0, "--interval", min=0.1,
                                   help="--watch: seconds between looks for a new checkpoint"),
    task: list[Path] | None = typer.Option(
        None, "--task", help="Score a language model's answers on a JSONL task file instead "
        "(repeatable): lines with prompt+response (perplexity), prompt+choices+answer index "
        "(choice accuracy by log-likelihood), or prompt+answer text (exact match of the "
        "greedy answer)"),
    shots: int = typer.Option(0, "--shots", help="--task: earlier lines of the same file "
                              "shown first as examples (few-shot)"),
    template: str = typer.Option("auto", "--template", help="--task: the prompt format: auto "
                                 "(the run's chat template, raw text if it has none), none, "
                                 "chatml, llama3, gemma, plain, or a .jinja file"),
    max_new: int = typer.Option(32, "--max-new", help="--task: the longest greedy answer "
                                "(exact), in tokens"),
) -> None:
    """Evaluate a checkpoint on a split; print a table and write eval_<split>_<ckpt>.json.
    With --task, score its answers on task files instead (eval_task_<names>_<ckpt>.json)."""
    from rich.console import Console
    from rich.table import Table

    if task:
        with reported():
            from bigtrain.core.tensorflow_start import quiet_tensorflow
            from bigtrain.inference.task_eval import evaluate_tasks

            quiet_tensorflow()
            result = evaluate_tasks(run_dir, task, checkpoint, shots, template, max_new)
        console = Console()
        console.print(f"{run_dir} · {result['checkpoint_kind']} checkpoint "
                      f"{Path(result['checkpoint']).name} (step {result['step']}) · template "
                      f"{result['template']} · {shots}-shot", soft_wrap=True,
                      highlight=False, markup=False)
        table = Table(title="task metrics")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in result["metrics"].items():
            table.add_row(k, f"{v:.6g}")
        console.print(table)
        return

    if watch:
        with reported():
            from bigtrain.core.tensorflow_start import quiet_tensorflow
            from bigtrain.inference.watch import watch as watch_run

            quiet_tensorflow()
            watch_run(run_dir, split, interval)
        return
    with reported():
        from bigtrain.core.tensorflow_start import quiet_tensorflow
        from bigtrain.inference.restore import evaluate_run

        quiet_tensorflow()
        result = evaluate_run(run_dir, split, checkpoint, data)
    which = "checkpoint" if result["checkpoint_kind"] == "path" else \
        f"{result['checkpoint_kind']} checkpoint"
    on = split if data is None else f"{data} ({result['examples']} examples)"
    # what was evaluated, as a line of its own: a table wraps its title to its own width
    console = Console()
    console.print(f"{run_dir} · {which} {Path(result['checkpoint']).name} "
                  f"(step {result['step']}) · {on}", soft_wrap=True, highlight=False,
                  markup=False)
    table = Table(title=f"{split if data is None else 'data'} metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result["metrics"].items():
        table.add_row(k, f"{v:.6g}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
