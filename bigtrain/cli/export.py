"""`bigtrain export RUN_DIR --format savedmodel|keras`: a model to serve or load elsewhere."""

from __future__ import annotations

from pathlib import Path

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import CHECKPOINT, choice, run_dir_argument


def export(
    run_dir: Path = run_dir_argument(),
    fmt: str = choice("savedmodel", "--format", ("savedmodel", "keras"),
                      "A TensorFlow SavedModel or a .keras file"),
    out: Path | None = typer.Option(None, "--out",
                                    help="Where to write (default: RUN_DIR/export/)"),
    checkpoint: str = CHECKPOINT,
) -> None:
    """Export a checkpoint as a TensorFlow SavedModel (signature `serve`) or a .keras file."""
    with reported():
        from bigtrain.logs import quiet_tensorflow
        from bigtrain.train.restore import export_run

        quiet_tensorflow()
        path = export_run(run_dir, fmt, out, checkpoint)
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command("export")(export)
