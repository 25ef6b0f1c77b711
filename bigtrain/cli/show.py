"""`bigtrain show`: the composed, validated config as a tree."""

from __future__ import annotations

from typing import Any

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import CONFIG_DIR, OVERRIDES


def _tree(node: Any, label: str) -> Any:
    from rich.tree import Tree

    tree = Tree(label)

    def add(parent: Any, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, dict):
                    add(parent.add(f"[bold]{k}[/bold]"), v)
                else:
                    parent.add(f"{k}: [cyan]{v!r}[/cyan]")

    add(tree, node)
    return tree


def show(
    overrides: list[str] | None = OVERRIDES,
    config_dir: str | None = CONFIG_DIR,
) -> None:
    """Print the composed, validated and resolved config of a run."""
    from omegaconf import OmegaConf
    from rich.console import Console

    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.checks import check_required
    from bigtrain.config.schema import to_typed

    with reported():
        cfg = compose(overrides or [], config_dir)
        check_required(cfg)  # a key left required: named with what it is for, as validate does
        to_typed(cfg)
        resolved = OmegaConf.to_container(cfg, resolve=True)
    Console().print(_tree(resolved, "[bold]bigtrain fit[/bold] " + " ".join(overrides or [])))


def register(app: typer.Typer) -> None:
    app.command("show")(show)
