"""An Optuna search as a Hydra sweeper, on current Optuna, with pruning and resumable studies.

Each trial is an ordinary `bigtrain fit` job in `<sweep dir>/<trial number>/`, launched by the
configured launcher (basic, joblib, submitit). Its config carries the study's storage, the
study's name and the trial's id (`trainer.trial.*`), so the job itself reports its monitored
metric at each evaluation and stops when the pruner says so (bigtrain/run/search.py).

The study lives in the sweep dir (a journal file by default). Running the same command again
with the same `hydra.sweep.dir` resumes it: trials that were running when the search died are
launched again with their own parameters into their own dirs, where the jobs resume from
their checkpoints; finished trials are kept; new trials are asked for until `n_trials` have
ended. A failed trial is told as failed and the search goes on.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from bigtrain.core.errors import ConfigError

log = logging.getLogger("bigtrain")

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("none", "median", "halving")


class SearchError(ConfigError):
    """A mistake in the search's config: a usage error (exit status 2), key named."""

    def __init__(self, message: str, key: str = "hydra.sweeper"):
        super().__init__(key, message)


def _distribution(override: Override):
    import optuna.distributions as d

    value = override.value()
    key = override.get_key_element()
    if isinstance(value, ChoiceSweep):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        return d.CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        return d.CategoricalDistribution(choices)
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        low, high = value.start, value.end
        if isinstance(low, int) and isinstance(high, int):
            return d.IntDistribution(low, high, log=log_scale)
        return d.FloatDistribution(float(low), float(high), log=log_scale)
    raise SearchError(f"{override.input_line!r} is not a search range; use choice(...), "
                      "range(...) or interval(...) (tag(log, ...) for a log scale)",
                      key=f"hydra.sweeper.params.{key}")


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SearchError(f"{value!r} is not valid; {allowed}", key=f"hydra.sweeper.{key}")


