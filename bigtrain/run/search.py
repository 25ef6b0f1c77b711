"""The run's side of an Optuna search (bigtrain's Hydra sweeper, hydra_plugins/...).

The sweeper launches each trial as an ordinary job whose config names the study's storage,
the study and the trial (`trainer.trial.*`). The job opens the same storage, reports its
monitored metric after every evaluation, and stops with status `pruned` when the pruner says
so. That works whichever launcher ran the job: the trial's identity travels in its config.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bigtrain.core.hooks import Hook

log = logging.getLogger("bigtrain")
JOURNAL = "journal:"


def open_storage(url: str):
    """An Optuna storage from `journal:<file>` (a journal file that several processes can
    share) or an RDB URL such as sqlite:///search.db."""
    import optuna

    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len(JOURNAL):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    return optuna.storages.RDBStorage(url)


def build_pruner(name: str, warmup: int, startup: int):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup) if warmup
                                                      else "auto")
    return optuna.pruners.NopPruner()


class TrialReporter(Hook):
    """A training hook: report `monitor` at each evaluation; stop when the trial is pruned."""

    def __init__(self, trial_cfg, monitor: str):
        import optuna

        self.monitor = monitor
        study = optuna.load_study(study_name=trial_cfg.study,
                                  storage=open_storage(trial_cfg.storage),
                                  pruner=build_pruner(trial_cfg.pruner, trial_cfg.pruner_warmup,
                                                      trial_cfg.pruner_startup))
        self.trial = optuna.trial.Trial(study, trial_cfg.trial_id)
        # Optuna takes intermediate values (and prunes) in single-objective studies only
        self.active = len(study.directions) == 1
        self._reported: set[int] = set()

    def on_eval(self, state, record: dict[str, Any], improved: bool) -> None:
        value = record.get(self.monitor)
        if not self.active or value is None or state.step in self._reported:
            return
        self._reported.add(state.step)  # a resumed trial re-evaluates its last step
        self.trial.report(float(value), state.step)
        if self.trial.should_prune():
            self.pruned = True
            state.stop_reason = f"pruned by the search at step {state.step}"
            log.info("trial %d: %s (%s %.4g)", self.trial.number, state.stop_reason,
                     self.monitor, value)
