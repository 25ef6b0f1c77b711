"""bigtrain's training loop: compiled steps under `strategy.run`, driven by a small controller.

The inner step (forward, loss, gradients, update) is ours, not `keras.Model.fit`, because fit
cannot run under MultiWorkerMirroredStrategy, nor do several steps per call under a strategy
(see DESIGN.md). Several steps run inside one `tf.function` call (`trainer.steps_per_loop`).
The controller in `fit` owns intervals; hooks do the logging, checkpoints and progress.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from bigtrain.train.objective import Objective


@dataclass
class LoopState:
    """Where the loop is; hooks read it."""

    step: int = 0
    epoch: int = 0  # epochs started so far; epoch (0-based) of the current step
    total_steps: int = 0
    steps_per_epoch: int = 0
    total_epochs: int = 0
    best: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)
    last_train: dict[str, float] = field(default_factory=dict)
    start_time: float = field(default_factory=time.time)
    stop: bool = False


class Engine:
    """Compiled train and eval steps for one model, optimizer and strategy."""

    def __init__(self, strategy: tf.distribute.Strategy, model, optimizer, objective: Objective,
                 global_batch: int, tokens_per_example: int = 0, clip_norm: float = 0.0,
                 jit_compile: bool = False):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.objective = objective
        self.global_batch = global_batch
        self.tokens_per_example = tokens_per_example
        self.clip_norm = clip_norm
        self._train_loop = tf.function(self._train_loop_impl, jit_compile=None)
        self._eval_step = tf.function(self._eval_step_impl, reduce_retracing=True)
        self._jit = jit_compile

    # ------------------------------------------------------------------ replica functions
    def _replica_train_step(self, x, y):
        model, obj = self.model, self.objective
        # the loss is summed over this replica's examples and divided by the *global* count,
        # so the gradients all-reduced by the optimizer average over the global batch
        global_count = float(self.global_batch * max(1, self.tokens_per_example))
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            per_example = obj.per_example_loss(y, out)
            loss = tf.reduce_sum(per_example) / global_count
            if model.losses:
                loss += tf.add_n(model.losses) / self.strategy.num_replicas_in_sync
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        if self.clip_norm > 0:
            grads, _ = tf.clip_by_global_norm(grads, self.clip_norm)
        self.optimizer.apply(grads, variables)
        return obj.stats(y, out, per_example)

    def _replica_eval_step(self, x, y):
        out = self.model(x, training=False)
        per_example = self.objective.per_example_loss(y, out)
        return self.objective.stats(y, out, per_example)

    # ------------------------------------------------------------------ compiled functions
    def _train_loop_impl(self, iterator, num_steps):
        totals = tf.zeros([len(self.objective.stat_names)], tf.float32)
        for _ in tf.range(num_steps):
            x, y = next(iterator)
            per_replica = self.strategy.run(self._replica_train_step, args=(x, y))
            totals += self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        return totals

    def _eval_step_impl(self, x, y):
        per_replica = self.strategy.run(self._replica_eval_step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    # ------------------------------------------------------------------ public
    def train_steps(self, iterator, num_steps: int) -> np.ndarray:
        """Run `num_steps` steps from `iterator`; return the summed statistics."""
        return self._train_loop(iterator, tf.constant(num_steps, tf.int32)).numpy()

    def evaluate(self, dataset: tf.data.Dataset, prefix: str = "val_") -> dict[str, float]:
        totals = np.zeros(len(self.objective.stat_names))
        for x, y in self.strategy.experimental_distribute_dataset(dataset):
            totals += self._eval_step(x, y).numpy()
        return self.objective.finalize(totals, prefix)

    def learning_rate(self) -> float:
        lr = self.optimizer.learning_rate
        return float(lr.numpy() if hasattr(lr, "numpy") else lr)


def is_better(value: float, best: float | None, mode: str) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def resolve_mode(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "max" if any(k in monitor for k in ("acc", "auc")) else "min"


def summarize_interval(objective: Objective, totals: np.ndarray, seconds: float,
                       examples: int, tokens: int) -> dict[str, Any]:
    record: dict[str, Any] = objective.finalize(totals)
    record["examples_per_sec"] = examples / seconds if seconds > 0 else None
    if tokens:
        record["tokens_per_sec"] = tokens / seconds if seconds > 0 else None
    return record
