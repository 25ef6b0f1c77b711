"""The sweeper's config schema, registered as hydra/sweeper=bigtrain_optuna.

(No `from __future__ import annotations` here: Hydra's plugin scan executes this module
outside sys.modules, where dataclasses cannot resolve string annotations.)"""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.bigtrain_optuna_sweeper.sweeper.OptunaSweeper"
    # search space: key -> Hydra sweep syntax, e.g. optim.lr: tag(log, interval(1e-4, 1e-1)),
    # model: choice(mlp, cnn), trainer.batch_size: range(32, 129, 32). Sweeps on the command line
    # join it; plain overrides on the command line apply to every trial.
    params: dict[str, str] = field(default_factory=dict)
    n_trials: int = 20  # trials that end (completed, pruned or failed), resumes included
    n_jobs: int = 1  # trials launched together (parallel with the joblib launcher)
    sampler: str = "tpe"  # tpe | random | grid | cmaes
    seed: int = 0
    # what each trial is scored on: `monitor` (trainer.monitor, its best value), wall_s,
    # or a metric of the run's summary (final values, e.g. test_accuracy)
    objectives: list[str] = field(default_factory=lambda: ["monitor"])
    # one per objective: minimize | maximize | auto (monitor: from trainer.monitor_mode)
    directions: list[str] = field(default_factory=lambda: ["auto"])
    pruner: str = "none"  # none | median | halving (single objective only)
    pruner_warmup: int = 0  # median: training steps before pruning; halving: min resource
    pruner_startup: int = 2  # median: finished trials before pruning starts
    # where the study lives: journal (a file in the sweep dir, shared by parallel jobs), or
    # an RDB URL such as sqlite:///search.db. Re-running with the same sweep dir resumes it.
    storage: str = "journal"
    study_name: str = "bigtrain"


ConfigStore.instance().store(group="hydra/sweeper", name="bigtrain_optuna",
                             node=OptunaSweeperConf, provider="bigtrain")