class OptunaSweeper(Sweeper):
    def __init__(self, params: dict | None = None, n_trials: int = 20, n_jobs: int = 1,
                 sampler: str = "tpe", seed: int = 0, objectives: list | None = None,
                 directions: list | None = None, pruner: str = "none", pruner_warmup: int = 0,
                 pruner_startup: int = 2, storage: str = "journal",
                 study_name: str = "bigtrain") -> None:
        self.params = dict(params or {})
        self.n_trials, self.n_jobs = int(n_trials), int(n_jobs)
        self.sampler_name, self.seed = sampler, seed
        self.objectives = list(objectives or ["monitor"])
        self.directions = list(directions or ["auto"])
        self.pruner = pruner
        self.pruner_warmup, self.pruner_startup = int(pruner_warmup), int(pruner_startup)
        self.storage_spec, self.study_name = storage, study_name

    def _validate(self) -> None:
        """Checked when the sweep starts, so a mistake is a usage error naming the key."""
        n_trials, n_jobs, sampler, pruner = (self.n_trials, self.n_jobs, self.sampler_name,
                                             self.pruner)
        _check(self.n_trials >= 1, "n_trials", n_trials, "must be >= 1")
        _check(self.n_jobs >= 1, "n_jobs", n_jobs, "must be >= 1")
        _check(sampler in SAMPLERS, "sampler", sampler, "allowed: " + ", ".join(SAMPLERS))
        _check(pruner in PRUNERS, "pruner", pruner, "allowed: " + ", ".join(PRUNERS))
        _check(len(self.directions) == len(self.objectives), "directions", self.directions,
               f"give one per objective ({len(self.objectives)})")
        _check(all(x in ("auto", "minimize", "maximize") for x in self.directions),
               "directions", self.directions, "each: minimize, maximize or auto")
        _check(pruner == "none" or len(self.objectives) == 1, "pruner", pruner,
               "Optuna prunes single-objective searches only; use pruner=none")
        _check(self.storage_spec == "journal" or "://" in self.storage_spec, "storage",
               self.storage_spec, "journal, or an RDB URL such as sqlite:///search.db")

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)
        self.sweep_dir = Path(config.hydra.sweep.dir).absolute()

    # ----------------------------------------------------------------- study set-up
    def _storage_url(self) -> str:
        if self.storage_spec == "journal":
            return f"journal:{self.sweep_dir / 'optuna.journal'}"
        return self.storage_spec

    def _directions(self) -> list[str]:
        from bigtrain.core.hooks import resolve_mode

        out = []
        for objective, direction in zip(self.objectives, self.directions, strict=True):
            if direction == "auto":
                monitor = self.config.trainer.monitor if objective == "monitor" else objective
                mode = resolve_mode(monitor, str(self.config.trainer.get("monitor_mode", "auto")))
                direction = "minimize" if mode == "min" else "maximize"
            out.append(direction)
        return out

    def _sampler(self, space: dict):
        import optuna

        if self.sampler_name == "random":
            return optuna.samplers.RandomSampler(seed=self.seed)
        if self.sampler_name == "grid":
            bad = [k for k, v in space.items()
                   if not isinstance(v, optuna.distributions.CategoricalDistribution)]
            _check(not bad, "sampler", "grid", f"grid needs choice(...) or range(...) for "
                   f"every parameter; {bad[0] if bad else ''} is an interval")
            return optuna.samplers.GridSampler({k: list(v.choices) for k, v in space.items()},
                                               seed=self.seed)
        if self.sampler_name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=self.seed, warn_independent_sampling=False)
        return optuna.samplers.TPESampler(seed=self.seed)

    def _space(self, arguments: list[str]) -> tuple[dict, list[str]]:
        parser = OverridesParser.create()
        lines = [f"{k}={v}" for k, v in self.params.items()]
        space, fixed = {}, []
        for override in parser.parse_overrides(lines) + parser.parse_overrides(arguments):
            key = override.get_key_element()
            if override.is_sweep_override():
                space[key] = _distribution(override)
            else:
                fixed.append(override.input_line)
        if not space:
            raise SearchError("the search space is empty; give parameters, e.g. "
                              "optim.lr='tag(log,interval(1e-4,1e-1))' or "
                              "hydra.sweeper.params.optim.lr=..., or a preset: "
                              "hparams_search=digits", key="hydra.sweeper.params")
        return space, fixed

    # ----------------------------------------------------------------- the search
    def sweep(self, arguments: list[str]) -> Any:
        import optuna
        from optuna.trial import TrialState

        from bigtrain.run.search import open_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._validate()
        space, fixed = self._space(arguments)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        storage_url = self._storage_url()
        directions = self._directions()
        study = optuna.create_study(study_name=self.study_name, storage=open_storage(storage_url),
                                    sampler=self._sampler(space), directions=directions,
                                    load_if_exists=True)
        trials = study.get_trials(deepcopy=False)
        stale = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        ended = sum(1 for t in trials if t.state.is_finished())
        if trials:
            log.info("search %s: resuming the study in %s (%d trial(s) ended, %d to finish)",
                     self.study_name, storage_url, ended, len(stale))
        pending: list = [optuna.trial.Trial(study, t._trial_id) for t in stale]
        while ended < self.n_trials:
            batch = []
            while pending and len(batch) < self.n_jobs:
                batch.append(pending.pop(0))
            while len(batch) < self.n_jobs and ended + len(batch) < self.n_trials:
                batch.append(study.ask(space))
            if self.sampler_name == "grid" and not batch:
                break
            overrides = [self._overrides(t, fixed, storage_url) for t in batch]
            returns = self.launcher.launch(overrides, initial_job_idx=batch[0].number)
            for trial, ret in zip(batch, returns, strict=True):
                self._tell(study, trial, ret)
                ended += 1
            if self.sampler_name == "grid" and study.sampler.is_exhausted(study):
                log.info("search %s: the grid is exhausted", self.study_name)
                break
        self._report(study, directions)

    def _overrides(self, trial, fixed: list[str], storage_url: str) -> list[str]:
        params = [f"{k}={_encode(v)}" for k, v in trial.params.items()]
        identity = [f"trainer.trial.storage={storage_url}",
                    f"trainer.trial.study={self.study_name}",
                    f"trainer.trial.trial_id={trial._trial_id}",
                    f"trainer.trial.pruner={self.pruner}",
                    f"trainer.trial.pruner_warmup={self.pruner_warmup}",
                    f"trainer.trial.pruner_startup={self.pruner_startup}",
                    f"hydra.sweep.subdir={trial.number}"]
        return [*fixed, *params, *identity]

    def _tell(self, study, trial, ret) -> None:
        from optuna.trial import TrialState

        from bigtrain.run import rundir

        run_dir = Path(ret.hydra_cfg.hydra.runtime.output_dir) if ret.hydra_cfg else None
        summary = rundir.read_summary(run_dir) if run_dir else None
        if ret.status == JobStatus.FAILED or not summary or summary.get("status") not in (
                "completed", "pruned"):
            why = summary.get("error", "") if summary else str(ret._return_value)
            log.warning("trial %d failed: %s", trial.number, str(why).splitlines()[0][:200]
                        if why else "no summary")
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            return
        if summary["status"] == "pruned":
            study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            return
        values = [self._value(summary, name) for name in self.objectives]
        if any(v is None or not math.isfinite(v) for v in values):
            log.warning("trial %d has no finite %s; told as failed", trial.number,
                        ", ".join(self.objectives))
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            return
        study.tell(trial, values, skip_if_finished=True)

    def _value(self, summary: dict, name: str) -> float | None:
        from bigtrain.run import rundir

        if name == "monitor":
            return rundir.monitored_value(summary, summary.get("monitor", "val_loss"))
        if isinstance(summary.get(name), int | float):
            return float(summary[name])
        for part in ("final", "best"):
            value = summary.get(part, {}).get(name)
            if isinstance(value, int | float):
                return float(value)
        return None

    def _report(self, study, directions: list[str]) -> None:
        from optuna.trial import TrialState

        from bigtrain.core.files import atomic_write_text

        trials = study.get_trials(deepcopy=False)
        counts = {s.name.lower(): sum(1 for t in trials if t.state == s)
                  for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        result: dict[str, Any] = {"study": self.study_name, "storage": self._storage_url(),
                                  "objectives": self.objectives, "directions": directions,
                                  "trials": counts}
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if complete:
            best = study.best_trials
            result["best"] = [{"trial": t.number, "values": t.values,
                               "params": {k: _encode(v) for k, v in t.params.items()},
                               "run_dir": str(self.sweep_dir / str(t.number))} for t in best]
        atomic_write_text(self.sweep_dir / "optuna_best.json", json.dumps(result, indent=2)
                          + "\n")
        log.info("search %s: %d completed, %d pruned, %d failed", self.study_name,
                 counts["complete"], counts["pruned"], counts["fail"])
        if not complete:
            from bigtrain.run.rundir import RunFailed

            raise RunFailed(f"no trial of the search completed (see {self.sweep_dir})",
                            str(self.sweep_dir))
        for b in result["best"]:
            log.info("best trial %d: %s = %s  %s", b["trial"], ", ".join(self.objectives),
                     ", ".join(f"{v:.6g}" for v in b["values"]),
                     " ".join(f"{k}={v}" for k, v in b["params"].items()))
        log.info("written: %s", self.sweep_dir / "optuna_best.json")


def _encode(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)
