"""The Weights & Biases logger (`logger=[...,wandb]`): one W&B run per bigtrain run.

It logs the flat resolved config into the W&B run's config, every train, val and test record
at its step (`run.log(..., step=)`, so the three splits of one step share a row), and the
summary into the W&B run's summary; it finishes the W&B run on close. The module is named
wandb_logger, not wandb, so that `import wandb` finds the package; it imports wandb only when
the logger is built (`bigtrain ls` and `show` never import it).

Resume: the first time, the W&B run's id is written to <run dir>/wandb_run.json. A run that
continues its checkpoints in the same run dir passes that id back to `wandb.init(id=...,
resume="allow")`, so the W&B run continues; the steps trained again after the checkpoint that
the W&B run already holds are not logged twice (W&B takes no step below its current one). A run
dir whose training starts at step 0 (no checkpoint yet, or `trainer.rerun=true`) starts a new
W&B run and records its id instead.

The W&B run starts when training begins (`on_train_begin`), after the model and the data are
built: by then bigtrain knows whether this run continues a checkpoint, a failed build leaves no
W&B run behind, and the run is always finished (the loop closes its hooks, whatever happens).
A missing wandb package is an error when the logger is built; a W&B run that cannot start
(no API key in online mode, say) is one before the first step.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from bigtrain.core.errors import ConfigError
from bigtrain.core.files import atomic_write_text
from bigtrain.core.hooks import Hook
from bigtrain.loggers import LOGGERS
from bigtrain.loggers.builders import flat_config
from bigtrain.loggers.schemas import WandbLoggerConfig

log = logging.getLogger("bigtrain")

#: where a run dir records its W&B run
RUN_FILE = "wandb_run.json"

def _numbers(record: dict[str, Any]) -> dict[str, float | int]:
    """The record's metrics (every number but the step, which is the W&B step)."""
    return {k: v for k, v in record.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)}


