"""`bigtrain resume RUN_DIR [OVERRIDES]`: continue a run in its own dir, from its own record."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import run_dir_argument

EPILOG = """
[bold]Examples[/bold]

  bigtrain resume outputs/2024-05-01/12-00-00      [dim]# continue a stopped run[/dim]

  bigtrain resume runs/lm1 trainer.max_steps=9000  [dim]# train it longer[/dim]

  bigtrain resume multirun/2024-05-01/12-00-00/3   [dim]# one job of a sweep[/dim]

The run continues from its newest checkpoint with the config it recorded
(RUN_DIR/config.yaml), whatever its command's options and -cd dir compose
to now. Overrides may only extend it: trainer.max_steps, trainer.epochs,
the log, eval and checkpoint intervals, patience, display, threads and
logger.*; one that would change the run (model, data, optimizer, seed...)
is refused. A finished run that nothing extends is left as it is (exit 0).
Exit status: 0 ok, 1 the run failed, 2 a mistake (not a run dir, an
override that changes the run, a run dir in use), 75 preempted again
(resume it again), 130 interrupted.
"""


def resume(
    run_dir: Path = run_dir_argument("A run dir written by `bigtrain fit` (a sweep's job: "
                                     "its numbered folder)"),
    overrides: list[str] | None = typer.Argument(
        None, metavar="[OVERRIDES]...",
        help="Keys that extend the run, e.g. trainer.max_steps=2000 trainer.epochs=30"),
) -> None:
    """Continue a stopped run in its own run dir, with the config it recorded."""
    from bigtrain.cli.fit import check_writable
    from bigtrain.cli.hydra_glue import Resumed, dispatch
    from bigtrain.core.console import shown_path
    from bigtrain.run import resume as resuming
    from bigtrain.run.lock import check_free
    from bigtrain.run.task import fit_task
    from bigtrain.strategy import cluster

    given = list(overrides or [])
    with reported():
        if cluster.role("multi_worker").chief:  # the other workers share the chief's dir
            check_free(run_dir)
        plan = resuming.plan(run_dir, given)
        if plan.complete is not None:
            steps = plan.complete.get("steps")
            typer.echo(f"bigtrain: {shown_path(run_dir)} holds a {plan.complete['status']} run "
                       f"({steps} steps); nothing to resume. To train it longer: bigtrain "
                       f"resume {shlex.quote(shown_path(run_dir))} trainer.max_steps=N "
                       "(or trainer.epochs=N)", err=True)
            return
        check_writable(run_dir)
        dispatch([], fit_task, Resumed(str(run_dir), resuming.job_nodes(plan.config),
                                       plan.overrides, plan.choices))


def register(app: typer.Typer) -> None:
    app.command("resume", epilog=EPILOG)(resume)
