"""tf.train checkpoints of everything a run needs to continue: weights, optimizer slots and
iteration counter, step, and the loop's bookkeeping (best metrics) as a JSON string."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import tensorflow as tf

from bigtrain.train.engine import LoopState

log = logging.getLogger("bigtrain")


class Checkpointer:
    def __init__(self, directory: Path, model, optimizer, keep: int):
        self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._state = tf.Variable("{}", dtype=tf.string, trainable=False, name="loop_state")
        self._ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, step=self._step,
                                         loop_state=self._state)
        self.directory = Path(directory)
        self._manager = tf.train.CheckpointManager(self._ckpt, str(self.directory),
                                                   max_to_keep=keep, checkpoint_name="ckpt")
        self._best = tf.train.CheckpointManager(self._ckpt, str(self.directory / "best"),
                                                max_to_keep=1, checkpoint_name="ckpt")
        self._last_saved = -1

    def _stamp(self, state: LoopState) -> None:
        self._step.assign(state.step)
        self._state.assign(json.dumps({"best": state.best, "epoch": state.epoch}))

    def save(self, state: LoopState) -> None:
        if state.step == self._last_saved:
            return
        self._stamp(state)
        path = self._manager.save(checkpoint_number=state.step)
        self._last_saved = state.step
        log.debug("checkpoint %s", path)

    def save_best(self, state: LoopState) -> None:
        self._stamp(state)
        self._best.save(checkpoint_number=state.step)

    def restore_latest(self, state: LoopState) -> bool:
        """Restore the newest checkpoint into the model, optimizer and `state`, if any."""
        latest = self._manager.latest_checkpoint
        if latest is None:
            return False
        self._ckpt.restore(latest).assert_existing_objects_matched()
        state.step = int(self._step.numpy())
        saved = json.loads(self._state.numpy().decode())
        state.best = saved.get("best", {})
        self._last_saved = state.step
        log.info("resumed from %s at step %d", latest, state.step)
        return True
