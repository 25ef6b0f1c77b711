"""bigtrain's training step: ours, compiled, under `strategy.run`.

Not `keras.Model.fit`, because Keras 3's fit fails under MultiWorkerMirroredStrategy
(keras-team/keras#20585, then tensorflow/tensorflow#72388), and under MirroredStrategy with
several steps per call (`steps_per_execution`, keras#19246), with `jit_compile=True` and with the
optimizer's gradient accumulation (keras#20582). Here the step does forward, loss scaled for the
global batch, gradients (accumulated over micro-batches if asked), clipping by the global norm of
the all-reduced gradient, and the optimizer update; several steps run inside one `tf.function`
call (`trainer.steps_per_loop`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from bigtrain.train.objective import Objective


@dataclass
class StepConfig:
    global_batch: int
    tokens_per_example: int = 0
    grad_accum: int = 1
    clip_norm: float = 0.0
    jit_compile: bool = False
    loss_scaling: bool = False  # fp16: the optimizer is a keras LossScaleOptimizer
    # batches are packed: inputs [B, T, 3] of token ids, segments and positions
    # (bigtrain/models/packing.py); the model is called on the ids inside a packing scope
    packed: bool = False


def _one_cpu(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` runs on one CPU device (or is the default strategy, which has no
    devices of its own and distributes a dataset as it is)."""
    if strategy.num_replicas_in_sync != 1:
        return False
    try:
        devices = tuple(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has no devices of its own
        return True
    return len(devices) == 1 and "CPU" in devices[0].upper()


def _compiled(fn, **kwargs):
    """`tf.function` without AutoGraph: the steps hold no Python control flow over tensors
    (Keras marks its own steps alike), and converting every layer's and the optimizer's
    Python cost ~1 s of each trace, most of the first step's (digits + cnn: 1.2-1.7 s -> 0.4 s)."""
    return tf.function(fn, autograph=False, **kwargs)


class Engine:
    """Compiled train and eval steps for one model, optimizer and strategy."""

    def __init__(self, strategy: tf.distribute.Strategy, model, optimizer, objective: Objective,
                 step: StepConfig):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.objective = objective
        self.cfg = step
        self._replicas = strategy.num_replicas_in_sync
        self._multi_worker = bool(getattr(strategy.extended, "_in_multi_worker_mode",
                                          lambda: False)())
        self._direct = _one_cpu(strategy)
        self._any_fn = None
        # XLA: on one replica the whole step (with the optimizer update) is compiled; across
        # replicas only forward and backward, since the update all-reduces
        whole = step.jit_compile and self._replicas == 1
        grads_fn = self._loss_and_grads
        self._grads = (_compiled(grads_fn, jit_compile=True)
                       if step.jit_compile and not whole else grads_fn)
        self._step_fn = (_compiled(self._replica_train_step, jit_compile=True) if whole
                         else self._replica_train_step)
        self._train_loop = _compiled(self._train_loop_impl)
        self._train_one = _compiled(self._train_one_impl)
        self._eval_step = _compiled(self._eval_step_impl, reduce_retracing=True)
        self._eval_traced = False

    # ------------------------------------------------------------------ replica functions
    def _loss_and_grads(self, x, y, denominator=None):
        """Gradients of one (micro-)batch; the loss is summed over this replica's examples and
        divided by the global count (of trained targets, where targets are masked: the
        `denominator` of the whole global batch), so summing over micro-batches and replicas
        averages over tokens."""
        model, obj = self.model, self.objective
        global_count = float(self.cfg.global_batch * max(1, self.cfg.tokens_per_example))
        if denominator is not None:
            global_count = denominator
        with tf.GradientTape() as tape:
            out = self._call(x, training=True)
            per_example = obj.per_example_loss(y, out)
            loss = tf.reduce_sum(per_example) / global_count
            if model.losses:
                loss += tf.add_n(model.losses) / (self._replicas * self.cfg.grad_accum)
            if self.cfg.loss_scaling:
                loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, model.trainable_variables)
        return grads, obj.stats(y, out, per_example)

    def _trained_targets(self, y):
        """The trained targets of the global batch (this replica's, summed over replicas),
        at least 1; None where every target trains (the count is then static)."""
        if not self.objective.masked:
            return None
        n = self.objective.trained_count(y)
        if self._replicas > 1:
            n = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, n)
        return tf.maximum(n, 1.0)

    def _replica_train_step(self, x, y):
        k = self.cfg.grad_accum
        denominator = self._trained_targets(y)
        if k == 1:
            grads, stats = self._grads(x, y, denominator)
        else:
            xs, ys = tf.split(x, k, axis=0), tf.split(y, k, axis=0)
            grads, stats = self._grads(xs[0], ys[0], denominator)
            for i in range(1, k):  # unrolled: k is small and static
                more, more_stats = self._grads(xs[i], ys[i], denominator)
                grads = [g + m for g, m in zip(grads, more, strict=True)]
                stats += more_stats
        variables = self.model.trainable_variables
        if self.cfg.clip_norm > 0:
            grads = self._clip(grads)
        self.optimizer.apply(grads, variables)
        return stats

    def _clip(self, grads):
        """Clip by the global norm of the gradient all replicas together apply."""
        clip = self.cfg.clip_norm
        if self.cfg.loss_scaling:  # grads are still scaled: clip at the scaled threshold
            clip = clip * tf.cast(self.optimizer.dynamic_scale, tf.float32)
        if self._replicas == 1:
            return tf.clip_by_global_norm(grads, clip)[0]
        ctx = tf.distribute.get_replica_context()
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        clipped, _ = tf.clip_by_global_norm(total, clip)
        # the optimizer sums over replicas again: hand each replica an equal share
        return [g / self._replicas for g in clipped]

    def _call(self, x, training: bool):
        """The model on a batch's inputs (a packed batch: its ids, inside a packing scope)."""
        if not self.cfg.packed:
            return self.model(x, training=training)
        from bigtrain.models import packing

        ids, segments, positions = packing.split(x)
        with packing.scope(segments, positions):
            return self.model(ids, training=training)

    def _replica_eval_step(self, x, y):
        out = self._call(x, training=False)
        per_example = self.objective.per_example_loss(y, out)
        return self.objective.stats(y, out, per_example)

    # ------------------------------------------------------------------ compiled functions
    def _train_loop_impl(self, iterator, num_steps):
        def step(i, totals):
            x, y = next(iterator)
            per_replica = self.strategy.run(self._step_fn, args=(x, y))
            return i + 1, totals + self.strategy.reduce(tf.distribute.ReduceOp.SUM,
                                                        per_replica, axis=None)

        zeros = tf.zeros([len(self.objective.stat_names)], tf.float32)
        _, totals = tf.while_loop(lambda i, _: i < num_steps, step, (tf.constant(0), zeros))
        return totals

    def _train_one_impl(self, iterator):
        """One step without the loop: a while-loop of one iteration costs a tiny model ~30%."""
        x, y = next(iterator)
        per_replica = self.strategy.run(self._step_fn, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _eval_step_impl(self, x, y):
        per_replica = self.strategy.run(self._replica_eval_step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    # ------------------------------------------------------------------ public
    @property
    def replicas(self) -> int:
        return self._replicas

    @property
    def multi_worker(self) -> bool:
        return self._multi_worker

    def train_steps(self, iterator, num_steps: int) -> np.ndarray:
        """Run `num_steps` steps from `iterator`; return the summed statistics."""
        if num_steps == 1:
            return self._train_one(iterator).numpy()
        return self._train_loop(iterator, tf.constant(num_steps, tf.int32)).numpy()

    def distribute(self, dataset: tf.data.Dataset):
        """What the steps iterate: the strategy's distributed dataset, or on one CPU device the
        dataset itself. There, a distributed dataset only adds a per-device copy pipeline of
        tf.data's own (a GeneratorDataset, autotuned), and deleting its iterator waits for its
        autotune thread's next wake-up: seconds after each epoch and each evaluation."""
        if self._direct:
            return dataset
        return self.strategy.experimental_distribute_dataset(dataset)

    def evaluate(self, dataset: tf.data.Dataset, prefix: str = "val_") -> dict[str, float]:
        """Metrics over the whole dataset; with `optim.ema`, of the averaged weights."""
        from bigtrain.core import faults

        faults.at("eval")
        totals = np.zeros(len(self.objective.stat_names))
        data = self.distribute(dataset)
        if not self._eval_traced:  # once, for any batch size: a last partial batch, each split's
            self._eval_step.get_concrete_function(*data.element_spec)
            self._eval_traced = True
        with self.ema_weights():
            for x, y in data:
                totals += self._eval_step(x, y).numpy()
        return self.objective.finalize(totals, prefix)

    @contextlib.contextmanager
    def ema_weights(self):
        """Swap the weights' moving average in (if the optimizer keeps one), then back."""
        opt = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        averages = getattr(opt, "_model_variables_moving_average", None)
        if not getattr(opt, "use_ema", False) or not averages:
            yield
            return
        pairs = list(zip(opt._trainable_variables, averages, strict=True))
        saved = [v.numpy() for v, _ in pairs]
        for v, a in pairs:
            v.assign(a)
        try:
            yield
        finally:
            for (v, _), value in zip(pairs, saved, strict=True):
                v.assign(value)

    def any_worker(self, flag: bool) -> bool:
        """Whether `flag` holds in any worker of a multi-worker run (one all-reduce of a
        scalar; every worker must call it at the same point), else `flag` itself. A signal
        seen by one worker thus stops all of them at the same step: saving is collective."""
        if not self._multi_worker:
            return flag
        if self._any_fn is None:
            strategy = self.strategy

            @tf.function(autograph=False)
            def any_fn(value):
                per_replica = strategy.run(lambda v: tf.identity(v), args=(value,))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

            self._any_fn = any_fn
        return bool(self._any_fn(tf.constant(1.0 if flag else 0.0)).numpy() > 0)

    def weights_finite(self) -> bool:
        return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.model.variables
                   if tf.as_dtype(v.dtype).is_floating)

    def learning_rate(self) -> float:
        opt = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        lr = opt.learning_rate
        return float(lr.numpy() if hasattr(lr, "numpy") else lr)

