"""`bigtrain predict RUN_DIR INPUT...`: a trained model's answers for raw inputs.

The inputs go through the run's preprocessing.json inside the graph (bigtrain.inference.serving, the
functions its SavedModel exports): CSV/Parquet rows with the training columns, image files,
folders or globs, text files or stdin lines. No training data is read.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import CHECKPOINT, choice, run_dir_argument


def predict(
    run_dir: Path = run_dir_argument(),
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT...",
        help="CSV/Parquet files with the training columns (a label column adds accuracy), "
             "image files, folders or globs, text files; - reads stdin (CSV rows for tables, "
             "one text per line)"),
    out: Path | None = typer.Option(
        None, "--out", help="Write FILE.csv or FILE.jsonl (default: a table on a terminal, "
                            "CSV when piped)"),
    top_k: int = typer.Option(1, "--top-k", min=1,
                              help="List the k likeliest classes with their probabilities"),
    checkpoint: str = CHECKPOINT,
    on_bad: str = choice("fail", "--on-bad", ("fail", "skip"),
                         "A bad input (a missing column, an image that does not decode): "
                         "fail naming it (exit 2), or skip and count it"),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Inputs per model call"),
) -> None:
    """Predict: class names and probabilities (or values) for raw inputs, one row each."""
    with reported():
        from bigtrain.inference import answers, predict
        from bigtrain.inference.inputs import read_inputs

        answers.check_out(out)
        from bigtrain.core.console import CONSOLE
        from bigtrain.core.tensorflow_start import quiet_tensorflow

        quiet_tensorflow()
        if inputs == ["-"] and sys.stdin.isatty():
            typer.echo("reading inputs from stdin (Ctrl-D ends them)", err=True)
        from bigtrain.data import preprocess
        from bigtrain.inference.restore import open_run

        recorded = preprocess.read(run_dir)  # the inputs are read (and checked) first
        data = read_inputs(recorded, inputs, on_bad) if recorded else None
        restored = open_run(run_dir, checkpoint)  # refuses a run dir without preprocessing.json
        result = predict.run(restored, data, batch_size, on_bad,
                             progress=CONSOLE.is_terminal and len(data) > 4 * batch_size)
        rows = answers.rows_of(restored.preprocessing, result, top_k)
        answers.write_rows(rows, out, terminal=sys.stdout.isatty())
        score = answers.scores(restored.preprocessing, rows)
    n = len(rows)
    rate = n / result.seconds if result.seconds > 0 else float("inf")
    line = (f"predicted {n} input(s) with the {restored.describe()}: {result.seconds:.2f} s, "
            f"{rate:,.0f}/s")
    if "accuracy" in score:
        line += f"; accuracy {score['accuracy']:.4f} on the {score['labelled']} with a label"
    elif "mae" in score:
        line += f"; MAE {score['mae']:.4g}, RMSE {score['rmse']:.4g} on the " \
                f"{score['labelled']} with a label"
    if out is not None:
        line += f"; written to {out}"
    typer.echo(line, err=True)
    if score.get("unknown_labels"):
        typer.echo("labels that are not among the run's classes (counted as wrong): "
                   + ", ".join(map(repr, score["unknown_labels"])), err=True)
    if result.skipped:
        typer.echo(f"left out {result.skipped} bad input(s) (--on-bad skip), e.g. "
                   + "; ".join(result.bad[:3]), err=True)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
