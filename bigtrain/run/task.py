"""The task Hydra runs for each job of `bigtrain fit`.

It is defined at module level, with TensorFlow imported only inside, so that Hydra's launchers
(joblib, submitit) can re-import it in worker processes. Whatever happens, the job leaves a
summary.json in its run dir saying how it ended, and one failed job never stops a multirun.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bigtrain.config.checks import check_config
from bigtrain.core.console import shown_path as shown
from bigtrain.core.errors import ConfigError
from bigtrain.core.hooks import Hook, LoopState
from bigtrain.run import rundir
from bigtrain.run.rundir import RunFailed
from bigtrain.strategy import cluster

log = logging.getLogger("bigtrain")


def _check_resumable(run_dir: Path, resolved: dict, resume: str) -> None:
    """A run dir that holds checkpoints of another config is not resumed silently."""
    previous = rundir.read_config(run_dir)
    if resume != "auto" or previous is None or not (run_dir / "checkpoints").is_dir():
        return
    changes = rundir.config_changes(previous, resolved)
    if changes:
        shown = "; ".join(changes[:5]) + ("; ..." if len(changes) > 5 else "")
        raise ConfigError("trainer.resume", f"{run_dir} holds a run with another config "
                          f"({shown}). Pass trainer.resume=force to continue it anyway, or "
                          f"choose a new hydra.run.dir")


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

    from bigtrain.run.lock import RunLock

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    strategy = cfg.get("strategy") or {}
    role = cluster.role(str(strategy.get("name", "")), str(strategy.get("cluster", "auto")))
    if not role.chief:
        _own_log_file(role.index)
    # a live run in this dir is refused here, before any write; only the chief writes, so
    # only the chief takes the lock (the other workers of its run share the dir with it)
    with RunLock(run_dir) if role.chief else contextlib.nullcontext():
        if role.chief:
            log.info("run dir: %s", shown(run_dir))
        return _run(cfg, run_dir, chief=role.chief)


def _continue_hint(run_dir: Path) -> str:
    """How to continue a run stopped by Ctrl-C: the same command, which resumes only if it
    names the same run (or sweep) dir."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        hc = HydraConfig.get()
    except ValueError:  # not under Hydra (tests, embedding code)
        return f"continue it with hydra.run.dir={shown(run_dir)}"
    given = list(hc.overrides.hydra)
    if hc.mode == RunMode.MULTIRUN:
        if any(o.startswith("hydra.sweep.dir=") for o in given):
            return "run the same command to continue"
        return f"run the same command with hydra.sweep.dir={shown(Path(hc.sweep.dir))} to continue"
    if any(o.startswith("hydra.run.dir=") for o in given):
        return "run the same command to continue"
    return f"run the same command with hydra.run.dir={shown(run_dir)} to continue"


def _run(cfg: DictConfig, run_dir: Path, chief: bool) -> float:
    """One job, in every process of a run: the same checks, the same choice to skip or to
    train (and resume); only the chief writes into the run dir."""
    start = time.time()
    try:
        config = check_config(cfg)  # every check that needs no TensorFlow runs here
        resolved = OmegaConf.to_container(cfg, resolve=True)
        _check_resumable(run_dir, resolved, config.trainer.resume)
    except ConfigError as ex:
        if chief and not (run_dir / "summary.json").exists():
            _record_end(run_dir, ex, start, _steps_reached(run_dir, None))
        raise
    config = _thread_budget(config)
    previous = rundir.read_summary(run_dir) or {}
    if _finished_here(run_dir, resolved, previous):
        if not config.trainer.rerun:
            log.info("%s already holds a completed run of this config; skipping it "
                     "(trainer.rerun=true trains it again)", run_dir)
            return rundir.monitored_value(previous, config.trainer.monitor)
        if chief:
            _set_aside(run_dir)
    return _train_here(config, run_dir, resolved, previous, start, chief)


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
                chief: bool) -> float:
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
        # a mistake now loses no finished run
        if chief and previous.get("status") not in rundir.FINISHED:
            _record_end(run_dir, ex, start, _steps_reached(run_dir, reached.state))
        raise
    except Preempted as ex:
        if ex.signal_name == "SIGINT":
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
