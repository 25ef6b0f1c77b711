"""`bigtrain ls [GROUP]`: config groups and their options, described by their YAML headers.

A group with a registry lists the options whose schema it knows (bigtrain/core/registry.py); an
option that shares another's schema says which (`mnist` is a `tfds` dataset)."""

from __future__ import annotations

import typer

from bigtrain.cli.errors import reported
from bigtrain.config.catalog import catalog, defaults

HIDDEN = {"hydra"}  # Hydra's own groups are listed by `bigtrain fit --info`


def ls(group: str | None = typer.Argument(None, help="Show only this group, e.g. model")) -> None:
    """List the config groups and their options (the default marked *)."""
    from rich.console import Console
    from rich.table import Table

    from bigtrain.core.errors import ConfigError

    with reported():
        from bigtrain.config.schema import REGISTRIES, option_schemas

        groups = {g: opts for g, opts in catalog().items() if g.split("/")[0] not in HIDDEN}
        schemas = option_schemas()
        for g in list(groups):
            registry = REGISTRIES.get(g.split("/")[0])
            if registry is None:
                continue
            known = {o: s for (gg, o), s in schemas.items() if gg == g}
            if not known:  # a group of presets over another's keys (model/size): all listed
                continue
            groups[g] = {o: _with_schema(d, known[o], o) for o, d in groups[g].items()
                         if o in known}
        if group is not None and group not in groups:
            raise ConfigError("GROUP", f"no config group {group!r}. Available: "
                              + ", ".join(sorted(groups)))
        chosen = defaults()
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("group")
        table.add_column("option")
        table.add_column("description")
        for g in sorted(groups):
            if group is not None and g != group:
                continue
            for i, (opt, desc) in enumerate(sorted(groups[g].items())):
                mark = "*" if opt in chosen.get(g, "").split(",") else ""
                table.add_row(g if i == 0 else "", f"{opt}{mark}", desc)
        console = Console()
        if not console.is_terminal:  # piped: one line per option, for grep and scripts
            console = Console(width=250)
        console.print(table)


def _with_schema(description: str, schema: type, option: str) -> str:
    from bigtrain.core.registry import option_of

    base = option_of(schema)
    return f"{description} (schema: {base})" if base not in (option, "schedule") else description


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
