"""`bigtrain runs [DIR] [--sort METRIC] [--where EXPR]`: the table of every run under DIR."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import typer

from bigtrain.cli.params import existing_dir

WHERE = re.compile(r"^\s*([\w.\-/+]+)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$")
COLUMNS = ("status", "best", "final", "steps", "wall_s", "job")


def _value(row: dict[str, Any], key: str) -> Any:
    if key in row["overrides"]:
        return row["overrides"][key]
    if key in row.get("metrics", {}):
        return row["metrics"][key]
    return row.get(key) if key in COLUMNS else None


def _number(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _matches(row: dict[str, Any], key: str, op: str, wanted: str) -> bool:
    have = _value(row, key)
    if have is None:
        return False
    a, b = _number(have), _number(wanted)
    if op in ("=", "!="):
        same = (a == b) if a is not None and b is not None else str(have) == wanted
        return same if op == "=" else not same
    if a is None or b is None:
        return False
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]


def _where(exprs: list[str] | None) -> list[str]:
    for expr in exprs or []:
        if not WHERE.match(expr):
            raise typer.BadParameter(f"{expr!r} is not KEY OP VALUE with OP one of "
                                     "= != > < >= <=")
    return list(exprs or [])


def runs_cmd(
    path: Path = typer.Argument(Path("."), help="An outputs/ or multirun/ dir, a sweep dir, "
                                "or one run dir.", metavar="DIR",
                                callback=existing_dir),
    sort: str | None = typer.Option(None, "--sort", help="Sort by a metric (val_accuracy, "
                                    "test_loss, ...), an override key, best, final, steps or "
                                    "wall_s. Losses sort ascending, other metrics descending."),
    where: list[str] = typer.Option([], "--where", help="Keep rows where KEY OP VALUE holds "
                                    "(OP: = != > < >= <=), e.g. --where status=completed "
                                    "--where 'val_accuracy>0.9' --where optim=adam. Repeatable.",
                                    callback=_where),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Tabulate runs: overrides that differ, status, best and final monitored metric."""
    from bigtrain.cli.errors import reported
    from bigtrain.core.errors import ConfigError
    from bigtrain.core.hooks import resolve_mode
    from bigtrain.run.sweep_table import _mark_best, find_runs, rows_for, show

    with reported():
        dirs = find_runs(path)
        if not dirs:
            raise ConfigError("DIR", f"no runs under {path} (a run dir holds summary.json)")
        labels = [str(d.relative_to(path)) if d != path else d.name for d in dirs]
        rows = rows_for(dirs, labels)
        filters = [WHERE.match(expr).groups() for expr in where]
        rows = [r for r in rows if all(_matches(r, k, op, v) for k, op, v in filters)]
        extra: tuple[str, ...] = ()
        if sort:
            known = any(_value(r, sort) is not None for r in rows)
            if rows and not known:
                names = sorted({k for r in rows for k in r.get("metrics", {})}
                               | {k for r in rows for k in r["overrides"]} | set(COLUMNS))
                raise ConfigError("--sort", f"{sort!r} is in no run; known: " + ", ".join(names))
            descending = sort not in COLUMNS and resolve_mode(sort, "auto") == "max"

            def key(r: dict[str, Any]) -> tuple:
                v = _value(r, sort)
                n = _number(v)
                if n is None or math.isnan(n):
                    return (1, 0.0, str(v))
                return (0, -n if descending else n, "")

            rows.sort(key=key)
            if any(sort in r.get("metrics", {}) for r in rows):
                extra = (sort,)
        _mark_best(rows)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no runs match", err=True)
        raise typer.Exit(1)
    show(rows, title=f"{len(rows)} run(s) under {path}" + (f", sorted by {sort}" if sort else ""),
         stderr=False, extra=extra)


def register(app: typer.Typer) -> None:
    app.command("runs")(runs_cmd)
