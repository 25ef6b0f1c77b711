"""Sweep results: a table of every job of a multirun, kept up to date as jobs finish.

A Hydra callback (configured in fit.yaml) rewrites `sweep_summary.csv` and `sweep_summary.json`
in the sweep dir after every job, from the jobs' own summary.json files, so a crashed or failed
sweep still has its table; `bigtrain fit` prints the table when the multirun ends. Columns:
the job number, the overrides that differ between jobs, status, dataset, best and final
`trainer.monitor` and the baseline of that metric (what a model-free guess scores), steps, wall
time; the best completed job of each dataset and monitor is marked, and a validation split too
small to choose by is said under the table.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bigtrain.core import files, hooks
from bigtrain.run import rundir
from bigtrain.run.folds import shown_spread

log = logging.getLogger("bigtrain")


def _overrides(job_dir: Path) -> dict[str, str]:
    try:
        items = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        return {}
    return dict(item.split("=", 1) for item in items if "=" in item)


MAX_OVERRIDE_COLUMNS = 6
#: overrides that identify a search trial, not a setting: never a table column
HIDDEN_PREFIXES = ("trainer.trial.",)


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job dir that has a summary.json, in job order."""
    jobs = sorted((d for d in Path(sweep_dir).iterdir() if d.is_dir() and d.name.isdigit()),
                  key=lambda d: int(d.name))
    return rows_for(jobs, [int(d.name) for d in jobs])


def find_runs(root: Path) -> list[Path]:
    """Every run dir under `root` (a dir holding summary.json), in path order; the folds of a
    cross-validated run are its parts, not runs to compare with it (unless asked for)."""
    root = Path(root)
    found = {p.parent for p in root.rglob("summary.json") if "checkpoints" not in p.parts}
    folded = {d for d in found if (rundir.read_summary(d) or {}).get("folds")}
    found = {d for d in found if d == root or d.parent not in folded}
    return sorted(found, key=lambda p: [int(x) if x.isdigit() else x for x in p.parts])


def rows_for(dirs: list[Path], labels: list) -> list[dict[str, Any]]:
    """One row per run dir with a summary.json: overrides that differ, status, metrics."""
    rows, all_overrides = [], []
    for d, label in zip(dirs, labels, strict=True):
        summary = rundir.read_summary(d)
        if summary is None:
            continue
        monitor = summary.get("monitor") or "val_loss"
        rows.append({"job": label, "status": summary.get("status"),
                     "dataset": _dataset(d), "monitor": monitor,
                     "best": summary.get("best", {}).get(monitor),
                     "final": summary.get("final", {}).get(monitor),
                     "steps": summary.get("steps"), "wall_s": summary.get("wall_s"),
                     "error": summary.get("error", ""), "run_dir": str(d),
                     "baseline": _baseline(summary, monitor),
                     # k-fold cross-validation (dataset.folds): best and final are means
                     "spread": summary.get("spread", {}).get(monitor),
                     "too_small": _too_small_to_choose(d),
                     "metrics": {k: v for k, v in summary.get("final", {}).items()
                                 if isinstance(v, int | float)}})
        all_overrides.append({k: v for k, v in _overrides(d).items()
                              if not k.startswith(HIDDEN_PREFIXES)})
    keys = sorted({k for o in all_overrides for k in o})
    varying = [k for k in keys if len({o.get(k) for o in all_overrides}) > 1]
    for row, o in zip(rows, all_overrides, strict=True):
        row["overrides"] = {k: o.get(k, "") for k in varying}
    _mark_best(rows)
    return rows


def _baseline(summary: dict[str, Any], monitor: str) -> float | None:
    """The final baseline of the monitored metric (val_baseline_mae for val_mae), if any."""
    split, _, metric = monitor.partition("_")
    if split not in ("val", "test"):
        return None
    value = summary.get("final", {}).get(f"{split}_baseline_{metric}")
    return value if isinstance(value, int | float) else None


def _too_small_to_choose(run_dir: Path) -> str | None:
    """Why the run's validation split is too small to rank runs by, or None."""
    from bigtrain.core.errors import ConfigError
    from bigtrain.data import preprocess
    from bigtrain.data.spec import too_small_to_choose

    try:
        pre = preprocess.read(run_dir)
    except ConfigError:
        return None
    return too_small_to_choose(preprocess.spec_of(pre)) if pre else None


def _dataset(run_dir: Path) -> str:
    """What a run trained on, as far as comparing results goes: the source and its path."""
    data = (rundir.read_config(run_dir) or {}).get("dataset") or {}
    name, path = data.get("name"), data.get("path")
    if name is None:
        return ""
    return f"{name} {path}" if path else str(name)


