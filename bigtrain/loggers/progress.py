"""The hooks every run gets besides the configured loggers: progress on the console and
metrics.jsonl in the run dir.

A hook sees the LoopState and the records the loop's actions make: a train record every
`log_every` steps, an eval record after every evaluation. The protocol (`Hook`) lives in
bigtrain/core/hooks.py, without TensorFlow.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bigtrain.core.files import MetricsWriter
from bigtrain.core.hooks import Hook, LoopState

log = logging.getLogger("bigtrain")


def _fmt(record: dict[str, Any], keys: list[str]) -> str:
    parts = []
    for k in keys:
        v = record.get(k)
        # flops_per_sec: mfu says it on screen; a split's baselines are the same at every
        # evaluation (the done line shows them): both are in metrics.jsonl
        if v is None or k == "flops_per_sec" or "baseline_" in k:
            continue
        if k == "mfu":
            parts.append(f"mfu {100 * v:.1f}%")
            continue
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return "  ".join(parts)


def _eta(state: LoopState, since: tuple[float, int] | None) -> str:
    """Time left at this process's pace since `since` (the time and step at the end of its
    first compiled call: neither the steps before a resume nor tracing and compiling count);
    '?' until a step after it is done."""
    done = state.step - since[1] if since is not None else 0
    if done <= 0:
        return "?"
    elapsed = time.time() - since[0]
    secs = int(elapsed / done * (state.total_steps - state.step))
    return f"{secs // 60}:{secs % 60:02d}"


class PlainProgress(Hook):
    """Periodic log lines: readable in CI logs and files."""

    def __init__(self) -> None:
        self._pace_from: tuple[float, int] | None = None  # see _eta

    def on_steps(self, state: LoopState) -> None:
        if self._pace_from is None:  # this process's first compiled call is done
            self._pace_from = (time.time(), state.step)

    def on_log(self, state: LoopState, record: dict[str, Any]) -> None:
        metrics = [k for k in record if k not in ("step", "epoch")]
        log.info("step %d/%d  epoch %d/%d  %s  eta %s", state.step, state.total_steps,
                 state.epoch + 1, state.total_epochs, _fmt(record, metrics),
                 _eta(state, self._pace_from))

    def on_eval(self, state: LoopState, record: dict[str, Any], improved: bool) -> None:
        metrics = [k for k in record if k.startswith(("val_", "test_"))]
        log.info("eval  step %d  %s%s", state.step, _fmt(record, metrics),
                 "  (best)" if improved else "")


class RichProgress(PlainProgress):
    """A live bar with epoch, step, loss, metrics, examples/s and ETA; evals as log lines."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        from bigtrain.core.console import CONSOLE

        super().__init__()
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(),
            TextColumn("step {task.completed}/{task.total}"),
            TextColumn("{task.fields[metrics]}"), TimeRemainingColumn(),
            console=CONSOLE, transient=False)
        self._task = None

    def on_train_begin(self, state: LoopState) -> None:
        self._progress.start()
        self._task = self._progress.add_task("train", total=state.total_steps,
                                              completed=state.step, epoch="1", metrics="")

    def on_steps(self, state: LoopState) -> None:
        self._progress.update(self._task, completed=state.step,
                              epoch=f"{state.epoch + 1}/{state.total_epochs}")

    def on_log(self, state: LoopState, record: dict[str, Any]) -> None:
        keys = [k for k in ("loss", "accuracy", "mae", "examples_per_sec", "tokens_per_sec",
                            "mfu") if k in record]
        self._progress.update(self._task, metrics=_fmt(record, keys))

    def on_train_end(self, state: LoopState) -> None:
        # the finished bar stays above the test metrics and the closing line, which is last
        self._progress.update(self._task, completed=state.step)
        self._progress.stop()

    def close(self) -> None:
        self._progress.stop()


class MetricsFile(Hook):
    """metrics.jsonl: one object per log interval and per evaluation."""

    def __init__(self, run_dir: Path):
        self._writer = MetricsWriter(run_dir / "metrics.jsonl")

    def on_log(self, state: LoopState, record: dict[str, Any]) -> None:
        self._writer.write(record)

    def on_eval(self, state: LoopState, record: dict[str, Any], improved: bool) -> None:
        self._writer.write(record)

    def on_test(self, state: LoopState, record: dict[str, Any]) -> None:
        self._writer.write(record)

    def close(self) -> None:
        self._writer.close()
