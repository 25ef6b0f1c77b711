"""The controller: decides how many steps each compiled call runs, when to log, evaluate and
stop. It reads top to bottom; what happens at each point is up to the hooks."""

from __future__ import annotations

import time

import numpy as np

from bigtrain.train.engine import Engine, LoopState, is_better, resolve_mode, summarize_interval


def _to_boundary(step: int, every: int) -> int:
    return every - step % every if every > 0 else 1 << 62


def fit_loop(engine: Engine, splits, t, state: LoopState, hooks: list) -> None:
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
        improved = is_better(value, state.best.get(t.monitor), mode)
        if improved:
            state.best = {k: v for k, v in record.items()}
        for h in hooks:
            h.on_eval(state, record, improved)

    for h in hooks:
        h.on_train_begin(state)
    iterator, iter_epoch = None, -1
    interval = np.zeros(len(engine.objective.stat_names))
    interval_steps, interval_time = 0, 0.0
    evaluated_at = -1
    while state.step < state.total_steps:
        state.epoch = state.step // spe
        if iter_epoch != state.epoch:  # a new epoch (or a resumed one): its own seeded order
            batches = splits.train_batches(t.batch_size, state.epoch).skip(state.step % spe)
            iterator = iter(engine.strategy.experimental_distribute_dataset(batches))
            iter_epoch = state.epoch
        n = min(t.steps_per_loop, spe - state.step % spe, state.total_steps - state.step,
                _to_boundary(state.step, t.log_every), _to_boundary(state.step, eval_every),
                _to_boundary(state.step, ckpt_every))
        tic = time.perf_counter()
        interval += engine.train_steps(iterator, n)
        interval_time += time.perf_counter() - tic
        interval_steps += n
        state.step += n
        end_of_epoch = state.step % spe == 0
        finished = state.step >= state.total_steps
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
        if state.step % eval_every == 0 or (t.eval_every == 0 and end_of_epoch) or finished:
            evaluate()
            evaluated_at = state.step
        for h in hooks:
            h.on_steps(state)
        if state.stop:
            break
    if evaluated_at != state.step and state.step > 0:
        evaluate()
    for h in hooks:
        h.on_train_end(state)
