"""`bigtrain eval RUN_DIR --watch`: evaluate each checkpoint a training run writes, as it
writes them, from another process (or another machine sharing the run dir).

The watcher only reads the run dir's checkpoints and writes files of its own
(`eval_watch_<split>.jsonl`, TensorBoard under `tb/eval_<split>`), so it never blocks the
training. It runs with few threads at a lower priority, so it does not slow it much on a
shared machine either. A checkpoint that the run's rotation deletes before it is read is
skipped. The watcher ends once the run has ended (its lock is gone and its summary written)
and every checkpoint left has been evaluated; run again, it goes on where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from bigtrain.core.errors import ConfigError
from bigtrain.run import rundir

log = logging.getLogger("bigtrain")
_CKPT = re.compile(r"ckpt-(\d+)\.index$")


def checkpoint_steps(directory: Path) -> dict[int, str]:
    """{step: checkpoint prefix} of the complete checkpoints in `directory` (a checkpoint's
    `.index` file is written after its data)."""
    out = {}
    if directory.is_dir():
        for path in directory.iterdir():
            m = _CKPT.match(path.name)
            if m:
                out[int(m.group(1))] = str(path.with_suffix(""))
    return out


def run_has_ended(run_dir: Path) -> bool:
    """No live run holds the run dir, and the run recorded how it ended."""
    from bigtrain.run.lock import live_holder

    summary = rundir.read_summary(run_dir) or {}
    return live_holder(run_dir) is None and summary.get("status") in rundir.STATUSES


def _done_steps(path: Path) -> set[int]:
    steps = set()
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                steps.add(int(json.loads(line)["step"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill
    return steps


def watch(run_dir: Path, split: str = "val", interval: float = 5.0, wait_start: float = 600.0,
          threads: int = 1) -> list[dict[str, Any]]:
    """Evaluate every new checkpoint of `run_dir` on `split` until the run has ended; return
    the records written this time (one per checkpoint)."""
    run_dir = Path(run_dir)
    _be_polite(threads)
    deadline = time.time() + wait_start
    while rundir.read_config(run_dir) is None:  # the run may not have started yet
        if time.time() > deadline:
            raise ConfigError("RUN_DIR", f"{run_dir} holds no bigtrain run (no config.yaml) "
                              f"after {wait_start:.0f} s of waiting")
        time.sleep(min(interval, 1.0))
    evaluator = _Evaluator(run_dir, split)
    out_path = run_dir / f"eval_watch_{split}.jsonl"
    done = _done_steps(out_path)
    written: list[dict[str, Any]] = []
    log.info("watching %s: evaluating each new checkpoint on the %s split (%d done before)",
             run_dir / "checkpoints", split, len(done))
    try:
        while True:
            ended = run_has_ended(run_dir)  # read before listing: nothing is missed after it
            pending = {s: p for s, p in checkpoint_steps(run_dir / "checkpoints").items()
                       if s not in done}
            for step in sorted(pending):
                record = evaluator.evaluate(pending[step], step)
                done.add(step)
                if record is None:
                    continue
                with open(out_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                written.append(record)
            if ended and not pending:
                break
            time.sleep(interval)
    finally:
        evaluator.close()
    log.info("the run has ended: %d checkpoint(s) evaluated this time, results in %s",
             len(written), out_path)
    return written


def _be_polite(threads: int) -> None:
    """Few threads and a lower priority: the training process comes first."""
    try:
        os.nice(10)
    except (AttributeError, OSError):
        pass
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already running in this process (tests)
        pass


class _Evaluator:
    """The run's model, built once from its config; each checkpoint restored into it."""

    def __init__(self, run_dir: Path, split: str):
        import tensorflow as tf

        from bigtrain.config.schema import from_resolved
        from bigtrain.train.fit import build

        self.split = split
        config = from_resolved(rundir.read_config(run_dir))
        self.c = build(config, run_dir)
        self.data = self.c.splits.eval_batches(split, config.trainer.eval_batch_size)
        self._tf = tf
        self._writer = tf.summary.create_file_writer(str(run_dir / "tb" / f"eval_{split}"))

    def evaluate(self, prefix: str, step: int) -> dict[str, Any] | None:
        from bigtrain.core.hooks import LoopState

        try:
            self.c.checkpointer.restore_from(prefix, LoopState())
        except (OSError, IndexError, self._tf.errors.OpError) as ex:  # rotated away
            log.info("checkpoint %s went away before it was read (%s); skipped", prefix,
                     type(ex).__name__)
            return None
        metrics = self.c.engine.evaluate(self.data, prefix=f"{self.split}_")
        record = {"step": step, "checkpoint": prefix, "time": time.time(), **metrics}
        with self._writer.as_default(step=step):
            for k, v in metrics.items():
                if isinstance(v, float):
                    self._tf.summary.scalar(k.removeprefix(f"{self.split}_"), v)
        self._writer.flush()
        log.info("step %d  %s", step, "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                                                 if isinstance(v, float)))
        return record

    def close(self) -> None:
        self._writer.close()
        self.c.checkpointer.close()
