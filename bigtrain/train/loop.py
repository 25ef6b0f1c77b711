"""The controller: how many steps each compiled call runs, when to log, evaluate, stop.

It reads top to bottom. Logging, checkpoints, progress and early stopping are hooks; the NaN
guard and preemption are small actions called at fixed points.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from bigtrain import faults
from bigtrain.train.engine import Engine, LoopState, is_better, resolve_mode, summarize_interval
from bigtrain.train.preemption import Preempted, PreemptionWatcher

log = logging.getLogger("bigtrain")


class NonFiniteLoss(RuntimeError):
    """The loss or the weights became NaN or infinite and the run cannot go on."""


class NanGuard:
    """`trainer.on_nan`: stop, or roll back to the last good checkpoint with half the learning
    rate (at most `nan_max_rollbacks` times)."""

    def __init__(self, mode: str, max_rollbacks: int, checkpointer, lr_scale):
        self.mode, self.max_rollbacks = mode, max_rollbacks
        self.checkpointer, self.lr_scale = checkpointer, lr_scale

    def handle(self, state: LoopState, first_step: int) -> None:
        where = f"between steps {first_step} and {state.step}"
        if self.mode == "stop":
            raise NonFiniteLoss(f"the loss or weights became NaN/Inf {where}; lower optim.lr, "
                                f"set trainer.clip_norm, or trainer.on_nan=rollback")
        if state.nan_rollbacks >= self.max_rollbacks:
            raise NonFiniteLoss(f"the loss became NaN/Inf {where} after {state.nan_rollbacks} "
                                f"rollbacks (trainer.nan_max_rollbacks); giving up")
        rollbacks = state.nan_rollbacks + 1
        path = self.checkpointer.restore(state)
        if path is None:
            raise NonFiniteLoss(f"the loss became NaN/Inf {where} before any checkpoint was "
                                f"written; nothing to roll back to")
        state.nan_rollbacks = rollbacks
        self.lr_scale.assign(self.lr_scale.numpy() * 0.5)
        log.warning("NaN/Inf %s: rolled back to %s (step %d), learning rate scale now %g "
                    "(rollback %d of %d)", where, path, state.step, self.lr_scale.numpy(),
                    rollbacks, self.max_rollbacks)


def _to_boundary(step: int, every: int) -> int:
    return every - step % every if every > 0 else 1 << 62


def fit_loop(engine: Engine, splits, t, state: LoopState, hooks: list, checkpointer,
             nan_guard: NanGuard) -> None:
    spe = state.steps_per_epoch
    eval_every = t.eval_every if t.eval_every > 0 else spe
    ckpt_every = t.checkpoint_every if t.checkpoint_every > 0 else spe
    mode = resolve_mode(t.monitor, t.monitor_mode)
    tokens = max(0, splits.spec.tokens_per_example)
    val_data = splits.eval_batches("val", t.eval_batch_size)

    def evaluate() -> None:
        record = engine.evaluate(val_data, "val_")
        record.update(step=state.step, epoch=round(state.step / spe, 4))
        state.last_eval = record
        value = record.get(t.monitor, state.last_train.get(t.monitor.removeprefix("train_")))
        improved = is_better(value, state.best.get(t.monitor), mode, t.min_delta)
        if improved:
            state.best = dict(record)
        for h in hooks:
            h.on_eval(state, record, improved)

    for h in hooks:
        h.on_train_begin(state)
    iterator, iter_epoch = None, -1
    interval = np.zeros(len(engine.objective.stat_names))
    interval_steps, interval_time = 0, 0.0
    evaluated_at = -1
    with PreemptionWatcher() as preemption:
        while state.step < state.total_steps and not state.stop_reason:
            state.epoch = state.step // spe
            if iter_epoch != state.epoch:  # a new or resumed epoch: its own seeded order
                batches = splits.train_batches(t.batch_size, state.epoch).skip(state.step % spe)
                iterator = iter(engine.strategy.experimental_distribute_dataset(batches))
                iter_epoch = state.epoch
            n = min(t.steps_per_loop, spe - state.step % spe, state.total_steps - state.step,
                    _to_boundary(state.step, t.log_every), _to_boundary(state.step, eval_every),
                    _to_boundary(state.step, ckpt_every))
            first = state.step + 1
            tic = time.perf_counter()
            totals = engine.train_steps(iterator, n)
            interval_time += time.perf_counter() - tic
            state.step += n
            faults.at("step", state.step)
            finished = state.step >= state.total_steps
            boundary = finished or state.step % eval_every == 0 or state.step % ckpt_every == 0
            if not math.isfinite(float(totals[0])) or (boundary and not engine.weights_finite()):
                nan_guard.handle(state, first)  # raises, or rolls back to a good checkpoint
                iter_epoch = -1
                interval[:] = 0
                interval_steps, interval_time = 0, 0.0
                continue
            interval += totals
            interval_steps += n
            if state.step % t.log_every == 0 or finished:
                record = summarize_interval(engine.objective, interval, interval_time,
                                            interval_steps * t.batch_size,
                                            interval_steps * t.batch_size * tokens)
                record.update(step=state.step, epoch=round(state.step / spe, 4),
                              lr=engine.learning_rate())
                state.last_train = record
                for h in hooks:
                    h.on_log(state, record)
                interval[:] = 0
                interval_steps, interval_time = 0, 0.0
            if state.step % eval_every == 0 or finished:
                evaluate()
                evaluated_at = state.step
            for h in hooks:
                h.on_steps(state)
            if preemption.requested:
                checkpointer.save(state)
                preemption.hand_over()
                raise Preempted(state.step, preemption.signal_name or "a signal")
    if evaluated_at != state.step and state.step > 0:
        evaluate()
    for h in hooks:
        h.on_train_end(state)
