"""`bigtrain plot RUN_OR_SWEEP_DIR [--metric M] [--out PNG]`: curves (and search scatter)."""

from __future__ import annotations

from pathlib import Path

import typer

from bigtrain.cli.params import existing_dir


def plot_cmd(
    path: Path = typer.Argument(..., help="A run dir, a sweep dir, or a dir of runs.",
                                metavar="RUN_OR_SWEEP_DIR", callback=existing_dir),
    metric: str = typer.Option("loss", "--metric", help="A metric, as x or val_x alike: "
                               "training x on the left, validation val_x on the right."),
    out: Path | None = typer.Option(None, "--out", help="PNG path (default: "
                                    "DIR/plot_<metric>.png)."),
) -> None:
    """Write training and validation curves, one line per run, labelled by the overrides that
    differ; losses get limits that leave out outliers. For a search also the
    monitored metric against each searched parameter (DIR/plot_<metric>_params.png)."""
    from bigtrain.cli.errors import reported
    from bigtrain.run.plots import plot

    with reported():
        written = plot(path, metric, out)
    for p in written:
        typer.echo(f"wrote {p}")


def register(app: typer.Typer) -> None:
    app.command("plot")(plot_cmd)
