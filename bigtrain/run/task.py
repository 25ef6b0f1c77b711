"""The task Hydra runs for each job of `bigtrain fit`.

It is defined at module level, with TensorFlow imported only inside, so that Hydra's launchers
(joblib, submitit) can re-import it in worker processes. A job first decides, reading only,
whether its run dir takes it (free, no run of another config, not already finished); until
then it writes nothing there (bigtrain.run.admission), so a refused command leaves an existing
run dir as it was. Once accepted, whatever happens, the job leaves a summary.json in its run
dir saying how it ended, and one failed job never stops a multirun.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shlex
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bigtrain.config.checks import check_config
from bigtrain.core.console import shown_path as shown
from bigtrain.core.errors import ConfigError
from bigtrain.core.hooks import Hook, LoopState
from bigtrain.run import rundir
from bigtrain.run.admission import Admission
from bigtrain.run.rundir import RunFailed
from bigtrain.strategy import cluster

log = logging.getLogger("bigtrain")


def _check_resumable(run_dir: Path, resolved: dict, resume: str) -> None:
    """A run dir that holds checkpoints of another config is not resumed silently, and
    `trainer.resume=never` does not mix with checkpoints there."""
    if resume == "never" and _steps_reached(run_dir, None) > 0:
        raise ConfigError("trainer.resume", f"is 'never' but {run_dir} already holds "
                          "checkpoints; pick a new hydra.run.dir or use trainer.resume=auto")
    previous = rundir.read_config(run_dir)
    if resume != "auto" or previous is None or not (run_dir / "checkpoints").is_dir():
        return
    changes = rundir.config_changes(previous, resolved)
    if changes:
        listed = "; ".join(changes[:5]) + ("; ..." if len(changes) > 5 else "")
        raise ConfigError("trainer.resume", f"{run_dir} holds a run with another config "
                          f"({listed}). Continue that run as it was with `bigtrain resume "
                          f"{shlex.quote(shown(run_dir))}`, choose a new hydra.run.dir, or pass "
                          "trainer.resume=force to continue it with this config anyway")


def _set_aside(run_dir: Path) -> None:
    """`trainer.rerun=true`: keep the finished run's files, renamed, and start from scratch."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in ("checkpoints", "metrics.jsonl", "summary.json", "tb"):
        path = run_dir / name
        if path.exists():
            path.rename(run_dir / f"{name}.before-rerun-{stamp}")
    log.info("trainer.rerun: the previous run's files in %s were renamed *.before-rerun-%s",
             run_dir, stamp)


def _own_log_file(index: int) -> None:
    """A non-chief worker logs to <job>.worker-N.log beside the chief's log."""
    for h in logging.getLogger().handlers:
        if isinstance(h, logging.FileHandler):
            h.close()
            base = Path(h.baseFilename)
            h.baseFilename = str(base.with_name(f"{base.stem}.worker-{index}{base.suffix}"))