def _mark_best(rows: list[dict[str, Any]]) -> None:
    """The best completed run of each group of runs that share dataset and monitor: results
    of different data, or of different metrics, are not compared."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        r["is_best"] = False
        if r["status"] == "completed" and isinstance(r["best"], float) and \
                math.isfinite(r["best"]):
            groups.setdefault((r.get("dataset", ""), r["monitor"]), []).append(r)
    for (_, monitor), done in groups.items():
        pick = min if hooks.resolve_mode(monitor, "auto") == "min" else max
        pick(done, key=lambda r: r["best"])["is_best"] = True


def write(sweep_dir: Path, rows: list[dict[str, Any]]) -> None:
    rows = [{k: v for k, v in r.items() if k != "metrics"} for r in rows]
    files.atomic_write_text(Path(sweep_dir) / "sweep_summary.json",
                           json.dumps(rows, indent=2) + "\n")
    buf = io.StringIO()
    varying = list(rows[0]["overrides"]) if rows else []
    fields = ["job", *varying, "status", "dataset", "monitor", "best", "final", "spread",
              "baseline", "steps", "wall_s", "is_best", "too_small", "error"]
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for r in rows:
        w.writerow({**{k: r.get(k) for k in fields if k not in varying}, **r["overrides"]})
    files.atomic_write_text(Path(sweep_dir) / "sweep_summary.csv", buf.getvalue())


def show(rows: list[dict[str, Any]], title: str | None = None, stderr: bool = True,
         extra: tuple[str, ...] = ()) -> None:
    """The rich table; `extra` adds columns of final metrics (e.g. the sort key). Runs of
    several datasets or monitors get a column for each, and a best (*) per group."""
    from rich.table import Table

    if not rows:
        return
    varying = list(rows[0]["overrides"])
    joined = len(varying) > MAX_OVERRIDE_COLUMNS  # many runs of many kinds: one text column
    monitors = {r["monitor"] for r in rows}
    group_cols = [c for c, many in (("dataset", len({r.get("dataset") for r in rows}) > 1),
                                    ("monitor", len(monitors) > 1)) if many]
    headers = {"dataset": "data"}  # an override column may be called `dataset` already
    small = next((r["too_small"] for r in rows if r.get("too_small")), None)
    notes = ["* best of its dataset and monitor"] if group_cols else []
    if small:
        notes.append(f"{small}: too small to choose by, the * may be noise "
                     "(dataset.folds=k cross-validates)")
    table = Table(title=title or f"sweep: {len(rows)} jobs"
                  + (f", monitor {rows[0]['monitor']}" if len(monitors) == 1 else ""),
                  caption="; ".join(notes) or None)
    for col in ["job", *(["overrides"] if joined else varying),
                *(headers.get(c, c) for c in group_cols), "status", "best", "final",
                "baseline", *extra, "steps", "wall s"]:
        table.add_column(col)
    for r in rows:
        values = (r["best"], r["final"], r.get("baseline"),
                  *(r.get("metrics", {}).get(k) for k in extra))
        fmt = [f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))
               for v in values]
        if isinstance(r.get("spread"), float):  # the mean over folds, and their spread
            fmt[1] += f" ± {shown_spread(r['spread'])}"
        table.add_row(f"{r['job']}{' *' if r['is_best'] else ''}",
                      *([" ".join(f"{k}={v}" for k, v in r["overrides"].items() if v)]
                        if joined else [r["overrides"][k] for k in varying]),
                      *(str(r.get(c) or "") for c in group_cols),
                      str(r["status"]), *fmt,
                      str(r["steps"]), f"{r['wall_s']:.1f}" if r["wall_s"] else "")
    _console(stderr).print(table)


def _console(stderr: bool):
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:  # logs and pipes: wide enough that no cell is cut
        console.width = 200
    return console


class SweepSummary(Callback):
    """Keeps sweep_summary.csv/json current after each job; prints the table at the end."""

    def _sweep_dir(self, config: DictConfig) -> Path | None:
        try:
            return Path(config.hydra.sweep.dir)
        except Exception:  # a single run's config: nothing to summarize
            return None

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if str(config.hydra.mode) != "RunMode.MULTIRUN":
            return
        sweep_dir = self._sweep_dir(config)
        if sweep_dir is not None and sweep_dir.is_dir():
            write(sweep_dir, collect(sweep_dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _current
        _current = self._sweep_dir(config)
        if _current is not None:
            from bigtrain.core.console import shown_path

            log.info("sweep dir: %s (one run dir per job; table: sweep_summary.csv)",
                     shown_path(_current))


#: the sweep dir of the multirun this process launched, for `finish` (set by the callback in
#: the launching process: Hydra skips on_multirun_end when a job failed)
_current: Path | None = None


def finish() -> None:
    """After a multirun, failed or not: write the final table and print it."""
    global _current
    sweep_dir, _current = _current, None
    if sweep_dir is None or not sweep_dir.is_dir():
        return
    rows = collect(sweep_dir)
    if rows:
        from bigtrain.core.console import shown_path

        write(sweep_dir, rows)
        show(rows)
        _console(stderr=True).print(f"sweep dir: {shown_path(sweep_dir)}; table: "
                                    f"{shown_path(sweep_dir / 'sweep_summary.csv')} (and .json)",
                                    soft_wrap=True, highlight=False)
