"""`bigtrain plot`: training and validation curves of one run or of every run of a sweep, and
for a search the monitored metric against each searched parameter. Matplotlib, Agg backend."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bigtrain.core.errors import ConfigError
from bigtrain.run import rundir, sweep_table


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


def base_metric(metric: str) -> str:
    """`val_accuracy` and `accuracy` name the same curves: the train panel plots `accuracy`,
    the validation panel `val_accuracy`."""
    return metric[len("val_"):] if metric.startswith("val_") else metric


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Each override key by its shortest dotted suffix that no other key shares
    (`optim.schedule.warmup` -> `warmup`)."""
    out = {}
    for k in keys:
        parts = k.split(".")
        for n in range(1, len(parts) + 1):
            short = ".".join(parts[-n:])
            if not any(o != k and (o == short or o.endswith("." + short)) for o in keys):
                out[k] = short
                break
        else:
            out[k] = k
    return out


def labels(rows: list[dict[str, Any]]) -> list[str]:
    """One legend label per run, made of the overrides that differ between the runs (whole:
    a label cut short cannot tell runs apart); runs alike in those are told by their job."""
    keys = list(rows[0]["overrides"]) if rows else []
    short = _short_keys(keys)
    out = [" ".join(f"{short[k]}={v}" for k, v in r["overrides"].items() if v)
           or str(r["job"]) for r in rows]
    for i, text in enumerate(out):
        if out.count(text) > 1:
            out[i] = f"{text} ({rows[i]['job']})" if text != str(rows[i]["job"]) else text
    return out


def _is_loss(metric: str) -> bool:
    return any(w in metric for w in ("loss", "perplexity", "mae", "mse", "error"))


def robust_limits(values: list[float]) -> tuple[float, float] | None:
    """y-limits that leave out outliers (beyond Tukey's far fence, 3 IQR above the third
    quartile), so one spike does not squash every curve; None when there is none."""
    import numpy as np

    v = np.asarray([x for x in values if math.isfinite(x)], np.float64)
    if v.size < 4:
        return None
    q1, q3 = np.percentile(v, [25, 75])
    spread = max(q3 - q1, 1e-12, abs(q3) * 1e-3)
    fence = q3 + 3 * spread
    inside = v[v <= fence]
    if inside.size == v.size or inside.size == 0:
        return None
    lo, hi = float(inside.min()), float(inside.max())
    pad = 0.08 * (hi - lo if hi > lo else abs(hi) or 1.0)
    return lo - pad, hi + pad


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
    """Write the curves PNG (and for a search the parameters PNG); return their paths.
    `metric` is `x` or `val_x` alike: train `x` on the left, validation `val_x` on the right.
    The PNG's text chunk `bigtrain` holds what each panel shows (curves, labels, limits)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    metric = base_metric(metric)
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
    names = labels(rows)
    many = len(rows) > 1
    ncol = 1 if len(rows) <= 4 else 2 if len(rows) <= 12 else 3
    legend_h = 0.22 * -(-len(rows) // ncol) + 0.3 if many else 0.0
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5 + legend_h), squeeze=False,
                             layout="constrained")
    ax_train, ax_val = axes[0]
    colors = plt.get_cmap("tab10" if len(rows) <= 10 else "tab20").colors
    handles: dict[str, Any] = {}
    shown: dict[str, dict[str, Any]] = {}
    for ax, panel, title in ((ax_train, "train", metric), (ax_val, "val", f"val_{metric}")):
        values: list[float] = []
        drawn = []
        for i, r in enumerate(rows):
            ts, tv, vs, vv = curves[r["run_dir"]]
            xs, ys = (ts, tv) if panel == "train" else (vs, vv)
            if not xs:
                continue
            style = {"marker": "o", "markersize": 3} if panel == "val" else {}
            (line,) = ax.plot(xs, ys, color=colors[i % len(colors)], linewidth=1.2,
                              label=names[i], **style)
            handles.setdefault(names[i], line)
            values += ys
            drawn.append(names[i])
        info: dict[str, Any] = {"metric": title, "runs": drawn, "scale": "linear"}
        limits = robust_limits(values) if _is_loss(metric) else None
        if limits is not None:
            ax.set_ylim(*limits)
            above = [v for v in values if v > limits[1]]
            for line in list(ax.get_lines()):  # each outlier as a mark on the top edge
                xs_above = [x for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True)
                            if y > limits[1]]
                if xs_above:
                    ax.plot(xs_above, [limits[1]] * len(xs_above), linestyle="none",
                            marker="^", color=line.get_color(), clip_on=False, markersize=6)
            ax.text(0.99, 0.98, f"{len(above)} point(s) above, up to {max(above):.3g}",
                    transform=ax.transAxes, ha="right", va="top", fontsize=7, color="dimgray")
            info.update(ylim=list(limits), clipped=len(above))
        elif values and _is_loss(metric) and min(values) > 0 and max(values) / min(values) > 50:
            ax.set_yscale("log")
            info["scale"] = "log"
        if not drawn:
            ax.text(0.5, 0.5, f"no run logged {title}", transform=ax.transAxes, ha="center",
                    va="center", color="dimgray")
        ax.set_title(f"{'train' if panel == 'train' else 'validation'}: {title}")
        ax.set_xlabel("step")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        shown[panel] = info
    if many:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=ncol, fontsize=7, frameon=False)
    fig.suptitle(f"{path} ({len(rows)} run{'s' if many else ''})", fontsize=10)
    out = Path(out) if out else (path / f"plot_{metric}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, metadata={"bigtrain": json.dumps(
        {"panels": shown, "labels": list(handles)})})
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
