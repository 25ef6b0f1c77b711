"""The run directory: its layout and the files other tools read.

    <run_dir>/config.yaml      the resolved config of the run
    <run_dir>/metrics.jsonl    one JSON object per log interval and per evaluation
    <run_dir>/summary.json     how the run ended: status, steps, final and best metrics
    <run_dir>/checkpoints/     tf.train checkpoints (ckpt-N.*, plus best/)
    <run_dir>/tb/              TensorBoard event files
    <run_dir>/fit.log          the log; .hydra/ holds Hydra's own record of the job (both
                               written once the run dir accepts the run: run/admission.py)

These names are an interface: scripts and sweep tables read them.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from bigtrain.core.files import atomic_write_text, json_safe

STATUSES = ("completed", "pruned", "failed", "preempted", "interrupted")
#: a run that ended by itself: re-running the same command skips it
FINISHED = ("completed", "pruned")


class RunFailed(Exception):
    """A training job failed; raised after its summary.json and log were written."""

    def __init__(self, message: str, run_dir: str):
        self.run_dir = run_dir
        super().__init__(message)


def write_config(run_dir: Path, resolved: dict[str, Any]) -> None:
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(run_dir / "summary.json", json.dumps(json_safe(summary), indent=2) + "\n")


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def failed_summary(error: BaseException | str, start: float, status: str = "failed") -> dict:
    if isinstance(error, BaseException):
        message = f"{type(error).__name__}: {error}"
        tb = "".join(traceback.format_exception(error))
    else:
        message, tb = error, ""
    return {"status": status, "error": message, "traceback": tb,
            "wall_s": round(time.time() - start, 3)}


def monitored_value(summary: dict[str, Any], monitor: str) -> float:
    """The value a sweeper optimizes: the best `monitor` reached, else the final one."""
    for part in ("best", "final"):
        value = summary.get(part, {}).get(monitor)
        if value is not None:
            return float(value)
    return float("nan")


#: keys that may change when a run is resumed: its length, intervals and display, not its maths
RESUMABLE_CHANGES = {
    "trainer.epochs", "trainer.max_steps", "trainer.log_every", "trainer.eval_every",
    "trainer.checkpoint_every", "trainer.keep_checkpoints", "trainer.progress",
    "trainer.threads", "trainer.resume", "trainer.eval_batch_size", "trainer.patience",
    "trainer.min_delta", "trainer.on_nan", "trainer.nan_max_rollbacks", "trainer.steps_per_loop",
    "trainer.rerun",
}


#: whole sub-trees that may change on a resume (which loggers record the run)
RESUMABLE_PREFIXES = ("logger.",)


def may_change(key: str) -> bool:
    """Whether a resumed run may change this key of its config (and stay the same run)."""
    return key in RESUMABLE_CHANGES or key.startswith(RESUMABLE_PREFIXES)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def leaves(config: dict[str, Any]) -> dict[str, Any]:
    """Every value of a (resolved) config by its dotted key: {"optim.lr": 0.001, ...}."""
    return _flatten(config)


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every key that both configs have, whose value differs, and that
    may not change on a resume. Keys only one side has come from another bigtrain version's
    schema (a new key with its default), so they are not counted; a change of option (say
    model=cnn -> model=mlp) shows in the `name` key."""
    a, b = _flatten(old), _flatten(new)
    changes = []
    for key in sorted(set(a) & set(b)):
        if not may_change(key) and a[key] != b[key]:
            changes.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return changes


def same_run(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two resolved configs describe the same run (`trainer.rerun` aside)."""
    a, b = _flatten(old), _flatten(new)
    a.pop("trainer.rerun", None)
    b.pop("trainer.rerun", None)
    return a == b


def read_config(run_dir: Path) -> dict[str, Any] | None:
    try:
        return yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
