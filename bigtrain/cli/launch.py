"""`bigtrain launch --workers N -- COMMAND`: one multi-worker job as N local processes."""

from __future__ import annotations

import typer

EXAMPLE = "bigtrain launch --workers 2 -- bigtrain fit strategy=multi_worker model=mlp"


def _command(value: list[str] | None) -> list[str]:
    if not value:
        raise typer.BadParameter("give the command after --, e.g. -- bigtrain fit "
                                 "strategy=multi_worker")
    return list(value)


def launch_cmd(
    command: list[str] | None = typer.Argument(
        None, metavar="COMMAND", callback=_command, show_default=False,
        help="After --, the command every worker runs, e.g. bigtrain fit strategy=multi_worker"),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes"),
    timeout: float | None = typer.Option(None, "--timeout", min=0,
                                         help="Seconds for the whole job (exit 124 after)"),
) -> None:
    """Run a multi-worker job on this machine: free ports, one TF_CONFIG per worker, output
    prefixed with the worker's index; a `bigtrain fit` without hydra.run.dir= gets one shared
    run dir. If a worker fails the others are stopped; the exit status is the first non-zero
    one."""
    from bigtrain.run.launch import launch

    status = launch(command or [], workers, timeout)
    raise typer.Exit(status)


def register(app: typer.Typer) -> None:
    app.command(
        "launch",
        epilog=f"Example: {EXAMPLE}",
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    )(launch_cmd)
