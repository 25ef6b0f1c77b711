"""The task Hydra runs for each job of `bigtrain fit`.

It is defined at module level, with TensorFlow imported only inside, so that Hydra's launchers
(joblib, submitit) can re-import it in worker processes. Whatever happens, the job leaves a
summary.json in its run dir saying how it ended, and one failed job never stops a multirun.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bigtrain import rundir

from bigtrain.strategy import cluster
from bigtrain.config import ConfigError, to_typed
from bigtrain.rundir import RunFailed

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

    from bigtrain.runlock import RunLock

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ chatter out
    strategy = cfg.get("strategy") or {}
    role = cluster.role(str(strategy.get("name", "")), str(strategy.get("cluster", "auto")))
    if not role.chief:
        _own_log_file(role.index)
        return _worker(cfg, run_dir)
    with RunLock(run_dir):  # a live run in this dir: refused here, before any write
        return _chief(cfg, run_dir)


def _chief(cfg: DictConfig, run_dir: Path) -> float:
    start = time.time()
    try:
        config = to_typed(cfg)  # every range check runs here, before TensorFlow is imported
        resolved = OmegaConf.to_container(cfg, resolve=True)
        _check_resumable(run_dir, resolved, config.trainer.resume)
    except ConfigError as ex:
        if not (run_dir / "summary.json").exists():
            rundir.write_summary(run_dir, rundir.failed_summary(ex, start))
        raise
    config = _thread_budget(config)
    previous = rundir.read_summary(run_dir) or {}
    if _finished_here(run_dir, resolved, previous):
        if not config.trainer.rerun:
            log.info("%s already holds a completed run of this config; skipping it "
                     "(trainer.rerun=true trains it again)", run_dir)
            return rundir.monitored_value(previous, config.trainer.monitor)
        _set_aside(run_dir)
    return _train_here(config, run_dir, resolved, previous, start)


def _finished_here(run_dir: Path, resolved: dict, previous: dict) -> bool:
    """Whether `run_dir` holds a run of this config that ended by itself."""
    old_config = rundir.read_config(run_dir)
    return previous.get("status") in rundir.FINISHED and old_config is not None and \
        rundir.same_run(old_config, resolved)


def _train_here(config, run_dir: Path, resolved: dict, previous: dict, start: float) -> float:
    """The chief's run, under the run dir's lock: write the config, train, record."""
    from bigtrain.train.preemption import Preempted

    rundir.write_config(run_dir, resolved)
    try:
        from bigtrain.train.fit import train

        summary = train(config, run_dir)
    except ConfigError as ex:  # raised by builders that see the data (e.g. batch vs replicas)
        if previous.get("status") not in rundir.FINISHED:  # a mistake now loses no finished run
            rundir.write_summary(run_dir, rundir.failed_summary(ex, start))
        raise
    except Preempted as ex:
        summary = rundir.failed_summary(str(ex), start, status="preempted")
        summary["steps"] = ex.step
        rundir.write_summary(run_dir, summary)
        raise
    except KeyboardInterrupt:
        rundir.write_summary(run_dir, rundir.failed_summary("interrupted", start, status="interrupted"))
        raise
    except Exception as ex:
        log.error("run failed: %s: %s (traceback in %s)", type(ex).__name__, ex,
                  run_dir / "summary.json")
        rundir.write_summary(run_dir, rundir.failed_summary(ex, start))
        raise RunFailed(f"run failed: {type(ex).__name__}: {ex}", str(run_dir)) from ex
    return rundir.monitored_value(summary, config.trainer.monitor)


def _worker(cfg: DictConfig, run_dir: Path) -> float:
    """A non-chief worker of a multi-worker run: it trains in step with the chief, reads the
    run dir (to skip or resume as the chief does) and writes nothing there."""
    from bigtrain.train.preemption import Preempted
    from bigtrain.train.fit import train

    config = _thread_budget(to_typed(cfg))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    previous = rundir.read_summary(run_dir) or {}
    if _finished_here(run_dir, resolved, previous) and not config.trainer.rerun:
        return rundir.monitored_value(previous, config.trainer.monitor)
    try:
        summary = train(config, run_dir)
    except (ConfigError, Preempted, KeyboardInterrupt):
        raise
    except Exception as ex:
        log.error("worker failed: %s: %s", type(ex).__name__, ex)
        raise RunFailed(f"run failed: {type(ex).__name__}: {ex}", str(run_dir)) from ex
    return rundir.monitored_value(summary, config.trainer.monitor)
