"""Arguments shared by the commands that compose a config (show, validate, info)."""

from __future__ import annotations

import typer

OVERRIDES = typer.Argument(None, metavar="[OVERRIDES]...",
                           help="Hydra overrides, as for `bigtrain fit`")
CONFIG_DIR = typer.Option(None, "--config-dir", "-cd",
                          help="An extra config directory to search first")
