"""Arguments shared by the commands, checked by Typer before a command runs.

A value Typer refuses is a usage error: exit status 2, with the parameter named. The
callbacks below keep bigtrain's wording ("x does not exist", "'x' is not one of a, b") where
Typer's own `exists=True` and Enum messages would quote and word it differently.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from typer.models import ArgumentInfo, OptionInfo

OVERRIDES = typer.Argument(None, metavar="[OVERRIDES]...",
                           help="Hydra overrides, as for `bigtrain fit`")
CONFIG_DIR = typer.Option(None, "--config-dir", "-cd",
                          help="An extra config directory to search first")


def existing_dir(path: Path) -> Path:
    """Typer callback: `path` must be a directory that exists."""
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    if not path.is_dir():
        raise typer.BadParameter(f"{path} is not a directory")
    return path


def one_of(*choices: str) -> Callable[[str], str]:
    """Typer callback: the value must be one of `choices`."""

    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


def choice(default: str, name: str, choices: tuple[str, ...], help: str) -> OptionInfo:
    """An option that takes one of `choices`: listed in --help, completed, checked by Typer."""
    return typer.Option(default, name, help=help, metavar="|".join(choices),
                        callback=one_of(*choices), autocompletion=lambda: list(choices))


def run_dir_argument(help: str = "A run dir written by `bigtrain fit`") -> ArgumentInfo:
    """RUN_DIR: a directory that exists."""
    return typer.Argument(..., metavar="RUN_DIR", help=help, callback=existing_dir)


#: --checkpoint of eval, export, predict and generate: best by default, latest, or a path
CHECKPOINT = typer.Option(
    "auto", "--checkpoint", metavar="auto|best|latest|PATH",
    help="Which checkpoint: auto (the best, or the latest when the validation split is too "
         "small to choose by), best (by trainer.monitor; the latest when the run has no best "
         "yet), latest, or a path (a ckpt-N prefix, or a directory of checkpoints)")
