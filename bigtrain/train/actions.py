"""The loop's actions: what runs after each compiled call, in a fixed order (Orbit's
controller actions, tensorflow/models orbit/controller.py).

An action is built with what it works on (the state, the checkpointer, the hooks) and called
with the `Chunk` the call produced; `end` runs once after the last chunk; `steps_to_due`
tells the loop how far the chunk may run before the action has work to do. Actions may change
the run (evaluate, save, roll back, stop, raise); hooks (bigtrain/core/hooks.py) are the other
protocol: they are told what the actions did and write it down.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigtrain.core.hooks import Hook, LoopState, is_better
from bigtrain.train.preemption import Preempted, PreemptionWatcher

log = logging.getLogger("bigtrain")

NEVER = 1 << 62


class NonFiniteLoss(RuntimeError):
    """The loss or the weights became NaN or infinite and the run cannot go on."""


@dataclass
class Chunk:
    """What one compiled call did: steps `first`..`last`, their summed statistics, and what
    the actions made of them so far."""

    first: int
    last: int  # state.step after the call
    totals: np.ndarray | None  # None for the closing chunk that `end` receives
    seconds: float
    finished: bool  # the run reached its total steps
    evaluation: dict[str, Any] | None = None  # the eval record, if one was made
    improved: bool = False  # ... and it improved on the best
    discarded: bool = False  # rolled back by the NaN guard: the later actions skip it

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    @classmethod
    def closing(cls, state: LoopState) -> Chunk:
        """The empty chunk `end` sees, at the step the loop stopped at."""
        return cls(state.step + 1, state.step, None, 0.0, finished=True)


class Action:
    """One thing the loop does after every compiled call; each method is a no-op here."""

    def __call__(self, chunk: Chunk) -> None: ...

    def end(self, chunk: Chunk) -> None:
        """Once, after the last chunk (`chunk` is `Chunk.closing`)."""

    def steps_to_due(self, step: int) -> int:
        """How many steps after `step` this action next has work to do."""
        return NEVER


class Periodic(Action):
    """An action due every `every` steps (and, with `at_finish`, at the run's last step)."""

    every: int = 1
    at_finish: bool = False

    def due(self, chunk: Chunk) -> bool:
        return chunk.last % self.every == 0 or (self.at_finish and chunk.finished)

    def steps_to_due(self, step: int) -> int:
        return self.every - step % self.every


class Interval:
    """The running sums since the last train record: statistics, steps and seconds."""

    def __init__(self, objective, batch_size: int, tokens_per_example: int, mfu=None,
                 filled: float | None = None):
        self.objective, self.batch_size = objective, batch_size
        self.tokens_per_example = max(0, tokens_per_example)
        self.mfu = mfu  # bigtrain/train/mfu.py: adds mfu and flops_per_sec to the record
        # instruction data: the share of the training windows' positions that hold a token
        # (not padding), reported as packing_efficiency beside trained tokens per second
        self.filled = filled
        self.reset()

    def reset(self) -> None:
        self.totals = np.zeros(len(self.objective.stat_names))
        self.steps, self.seconds = 0, 0.0

    def add(self, chunk: Chunk) -> None:
        self.totals += chunk.totals
        self.steps += chunk.count
        self.seconds += chunk.seconds

    def record(self) -> dict[str, Any]:
        """The interval's train record (metrics and throughput); the sums start again."""
        record: dict[str, Any] = self.objective.finalize(self.totals, baseline=False)
        examples = self.steps * self.batch_size
        tokens = examples * self.tokens_per_example
        record["examples_per_sec"] = examples / self.seconds if self.seconds > 0 else None
        if tokens:
            record["tokens_per_sec"] = tokens / self.seconds if self.seconds > 0 else None
        if getattr(self.objective, "masked", False):  # the targets the loss was taken on
            trained = float(self.totals[1])
            record["trained_tokens_per_sec"] = trained / self.seconds if self.seconds > 0 \
                else None
            if self.filled is not None:
                record["packing_efficiency"] = self.filled
        if self.mfu is not None:
            self.mfu.add(record)
        self.reset()
        return record


class NanGuard(Action):
    """`trainer.on_nan`: stop, or roll back to the last good checkpoint with half the learning
    rate (at most `nan_max_rollbacks` times). The loss is checked after every call; the
    weights (a pass over every variable) only before an evaluation or a checkpoint could use
    them. A rollback moves `state.step` back, which the loop's data feed follows."""

    def __init__(self, mode: str, max_rollbacks: int, checkpointer, lr_scale, *,
                 state: LoopState, weights_finite: Callable[[], bool], interval: Interval,
                 before: Sequence[Periodic] = ()):
        self.mode, self.max_rollbacks = mode, max_rollbacks
        self.checkpointer, self.lr_scale = checkpointer, lr_scale
        self.state, self.weights_finite, self.interval = state, weights_finite, interval
        self.before = before

    def __call__(self, chunk: Chunk) -> None:
        if self._finite(chunk):
            return
        self.handle(self.state, chunk.first)  # raises, or rolls back to a good checkpoint
        self.interval.reset()
        chunk.discarded = True

    def _finite(self, chunk: Chunk) -> bool:
        if not math.isfinite(float(chunk.totals[0])):
            return False
        return not any(a.due(chunk) for a in self.before) or self.weights_finite()

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


class LogTrain(Periodic):
    """Every `log_every` steps and at the last: the interval's train record, to the hooks."""

    at_finish = True

    def __init__(self, interval: Interval, state: LoopState, hooks: Sequence[Hook],
                 every: int, learning_rate: Callable[[], float]):
        self.interval, self.state, self.hooks = interval, state, hooks
        self.every, self.learning_rate = every, learning_rate

    def __call__(self, chunk: Chunk) -> None:
        self.interval.add(chunk)
        if not self.due(chunk):
            return
        record = self.interval.record()
        record.update(step=chunk.last, epoch=round(chunk.last / self.state.steps_per_epoch, 4),
                      lr=self.learning_rate())
        self.state.last_train = record
        for h in self.hooks:
            h.on_log(self.state, record)


class Evaluate(Periodic):
    """Every `every` steps, at the last step, and at the end if the step the loop stopped at
    was not evaluated: the val metrics, judged against the best by `trainer.monitor` (an
    eval metric such as val_loss, else a train one: loss or train_loss)."""

    at_finish = True

    def __init__(self, evaluate: Callable[[], dict[str, Any]], state: LoopState,
                 hooks: Sequence[Hook], every: int, monitor: str, mode: str, min_delta: float):
        self.evaluate, self.state, self.hooks, self.every = evaluate, state, hooks, every
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta

    def __call__(self, chunk: Chunk) -> None:
        if self.due(chunk):
            self._run(chunk)

    def end(self, chunk: Chunk) -> None:
        if self.state.step > 0 and self.state.last_eval.get("step") != self.state.step:
            self._run(chunk)

    def _run(self, chunk: Chunk) -> None:
        state = self.state
        record = self.evaluate()
        record.update(step=state.step, epoch=round(state.step / state.steps_per_epoch, 4))
        state.last_eval = record
        improved = is_better(self._monitored(), state.best.get(self.monitor), self.mode,
                             self.min_delta)
        if improved:
            state.best = dict(record)
        chunk.evaluation, chunk.improved = record, improved
        for h in self.hooks:
            h.on_eval(state, record, improved)

    def _monitored(self) -> float | None:
        if self.monitor in self.state.last_eval:
            return self.state.last_eval[self.monitor]
        return self.state.last_train.get(self.monitor.removeprefix("train_"))


class EarlyStopping(Action):
    """Stops after `patience` evaluations without an improvement of `trainer.monitor`. A stop
    asked for already (by a search's pruner at the same evaluation) keeps its reason."""

    def __init__(self, state: LoopState, monitor: str, patience: int):
        self.state, self.monitor, self.patience = state, monitor, patience

    def __call__(self, chunk: Chunk) -> None:
        if chunk.evaluation is None:
            return
        state = self.state
        state.evals_without_improvement = (0 if chunk.improved
                                           else state.evals_without_improvement + 1)
        if state.evals_without_improvement >= self.patience:
            reason = (f"early stopping: {self.monitor} did not improve in {self.patience} "
                      f"evaluations")
            log.info("%s (best %s)", reason, state.best.get(self.monitor))
            state.stop_reason = state.stop_reason or reason

    end = __call__


class Checkpoint(Periodic):
    """Saves every `every` steps and at the end; after an improving evaluation, the best
    checkpoint too. Runs after the evaluation and early stopping, so that what it saves of the
    state (best, the early-stopping count) is this step's."""

    def __init__(self, checkpointer, state: LoopState, every: int):
        self.checkpointer, self.state, self.every = checkpointer, state, every

    def __call__(self, chunk: Chunk) -> None:
        if chunk.improved:
            self.checkpointer.save_best(self.state)
        if self.due(chunk):
            self.checkpointer.save(self.state)

    def end(self, chunk: Chunk) -> None:
        if chunk.improved:
            self.checkpointer.save_best(self.state)
        self.checkpointer.save(self.state)  # a no-op if this step is saved already


class StepHooks(Action):
    """The hooks' `on_steps` (progress bars, tests' probes), once the step's saves are done."""

    def __init__(self, state: LoopState, hooks: Sequence[Hook]):
        self.state, self.hooks = state, hooks

    def __call__(self, chunk: Chunk) -> None:
        for h in self.hooks:
            h.on_steps(self.state)


class Preemption(Action):
    """After SIGTERM, SIGUSR2 or Ctrl-C: save a checkpoint, hand the signal over to the
    handler that was there before (submitit's requeue), raise `Preempted`. In a multi-worker
    run the flag is all-reduced at every boundary (`any_worker`), so a signal to any one
    worker stops every worker at the same step, each with its part of the checkpoint."""

    def __init__(self, watcher: PreemptionWatcher, checkpointer, state: LoopState,
                 any_worker: Callable[[bool], bool] = lambda flag: flag):
        self.watcher, self.checkpointer, self.state = watcher, checkpointer, state
        self.any_worker = any_worker

    def __call__(self, chunk: Chunk) -> None:
        if not self.any_worker(self.watcher.requested):
            return
        self.checkpointer.save(self.state)
        self.watcher.hand_over()
        raise Preempted(self.state.step, self.watcher.signal_name
                        or "a signal to another worker")


class Profile(Action):
    """`trainer.profile_steps`: a TensorFlow profiler trace of steps `start + 1` ..
    `start + steps` into `logdir` (TensorBoard's profile plugin reads `logdir/plugins/profile/`).
    The trace starts after the call that ends at `start`, once that step's actions are done
    (this action runs last), and stops right after the call that ends its last step (`stop`
    runs first), so evaluations and checkpoints around it stay out of the trace."""

    def __init__(self, logdir: str, start: int, steps: int):
        self.logdir, self.start, self.steps = logdir, start, steps
        self.running = self.done = False

    def __call__(self, chunk: Chunk) -> None:
        if self.done or self.running or chunk.last < self.start or chunk.finished:
            return
        import tensorflow as tf

        tf.profiler.experimental.start(self.logdir, tf.profiler.experimental.ProfilerOptions(
            host_tracer_level=2, python_tracer_level=0, device_tracer_level=1))
        self.running, self.first = True, chunk.last + 1
        log.info("profiling steps %d-%d into %s", self.first, self.first + self.steps - 1,
                 self.logdir)

    def steps_to_due(self, step: int) -> int:
        if self.done:
            return NEVER
        if not self.running:
            return max(1, self.start - step)
        return max(1, self.first + self.steps - 1 - step)

    def stop(self, chunk: Chunk | None = None) -> None:
        """Ends the trace once its steps ran (`chunk`), or whenever it runs (`chunk` None)."""
        if not self.running or (chunk is not None and chunk.last < self.first + self.steps - 1):
            return
        import tensorflow as tf

        tf.profiler.experimental.stop()
        self.running, self.done = False, True
        log.info("profiler trace written: tensorboard --logdir %s", self.logdir)

    def end(self, chunk: Chunk) -> None:
        if self.running:
            self.stop()
        elif not self.done:
            log.warning("trainer.profile_steps: the run ended at step %d, before the trace's "
                        "first step (trainer.profile_start=%d); no trace", chunk.last,
                        self.start)


class ProfileStop(Action):
    """The first action: ends the Profile action's trace right after its last step."""

    def __init__(self, profile: Profile):
        self.profile = profile

    def __call__(self, chunk: Chunk) -> None:
        self.profile.stop(chunk)

    def steps_to_due(self, step: int) -> int:
        return self.profile.steps_to_due(step)
