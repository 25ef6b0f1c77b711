"""`bigtrain plot`: training and validation curves of one run or of every run of a sweep, and
for a search the monitored metric against each searched parameter. Matplotlib, Agg backend."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bigtrain import rundir, sweep_table
from bigtrain.config.errors import ConfigError


def _curves(run_dir: Path, metric: str) -> tuple[list, list, list, list]:
    """(steps, train values, eval steps, val values) of `metric` from metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    ts, tv, vs, vv = [], [], [], []
    if not path.exists():
        return ts, tv, vs, vv
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r.get(metric), int | float) and "step" in r:
            ts.append(r["step"])
            tv.append(r[metric])
        if isinstance(r.get(f"val_{metric}"), int | float) and "step" in r:
            vs.append(r["step"])
            vv.append(r[f"val_{metric}"])
    return ts, tv, vs, vv


def _label(row: dict[str, Any]) -> str:
    text = " ".join(f"{k}={v}" for k, v in row["overrides"].items() if v)
    return (text or str(row["job"]))[:60]


def _searched(rows: list[dict[str, Any]], root: Path) -> list[str]:
    """The parameters of a search (optuna_best.json in the sweep dir), else none."""
    best = root / "optuna_best.json"
    if not best.exists():
        return []
    try:
        data = json.loads(best.read_text())
        return sorted({k for b in data.get("best", []) for k in b.get("params", {})})
    except ValueError:
        return []


def plot(path: Path, metric: str = "loss", out: Path | None = None) -> list[Path]:
    """Write the curves PNG (and for a search the parameters PNG); return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if not path.exists():
        raise ConfigError("RUN_OR_SWEEP_DIR", f"{path} does not exist")
    dirs = sweep_table.find_runs(path)
    if not dirs:
        raise ConfigError("RUN_OR_SWEEP_DIR", f"no runs under {path} (a run dir holds "
                          "summary.json)")
    rows = sweep_table.rows_for(dirs, [str(d.relative_to(path)) if d != path else d.name
                                  for d in dirs])
    curves = {r["run_dir"]: _curves(Path(r["run_dir"]), metric) for r in rows}
    if not any(c[1] or c[3] for c in curves.values()):
        raise ConfigError("--metric", f"no run under {path} logged {metric!r} or "
                          f"'val_{metric}' (try loss, accuracy, perplexity, mae)")
    params = _searched(rows, path)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), squeeze=False)
    ax_train, ax_val = axes[0]
    for r in rows:
        ts, tv, vs, vv = curves[r["run_dir"]]
        label = _label(r) if len(rows) > 1 else None
        if ts:
            ax_train.plot(ts, tv, label=label, linewidth=1.2)
        if vs:
            ax_val.plot(vs, vv, marker="o", markersize=3, label=label, linewidth=1.2)
    for ax, title in ((ax_train, f"train {metric}"), (ax_val, f"val {metric}")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    if 1 < len(rows) <= 12:
        ax_val.legend(fontsize=7, loc="best")
    fig.suptitle(f"{path} ({len(rows)} run{'s' if len(rows) > 1 else ''})", fontsize=10)
    fig.tight_layout()
    out = Path(out) if out else (path / f"plot_{metric}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    written = [out]
    if params:
        written.append(_plot_params(rows, params, out.with_name(out.stem + "_params.png"), plt))
    return written


def _plot_params(rows: list[dict[str, Any]], params: list[str], out: Path, plt) -> Path:
    """The monitored best value of every finished trial against each searched parameter."""
    done = [r for r in rows if r["status"] in rundir.FINISHED and isinstance(r["best"], float)]
    fig, axes = plt.subplots(1, len(params), figsize=(4.5 * len(params), 4), squeeze=False)
    monitor = rows[0]["monitor"]
    for ax, p in zip(axes[0], params, strict=True):
        xs, ys, colors = [], [], []
        for r in done:
            v = r["overrides"].get(p)
            if v is None:
                continue
            xs.append(v)
            ys.append(r["best"])
            colors.append("tab:gray" if r["status"] == "pruned" else "tab:blue")
        numeric = all(_is_number(x) for x in xs)
        if numeric and xs:
            values = [float(x) for x in xs]
            ax.scatter(values, ys, c=colors, s=25)
            if min(values) > 0 and max(values) / min(values) > 100:
                ax.set_xscale("log")
        elif xs:
            cats = sorted(set(xs))
            ax.scatter([cats.index(x) for x in xs], ys, c=colors, s=25)
            ax.set_xticks(range(len(cats)), cats, rotation=20, fontsize=7)
        ax.set_xlabel(p)
        ax.set_ylabel(f"best {monitor}")
        ax.grid(alpha=0.3)
    fig.suptitle("search: best value per trial (gray: pruned)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _is_number(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