def _summary(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json for the W&B summary: `final` and `best` flattened to final_<metric> and
    best_<metric> (the names the MLflow logger uses; sortable columns in W&B's runs table),
    the rest as it is (W&B shows a nested value as timing.total_s, say)."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if key in ("final", "best") and isinstance(value, dict):
            out.update({f"{key}_{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return json.loads(json.dumps(out, default=str))  # what W&B can hold: JSON values only


def read_run_file(run_dir: Path) -> dict[str, Any] | None:
    """The W&B run recorded in `run_dir` ({"id", "project", "entity"}), None if none."""
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        return None
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as ex:
        log.warning("%s cannot be read (%s); this run starts a new W&B run", path, ex)
        return None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("id"), str):
        log.warning("%s names no W&B run id; this run starts a new W&B run", path)
        return None
    return recorded


class WandbLogger(Hook):
    """One W&B run per bigtrain run; a run that continues its checkpoints continues it."""

    def __init__(self, run_dir: Path, config, cfg: WandbLoggerConfig):
        try:
            import wandb
        except ImportError:
            raise ConfigError("logger.wandb", 'needs Weights & Biases: pip install '
                              '"bigtrain[wandb]" (or pip install wandb)') from None
        self.wandb, self.run_dir, self.cfg = wandb, Path(run_dir), cfg
        self.params = flat_config(config)
        self.run = None
        self._first_step = 0  # steps below it are in the W&B run already (a resumed run)
        self._skipped = False
        self._ok = False

    # ------------------------------------------------------------------ the W&B run
    def init_kwargs(self, resume_id: str | None) -> dict[str, Any]:
        """What bigtrain passes to wandb.init (an empty setting is left to W&B)."""
        cfg = self.cfg
        kwargs: dict[str, Any] = {
            "project": cfg.project or os.environ.get("WANDB_PROJECT") or "bigtrain",
            "name": cfg.run_name or self.run_dir.name,
            "dir": cfg.dir or os.environ.get("WANDB_DIR") or str(self.run_dir),
            # a run of its own even if the embedding program has a W&B run active (its run is
            # neither finished nor logged into); each job of a sweep finishes its own
            "reinit": "create_new",
        }
        for key, value in (("entity", cfg.entity), ("group", cfg.run_group),
                           ("mode", cfg.mode)):
            if value:
                kwargs[key] = value
        if cfg.tags:
            kwargs["tags"] = list(cfg.tags)
        if resume_id is None:
            kwargs["config"] = self.params
        else:  # the config goes in after the run is resumed (its logger.* keys may change)
            kwargs.update(id=resume_id, resume="allow")
        return kwargs

    def on_train_begin(self, state) -> None:
        if self.run is not None:
            return
        recorded = read_run_file(self.run_dir)
        # continue the recorded W&B run only when training continues a checkpoint
        resume_id = recorded["id"] if recorded is not None and state.step > 0 else None
        kwargs = self.init_kwargs(resume_id)
        try:
            Path(kwargs["dir"]).mkdir(parents=True, exist_ok=True)  # else W&B writes to /tmp
        except OSError as ex:
            raise ConfigError("logger.wandb.dir", f"cannot write to {kwargs['dir']!r}: "
                              f"{ex.strerror or ex}") from None
        try:
            self.run = self.wandb.init(**kwargs)
        except Exception as ex:  # UsageError, CommError, ...: a run W&B cannot start
            first = str(ex).strip().splitlines()
            raise ConfigError("logger.wandb", "W&B could not start a run: "
                              + (first[0][:300] if first else type(ex).__name__)
                              + " (run `wandb login` or set WANDB_API_KEY; or "
                              "logger.wandb.mode=offline and `wandb sync` later)") from None
        run = self.run
        mode = self._mode()
        if mode == "disabled":
            return
        if resume_id is None:
            atomic_write_text(self.run_dir / RUN_FILE, json.dumps(
                {"id": run.id, "project": run.project, "entity": run.entity or None,
                 "mode": mode}, indent=2) + "\n")
        else:
            run.config.update(self.params, allow_val_change=True)
            # the W&B run may hold steps after the checkpoint (logged before the stop)
            self._first_step = int(getattr(run, "starting_step", 0) or 0)
            log.info("W&B run %s continued at step %d", run.id, state.step)
        sync_dir = getattr(run.settings, "sync_dir", None)
        if mode == "offline" and sync_dir:
            log.info("W&B run %s is offline: `wandb sync %s` uploads it", run.id,
                     _shown(sync_dir))

    def _mode(self) -> str:
        try:
            return str(self.run.settings.mode)
        except AttributeError:
            return self.cfg.mode or "online"

    def _log(self, record: dict[str, Any]) -> None:
        if self.run is None:
            return
        step = int(record["step"])
        if step < self._first_step:
            if not self._skipped:
                log.info("W&B run %s holds steps up to %d already: the steps trained again "
                         "after the checkpoint are not logged twice", self.run.id,
                         self._first_step - 1)
                self._skipped = True
            return
        self.run.log(_numbers(record), step=step)

    # ------------------------------------------------------------------ hooks
    def on_log(self, state, record: dict[str, Any]) -> None:
        self._log(record)

    def on_eval(self, state, record: dict[str, Any], improved: bool) -> None:
        self._log(record)

    def on_test(self, state, record: dict[str, Any]) -> None:
        self._log(record)

    def on_summary(self, summary: dict[str, Any], model=None) -> None:
        if self.run is not None:
            self.run.summary.update(_summary(summary))
        self._ok = True

    def close(self) -> None:
        run, self.run = self.run, None
        if run is not None:
            run.finish(exit_code=0 if self._ok else 1)


def _shown(path: Any) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


@LOGGERS.register(WandbLoggerConfig)
def build_wandb(cfg, run_dir: Path, config) -> Hook:
    return WandbLogger(run_dir, config, cfg)
