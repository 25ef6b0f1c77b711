"""`bigtrain fit`: train, through Hydra's own parser and dispatcher."""

from __future__ import annotations

import typer

from bigtrain.cli.errors import reported

EPILOG = """
[bold]Examples[/bold]

  bigtrain fit                                   [dim]# digits + cnn + adam[/dim]

  bigtrain fit model=mlp optim=sgd optim.lr=0.1  [dim]# pick options, set values[/dim]

  bigtrain fit debug=smoke                       [dim]# a few steps, for CI[/dim]

  bigtrain fit -m optim=adam,sgd optim.lr=1e-3,1e-2   [dim]# a sweep: 4 jobs[/dim]

  bigtrain fit --cfg job --resolve               [dim]# print the config, run nothing[/dim]

  bigtrain fit -h                                [dim]# Hydra's help: groups and options[/dim]

  bigtrain resume outputs/2024-05-01/12-00-00    [dim]# continue a stopped run[/dim]

Every Hydra flag works: -m, --cfg, --resolve, --info, -cd, -cn, +key=v, ~key,
hydra/launcher=..., hydra.run.dir=... A refused command (a config mistake, a run dir in use or
holding another config's run) leaves the run dir as it was. Exit status: 0 ok, 1 the run
failed, 2 a config mistake, 75 preempted (checkpoint written: `bigtrain resume RUN_DIR`
continues it), 130 interrupted.
"""


def complete_overrides(ctx: typer.Context, incomplete: str) -> list[str]:
    from bigtrain.cli.hydra_glue import complete

    previous = list(ctx.params.get("overrides") or [])
    return complete(previous, incomplete)


def fit(
    overrides: list[str] | None = typer.Argument(
        None,
        metavar="[OVERRIDES]...",
        help="Hydra overrides and flags, e.g. model=mlp optim.lr=0.01 -m trainer.seed=0,1",
        autocompletion=complete_overrides,
    ),
) -> None:
    """Train a model from the composed config; with -m, run a sweep."""
    from bigtrain.cli.hydra_glue import dispatch
    from bigtrain.run.task import fit_task

    args = overrides or []
    with reported():
        _check_run_dir(args)
        try:
            dispatch(args, fit_task)
        finally:
            from bigtrain.run import sweep_table

            sweep_table.finish()


def _check_run_dir(args: list[str]) -> None:
    """An explicit hydra.run.dir that a live run holds, or that cannot be written: refuse
    before Hydra writes into it (the task takes the lock itself; this keeps the live run's
    .hydra/ files, and names a read-only or full disk before Hydra's logging set-up trips)."""
    from bigtrain.strategy import cluster

    if any(a in ("-m", "--multirun") for a in args) or not cluster.role("multi_worker").chief:
        return  # sweeps lock per job; another worker of a multi-worker job shares the dir
    for a in args:
        if a.startswith("hydra.run.dir="):
            from pathlib import Path

            from bigtrain.run.lock import check_free

            run_dir = Path(a.split("=", 1)[1]).expanduser()
            check_free(run_dir)
            check_writable(run_dir)


def check_writable(run_dir) -> None:
    """An existing run dir that cannot be written: refused in one line (before Hydra)."""
    import tempfile

    from bigtrain.core.errors import ConfigError

    if not run_dir.is_dir():
        return
    try:
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as ex:
        raise ConfigError("hydra.run.dir", f"{run_dir} cannot be written ({ex.strerror}); "
                          "free space, fix permissions, or choose another dir") from None


def register(app: typer.Typer) -> None:
    app.command(
        "fit",
        epilog=EPILOG,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": False},
    )(fit)
