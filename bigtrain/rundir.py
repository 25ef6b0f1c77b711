"""The run directory: its layout and the files other tools read.

    <run_dir>/config.yaml      the resolved config of the run
    <run_dir>/metrics.jsonl    one JSON object per log interval and per evaluation
    <run_dir>/summary.json     how the run ended: status, steps, final and best metrics
    <run_dir>/checkpoints/     tf.train checkpoints (ckpt-N.*, plus best/)
    <run_dir>/tb/              TensorBoard event files
    <run_dir>/fit.log          the log; .hydra/ holds Hydra's own record of the job

These names are an interface: scripts and sweep tables read them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

STATUSES = ("completed", "pruned", "failed", "preempted", "interrupted")
#: a run that ended by itself: re-running the same command skips it
FINISHED = ("completed", "pruned")


class RunFailed(Exception):
    """A training job failed; raised after its summary.json and log were written."""

    def __init__(self, message: str, run_dir: str):
        self.run_dir = run_dir
        super().__init__(message)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def replace_dir(out: Path, write: Callable[[Path], Any]) -> Path:
    """Make the directory `out` with `write(tmp)` into a temporary directory beside it, then
    swap it into place (a file of that name included): a reader sees the old one or the new
    one (or, between two renames, none), never half of either, and a failed `write` leaves
    the old one as it was. The new directory gets the mode a plain mkdir would (0777 less the
    umask), not mkdtemp's 0700."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    old = out.with_name(f".{out.name}.old{os.getpid()}")
    try:
        write(tmp)
        if out.exists():
            out.rename(old)
            try:
                tmp.rename(out)
            except OSError:
                old.rename(out)
                raise
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:  # a file was where the directory goes
            old.unlink(missing_ok=True)
    return out


def write_config(run_dir: Path, resolved: dict[str, Any]) -> None:
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))


def _clean(value: Any) -> Any:
    """JSON-safe numbers: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(run_dir / "summary.json", json.dumps(_clean(summary), indent=2) + "\n")


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


def resolve_mode(monitor: str, mode: str) -> str:
    """min or max for `trainer.monitor`; auto is max for accuracy-like names (acc, auc)."""
    if mode != "auto":
        return mode
    return "max" if any(k in monitor for k in ("acc", "auc")) else "min"


def monitored_value(summary: dict[str, Any], monitor: str) -> float:
    """The value a sweeper optimizes: the best `monitor` reached, else the final one."""
    for part in ("best", "final"):
        value = summary.get(part, {}).get(monitor)
        if value is not None:
            return float(value)
    return float("nan")


class MetricsWriter:
    """Appends one JSON object per line to metrics.jsonl; flushed so a crash loses nothing."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(_clean(record)) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


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


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every key that both configs have, whose value differs, and that
    may not change on a resume. Keys only one side has come from another bigtrain version's
    schema (a new key with its default), so they are not counted; a change of option (say
    model=cnn -> model=mlp) shows in the `name` key."""
    a, b = _flatten(old), _flatten(new)
    changes = []
    for key in sorted(set(a) & set(b)):
        if key not in RESUMABLE_CHANGES and not key.startswith(RESUMABLE_PREFIXES) and \
                a[key] != b[key]:
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