def _thread_budget(config):
    """`trainer.threads=0` under the joblib launcher: the cores shared by its parallel jobs."""
    from hydra.core.hydra_config import HydraConfig

    if config.trainer.threads > 0:
        return config
    launcher = HydraConfig.get().launcher
    if "JoblibLauncher" not in str(launcher.get("_target_", "")):
        return config
    cores = os.cpu_count() or 1
    jobs = int(launcher.get("n_jobs") or -1)
    jobs = cores if jobs <= 0 else jobs
    threads = max(1, cores // jobs)
    log.info("joblib launcher with %d parallel jobs on %d cores: %d thread(s) per job "
             "(trainer.threads sets it)", jobs, cores, threads)
    return dataclasses.replace(config, trainer=dataclasses.replace(config.trainer,
                                                                   threads=threads))


def fit_task(cfg: DictConfig) -> float:
    """Validate, train, record; return the value of `trainer.monitor` for sweepers."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    strategy = cfg.get("strategy") or {}
    role = cluster.role(str(strategy.get("name", "")), str(strategy.get("cluster", "auto")))
    if not role.chief:
        _own_log_file(role.index)
    # nothing reaches the run dir (Hydra's record, the log) until the run is accepted; only
    # the chief writes the record (the other workers of its run share the dir with it)
    with Admission(run_dir, cfg, record=role.chief,
                   keep_refused=hc.mode == RunMode.MULTIRUN) as admission:
        if role.chief:
            log.info("run dir: %s", shown(run_dir))
        return _run(cfg, run_dir, chief=role.chief, admission=admission)


def _continue_hint(run_dir: Path) -> str:
    """How to continue a run stopped by Ctrl-C or preempted: `bigtrain resume RUN_DIR`; a
    sweep's job, by the sweep's command again into the same sweep dir (which continues every
    job of the sweep that did not finish)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    resume = f"continue with: bigtrain resume {shlex.quote(shown(run_dir))}"
    try:
        hc = HydraConfig.get()
    except ValueError:  # not under Hydra (tests, embedding code)
        return resume
    if hc.mode == RunMode.MULTIRUN:
        if any(o.startswith("hydra.sweep.dir=") for o in hc.overrides.hydra):
            return "run the same command to continue"
        return f"run the same command with hydra.sweep.dir={shown(Path(hc.sweep.dir))} to continue"
    return resume


def _run(cfg: DictConfig, run_dir: Path, chief: bool, admission: Admission | None = None
         ) -> float:
    """One job, in every process of a run: the same checks, the same choice to skip or to
    train (and resume); only the chief writes into the run dir, and only once the run is
    accepted (`admission`; without one, as in tests, nothing is held back)."""
    from bigtrain.run.lock import RunLock, check_free

    admission = admission or Admission(run_dir, record=False)
    start = time.time()
    try:
        if chief:
            check_free(run_dir)  # a live run's dir is its own: refused before it is read
        config = check_config(cfg)  # every check that needs no TensorFlow runs here
        resolved = OmegaConf.to_container(cfg, resolve=True)
        previous, finished = _against_the_dir(run_dir, resolved, config)
    except ConfigError as ex:
        if chief and admission.records_refusal:  # a new sweep job's dir: for the table
            admission.accept()
            _record_end(run_dir, ex, start, 0)
        raise
    config = _thread_budget(config)
    if finished and not config.trainer.rerun:
        return _skip(run_dir, previous, config)
    # only the chief writes, so only the chief takes the lock (a live run is refused there)
    with RunLock(run_dir) if chief else contextlib.nullcontext():
        if chief:  # read again under the lock: another run may have used the dir meanwhile
            previous, finished = _against_the_dir(run_dir, resolved, config)
            if finished and not config.trainer.rerun:
                return _skip(run_dir, previous, config)
        admission.accept()
        if finished and chief:
            _set_aside(run_dir)
        return _train_here(config, run_dir, resolved, previous, start, chief, admission)


def _against_the_dir(run_dir: Path, resolved: dict, config) -> tuple[dict, bool]:
    """What the run dir holds, read only: its summary ({} if none) and whether it holds this
    run, finished; else refuses checkpoints of another config (ConfigError)."""
    previous = rundir.read_summary(run_dir) or {}
    if _finished_here(run_dir, resolved, previous):
        return previous, True
    _check_resumable(run_dir, resolved, config.trainer.resume)
    return previous, False


def _skip(run_dir: Path, previous: dict, config) -> float:
    """A finished run of this config: nothing to train, nothing written; unless the data file
    it was trained on changed since (refused: the config is the same, the run would not be)."""
    from bigtrain.data import preprocess

    changed = preprocess.source_changed(preprocess.read(run_dir))
    if changed:
        raise ConfigError("dataset.path", f"{run_dir} holds a completed run of this config, "
                          f"but its data file {changed}: trainer.rerun=true trains it again "
                          "on the data as it is now, or choose a new hydra.run.dir")
    log.info("%s already holds a completed run of this config; skipping it "
             "(trainer.rerun=true trains it again)", run_dir)
    return rundir.monitored_value(previous, config.trainer.monitor)


def _finished_here(run_dir: Path, resolved: dict, previous: dict) -> bool:
    """Whether `run_dir` holds a run of this config that ended by itself."""
    old_config = rundir.read_config(run_dir)
    return previous.get("status") in rundir.FINISHED and old_config is not None and \
        rundir.same_run(old_config, resolved)


class _Reached(Hook):
    """Keeps the loop's state, so that a run that ends by an exception can say how far it got."""

    state: LoopState | None = None

    def on_train_begin(self, state: LoopState) -> None:
        self.state = state


def _steps_reached(run_dir: Path, state: LoopState | None) -> int:
    """The loop's step; before the loop began, that of the newest checkpoint (0 if none)."""
    if state is not None:
        return state.step
    numbers = [p.name[len("ckpt-"):-len(".index")]
               for p in (run_dir / "checkpoints").glob("ckpt-*.index")]
    return max((int(n) for n in numbers if n.isdigit()), default=0)


def _record_end(run_dir: Path, error: BaseException | str, start: float, steps: int,
                status: str = "failed") -> None:
    """summary.json of a run that ended by an exception: how, and how far it got."""
    summary = rundir.failed_summary(error, start, status=status)
    summary["steps"] = steps
    rundir.write_summary(run_dir, summary)


def _train_here(config, run_dir: Path, resolved: dict, previous: dict, start: float,
                chief: bool, admission: Admission | None = None) -> float:
    """Train (in step with the other workers, if any) and record how the run ended; the chief
    writes the config and summary, under the run dir's lock."""
    from bigtrain.train.preemption import Preempted

    if chief:
        rundir.write_config(run_dir, resolved)
    reached = _Reached()
    try:
        from bigtrain.core.tensorflow_start import import_tensorflow

        import_tensorflow()  # its start-up chatter into fit.log, not onto the console
        from bigtrain.core.timing import job_origin
        from bigtrain.run.job import train

        summary = train(config, run_dir, extra_hooks=(reached,), chief=chief,
                        origin=job_origin(start))
    except ConfigError as ex:  # raised by builders that see the data (e.g. batch vs replicas)
        # a refusal now leaves an existing run dir as it was; a new one records it
        if chief and admission is not None and admission.undo():
            raise
        if chief and previous.get("status") not in rundir.FINISHED:
            _record_end(run_dir, ex, start, _steps_reached(run_dir, reached.state))
        raise
    except Preempted as ex:
        ex.hint = _continue_hint(run_dir)
        if chief:
            _record_end(run_dir, str(ex), start, ex.step, status="preempted")
        raise
    except KeyboardInterrupt:
        if chief:
            _record_end(run_dir, "interrupted", start, _steps_reached(run_dir, reached.state),
                        status="interrupted")
        raise
    except Exception as ex:
        if chief:
            log.error("run failed: %s: %s (traceback in %s)", type(ex).__name__, ex,
                      run_dir / "summary.json")
            _record_end(run_dir, ex, start, _steps_reached(run_dir, reached.state))
        else:
            log.error("worker failed: %s: %s", type(ex).__name__, ex)
        raise RunFailed(f"run failed: {type(ex).__name__}: {ex}", str(run_dir)) from ex
    return rundir.monitored_value(summary, config.trainer.monitor)
