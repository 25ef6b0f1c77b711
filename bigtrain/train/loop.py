"""The controller, in the shape of Orbit's (tensorflow/models orbit/controller.py):

    while step < total:  n = next_chunk();  chunk = run(n);  for action in actions: action(chunk)

The compiled steps are the engine's; everything done between calls (the NaN guard, train
records, evaluation, early stopping, checkpoints, the hooks' on_steps, preemption) is an action
(bigtrain/train/actions.py), and `_actions` fixes their order. Hooks watch; actions act.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bigtrain.core import faults
from bigtrain.core.hooks import Hook, LoopState, resolve_mode
from bigtrain.train.actions import (
    Action,
    Checkpoint,
    Chunk,
    EarlyStopping,
    Evaluate,
    Interval,
    LogTrain,
    NanGuard,
    Preemption,
    Profile,
    ProfileStop,
    StepHooks,
)
from bigtrain.train.preemption import PreemptionWatcher

if TYPE_CHECKING:  # the loop itself runs whatever engine it is given, without TensorFlow
    from bigtrain.train.engine import Engine


class Feed:
    """Runs the engine's compiled steps on the training batches. Each epoch has its own seeded
    order, so the data follows from the step alone: the iterator is rebuilt whenever the step
    is not where it left off (a new epoch, a resume, a NaN rollback)."""

    def __init__(self, engine: Engine, splits, batch_size: int, state: LoopState):
        self.engine, self.splits, self.batch_size, self.state = engine, splits, batch_size, state
        self._iterator, self._at = None, -1  # the step the iterator's next batch is for

    def _batches_from(self, step: int):
        spe = self.state.steps_per_epoch
        if self._at != step or step % spe == 0:
            batches = self.splits.train_batches(self.batch_size, step // spe).skip(step % spe)
            self._iterator = iter(self.engine.distribute(batches))
        return self._iterator

    def train(self, steps: int) -> Chunk:
        """`steps` steps in one compiled call; `state.step` moves on by `steps`."""
        state = self.state
        state.epoch = state.step // state.steps_per_epoch
        iterator = self._batches_from(state.step)
        first = state.step + 1
        tic = time.perf_counter()
        totals = self.engine.train_steps(iterator, steps)
        seconds = time.perf_counter() - tic
        state.step = self._at = state.step + steps
        faults.at("step", state.step)
        return Chunk(first, state.step, totals, seconds, state.step >= state.total_steps)


#: the actions whose time summary.json's `timing` block names (bigtrain/core/timing.py)
TIMED = {Evaluate: "eval", Checkpoint: "checkpoint"}


def next_chunk(state: LoopState, steps_per_loop: int, actions: list[Action]) -> int:
    """Steps for the next compiled call: at most `steps_per_loop`, and never past the end of
    the epoch, of the run, or the next step at which an action has work to do."""
    step, spe = state.step, state.steps_per_epoch
    return min(steps_per_loop, spe - step % spe, state.total_steps - step,
               *(a.steps_to_due(step) for a in actions))


def _actions(engine: Engine, splits, t, state: LoopState, hooks: list[Hook], checkpointer,
             lr_scale, preemption: PreemptionWatcher, mfu=None, trace_dir: str | None = None,
             more_eval=None) -> list[Action]:
    """The actions, in the order they run: the NaN guard before anything uses the steps;
    early stopping and the checkpoints after the evaluation they judge and save; the hooks'
    on_steps after the saves; preemption last, with the step's work all done. A profiler
    trace (`trace_dir`, trainer.profile_steps) stops first and starts last."""
    spe = state.steps_per_epoch
    filled = (getattr(splits, "report", None) or {}).get("filled_share")
    interval = Interval(engine.objective, t.batch_size, splits.spec.tokens_per_example, mfu,
                        filled)
    val_data = splits.eval_batches("val", t.eval_batch_size)
    def evaluation() -> dict:
        record = engine.evaluate(val_data, "val_")
        return {**record, **more_eval()} if more_eval is not None else record

    evaluate = Evaluate(evaluation, state, hooks,
                        t.eval_every if t.eval_every > 0 else spe, t.monitor,
                        resolve_mode(t.monitor, t.monitor_mode), t.min_delta)
    checkpoint = Checkpoint(checkpointer, state,
                            t.checkpoint_every if t.checkpoint_every > 0 else spe)
    nan_guard = NanGuard(t.on_nan, t.nan_max_rollbacks, checkpointer, lr_scale, state=state,
                         weights_finite=engine.weights_finite, interval=interval,
                         before=(evaluate, checkpoint))
    early = [EarlyStopping(state, t.monitor, t.patience)] if t.patience > 0 else []
    profile = [Profile(trace_dir, t.profile_start, t.profile_steps)] \
        if trace_dir and t.profile_steps > 0 else []
    return [*(ProfileStop(p) for p in profile), nan_guard,
            LogTrain(interval, state, hooks, t.log_every, engine.learning_rate),
            evaluate, *early, checkpoint, StepHooks(state, hooks),
            Preemption(preemption, checkpointer, state,
                       getattr(engine, "any_worker", lambda flag: flag)), *profile]


def fit_loop(engine: Engine, splits, trainer, state: LoopState, hooks: list[Hook],
             checkpointer, lr_scale, mfu=None, trace_dir: str | None = None,
             more_eval=None) -> None:
    """Train from `state.step` until `state.total_steps` or an action or hook stops the run.
    `trainer`: the trainer group's settings; `mfu` (bigtrain/train/mfu.py) adds MFU to the
    train records; `trace_dir`: where the profiler trace of trainer.profile_steps goes;
    `more_eval`: metrics added to each evaluation's record (trainer.eval_tasks)."""
    preemption = PreemptionWatcher()
    actions = _actions(engine, splits, trainer, state, hooks, checkpointer, lr_scale, preemption,
                       mfu, trace_dir, more_eval)
    feed = Feed(engine, splits, trainer.batch_size, state)
    state.start_step, state.start_time = state.step, time.time()
    for h in hooks:
        h.on_train_begin(state)
    with preemption:
        while state.step < state.total_steps and not state.stop_reason:
            chunk = feed.train(next_chunk(state, trainer.steps_per_loop, actions))
            state.timing.step(chunk.seconds)
            for action in actions:
                with state.timing.timed(TIMED.get(type(action))):
                    action(chunk)
                if chunk.discarded:  # rolled back: these steps never happened
                    break
    closing = Chunk.closing(state)
    for action in actions:  # the final evaluation if one is missing, the last checkpoint
        with state.timing.timed(TIMED.get(type(action))):
            action.end(closing)
    for h in hooks:
        h.on_train_end(state)
