"""k-fold cross-validation (`dataset.folds=k`): k runs of one config, each validating on its own
k-th of the examples outside the test split, in `<run dir>/fold-<i>/` (each a run dir of its
own: eval, predict and export take one); the run dir's summary.json holds their mean and
spread, and the mean of `trainer.monitor` is what a sweep or search optimizes."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bigtrain.config.schema import FitConfig
from bigtrain.run import rundir

log = logging.getLogger("bigtrain")


def fold_dir(run_dir: Path, fold: int) -> Path:
    return Path(run_dir) / f"fold-{fold}"


def _fold_config_record(run_dir: Path, config: FitConfig, fold: int) -> dict[str, Any]:
    """The fold's config.yaml: the run's own (as the task wrote it), with dataset.fold set."""
    resolved = rundir.read_config(run_dir) or dataclasses.asdict(config)
    return {**resolved, "dataset": {**resolved["dataset"], "fold": fold}}


def cross_validate(config: FitConfig, run_dir: Path,
                   make_hooks: Callable[[FitConfig, Path], list], chief: bool = True,
                   origin: float | None = None) -> dict[str, Any]:
    """Train every fold (a finished fold of this config is kept, an unfinished one resumed)
    and return the summary of all of them (written to the run dir by the chief)."""
    folds = config.dataset.folds
    summaries = []
    quiet = _NoRetracingNotice()
    logging.getLogger("tensorflow").addFilter(quiet)
    try:
        for k in range(folds):
            summaries.append(_fold(config, run_dir, make_hooks, chief, origin, k))
    finally:
        logging.getLogger("tensorflow").removeFilter(quiet)
    summary = combine(summaries, config.trainer.monitor, run_dir)
    if chief:
        rundir.write_summary(run_dir, summary)
    log.info("%s", closing(summary))
    return summary


class _NoRetracingNotice(logging.Filter):
    """Each fold builds its own model and compiled steps on purpose: TensorFlow's notice that
    the same method "triggered tf.function retracing" says nothing wrong here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _fold(config: FitConfig, run_dir: Path, make_hooks, chief: bool, origin, k: int
          ) -> dict[str, Any]:
    """Fold `k`: kept if it finished before with this config, else trained (or resumed)."""
    from bigtrain.train.fit import fit

    folds = config.dataset.folds
    sub = fold_dir(run_dir, k)
    fold_config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset,
                                                                          fold=k))
    record = _fold_config_record(run_dir, config, k)
    done = rundir.read_summary(sub) or {}
    old = rundir.read_config(sub)
    if done.get("status") in rundir.FINISHED and old is not None and \
            rundir.same_run(old, record):
        log.info("fold %d/%d: finished before, kept (%s)", k + 1, folds, sub)
        return done
    log.info("fold %d/%d: validating on fold %d, in %s", k + 1, folds, k, sub)
    if chief:
        sub.mkdir(parents=True, exist_ok=True)
        rundir.write_config(sub, record)
    return fit(fold_config, sub, lambda: make_hooks(fold_config, sub), chief=chief,
               origin=origin)


def combine(summaries: list[dict[str, Any]], monitor: str, run_dir: Path) -> dict[str, Any]:
    """One summary of the folds: the mean of each metric every fold has (final and best), the
    spread (sample standard deviation) of the final ones, and each fold's result."""

    def mean_and_spread(part: str) -> tuple[dict[str, float], dict[str, float]]:
        keys = set.intersection(*(set(s.get(part) or {}) for s in summaries))
        means, spreads = {}, {}
        for key in sorted(keys):
            values = [s[part][key] for s in summaries]
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
                continue
            m = sum(values) / len(values)
            means[key] = m
            spreads[key] = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
        return means, spreads

    final, spread = mean_and_spread("final")
    best, _ = mean_and_spread("best")
    statuses = [s.get("status") for s in summaries]
    return {
        "status": "completed" if all(s == "completed" for s in statuses) else
        next(s for s in statuses if s != "completed"),
        "folds": len(summaries),
        "monitor": monitor,
        "final": final,
        "best": best,
        "spread": spread,
        "per_fold": [{"fold": i, "run_dir": str(fold_dir(run_dir, i)),
                      "final": (s.get("final") or {}).get(monitor),
                      "best": (s.get("best") or {}).get(monitor)}
                     for i, s in enumerate(summaries)],
        "steps": sum(s.get("steps") or 0 for s in summaries),
        "wall_s": round(sum(s.get("wall_s") or 0.0 for s in summaries), 3),
        "params": summaries[0].get("params"),
        "data_skipped": summaries[0].get("data_skipped"),
        "run_dir": str(run_dir),
    }


def shown_spread(spread: float) -> str:
    """A spread to two digits; rounding noise of equal values (1e-16) as 0."""
    return "0" if abs(spread) < 1e-12 else f"{spread:.2g}"


def closing(summary: dict[str, Any]) -> str:
    """The last line of a cross-validation: the monitored metric and the headline scores as
    mean ± spread over the folds, with their baseline."""
    from bigtrain.core.console import shown_path

    final, spread = summary["final"], summary["spread"]
    names = [summary["monitor"]] + [f"val_{n}" for n in ("accuracy", "mae")
                                    if f"val_{n}" in final and f"val_{n}" != summary["monitor"]]
    parts = []
    for name in names:
        if name in final:
            split, _, metric = name.partition("_")
            base = final.get(f"{split}_baseline_{metric}")
            parts.append(f"{name} {final[name]:.4g} ± {shown_spread(spread.get(name, 0.0))}"
                         + (f" (baseline {base:.4g})" if base is not None else ""))
    return (f"cross-validation over {summary['folds']} folds: " + "; ".join(parts)
            + f"; {shown_path(Path(summary['run_dir']))}/fold-*")
