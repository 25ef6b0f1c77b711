"""One training job's own choices around the engine: which hooks watch the run (progress,
metrics.jsonl, the configured loggers, a search trial's reporter) and the summary.json it
leaves. `train` is what `bigtrain fit` runs per job, and what tests and applications that embed
bigtrain call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bigtrain.config.schema import FitConfig
from bigtrain.core.hooks import Hook
from bigtrain.run import rundir


class SummaryFile(Hook):
    """Writes summary.json when the run has its summary, before the loggers hear of it (MLflow
    keeps the file as an artifact). Only the chief has one."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def on_summary(self, summary: dict[str, Any], model: Any = None) -> None:
        rundir.write_summary(self.run_dir, summary)


def configured_hooks(config: FitConfig, run_dir: Path, chief: bool = True,
                     report_trial: bool = True) -> list:
    """The configured hooks; only the chief of a multi-worker run writes metrics and logs.
    `report_trial`: a search trial reports its steps to the study (not from inside folds)."""
    from bigtrain.core.console import CONSOLE
    from bigtrain.loggers import progress

    t = config.trainer
    chosen: list = []
    shown = t.progress
    if shown == "auto":
        shown = "rich" if CONSOLE.is_terminal else "plain"
    if shown == "rich":
        chosen.append(progress.RichProgress())
    elif shown == "plain":
        chosen.append(progress.PlainProgress())
    if chief:
        from bigtrain.loggers import build_loggers

        chosen += [SummaryFile(run_dir), progress.MetricsFile(run_dir)]
        chosen += build_loggers(config, run_dir)
    if t.trial.trial_id >= 0 and chief and report_trial:  # a trial of bigtrain's search
        from bigtrain.run.search import TrialReporter

        chosen.append(TrialReporter(t.trial, t.monitor))
    return chosen


def _say_default_model(config: FitConfig) -> None:
    """Under Hydra, a model the user did not choose (nor an experiment): say it is the default
    for the data (conf/dataset/<option>.yaml may pick one: tables get the MLP, text the
    Transformer) and how to pick another."""
    import logging

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    given = {o.split("=", 1)[0].lstrip("+~") for o in hc.overrides.task}
    if given & {"model", "experiment"} or hc.runtime.choices.get("experiment") not in (None,
                                                                                       "null"):
        return
    logging.getLogger("bigtrain").info(
        "model %s: the default for dataset=%s (model=... picks another; bigtrain ls model)",
        hc.runtime.choices.get("model"), hc.runtime.choices.get("dataset"))


def train(config: FitConfig, run_dir: Path, extra_hooks: tuple = (), chief: bool = True,
          origin: float | None = None) -> dict[str, Any]:
    """Train as configured; write summary.json (the chief); return the summary.
    `extra_hooks` run after the configured ones (the task, tests and embedding applications
    use them); `chief` is False in the other workers of a multi-worker run; `origin`: when
    the job began (time.time()), what summary.json's timing counts start-up from (default:
    now)."""
    from bigtrain.train.fit import fit

    _say_default_model(config)
    if config.dataset.folds >= 2:
        from bigtrain.run.folds import cross_validate

        return cross_validate(config, run_dir, lambda c, d: configured_hooks(
            c, d, chief=chief, report_trial=False) + list(extra_hooks), chief, origin)
    return fit(config, run_dir,
               lambda: configured_hooks(config, run_dir, chief=chief) + list(extra_hooks),
               chief=chief, origin=origin)
