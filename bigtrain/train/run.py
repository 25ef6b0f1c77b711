"""One training run, top to bottom: seed, data, strategy, model, optimizer, loop, summary."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bigtrain import runs
from bigtrain.config.schema import FitConfig

log = logging.getLogger("bigtrain")


def _hooks(config: FitConfig, run_dir: Path, checkpointer, steps_per_epoch: int) -> list:
    from bigtrain.logs import CONSOLE
    from bigtrain.train import hooks

    t = config.trainer
    chosen: list = []
    progress = t.progress
    if progress == "auto":
        progress = "rich" if CONSOLE.is_terminal else "plain"
    if progress == "rich":
        chosen.append(hooks.RichProgress())
    elif progress == "plain":
        chosen.append(hooks.PlainProgress())
    chosen.append(hooks.MetricsFile(run_dir))
    if t.tensorboard:
        chosen.append(hooks.TensorBoard(run_dir))
    chosen.append(hooks.Checkpoints(checkpointer, t.checkpoint_every, steps_per_epoch))
    return chosen


def train(config: FitConfig, run_dir: Path) -> dict[str, Any]:
    """Train as configured; write summary.json; return the summary."""
    import keras
    import tensorflow as tf

    from bigtrain.data import build_dataset
    from bigtrain.distribute import build_strategy, per_replica_batch
    from bigtrain.models import build_model
    from bigtrain.optim import build_optimizer
    from bigtrain.train.checkpoint import Checkpointer
    from bigtrain.train.engine import Engine, LoopState
    from bigtrain.train.loop import fit_loop
    from bigtrain.train.objective import Objective

    t = config.trainer
    start = time.time()
    keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()

    splits = build_dataset(config.dataset)
    spec = splits.spec
    steps_per_epoch = splits.steps_per_epoch(t.batch_size)
    if steps_per_epoch == 0:
        from bigtrain.config.errors import ConfigError

        raise ConfigError("trainer.batch_size", f"{t.batch_size} is larger than the training "
                          f"split ({spec.num_train} examples); use a smaller batch")
    strategy = build_strategy(config.strategy)
    per_replica_batch(t.batch_size, strategy)
    log.info("data %s: %s, input %s, %d train / %d val / %d test", spec.name, spec.task,
             spec.input_shape, spec.num_train, spec.num_val, spec.num_test)

    with strategy.scope():
        model = build_model(config.model, spec)
        optimizer = build_optimizer(config.optim)
        optimizer.build(model.trainable_variables)
    params = int(sum(int(tf.size(v)) for v in model.trainable_variables))
    log.info("model %s: %s trainable parameters", config.model.name, f"{params:,}")

    engine = Engine(strategy, model, optimizer, Objective(spec.task), t.batch_size,
                    tokens_per_example=spec.tokens_per_example, clip_norm=config.optim.clip_norm)
    checkpointer = Checkpointer(run_dir / "checkpoints", model, optimizer, t.keep_checkpoints)
    total_steps = steps_per_epoch * t.epochs
    if t.max_steps > 0:
        total_steps = min(total_steps, t.max_steps) if t.max_steps < total_steps else t.max_steps
    state = LoopState(total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                      total_epochs=-(-total_steps // steps_per_epoch))
    if t.resume:
        checkpointer.restore_latest(state)

    hooks = _hooks(config, run_dir, checkpointer, steps_per_epoch)
    try:
        fit_loop(engine, splits, t, state, hooks)
    finally:
        for h in hooks:
            h.close()

    final = dict(state.last_train)
    final.update(state.last_eval)
    final.update(engine.evaluate(splits.eval_batches("test", t.eval_batch_size), "test_")
                 if spec.num_test else {})
    summary = {
        "status": "completed",
        "steps": state.step,
        "epochs": state.step / steps_per_epoch,
        "final": final,
        "best": state.best,
        "monitor": t.monitor,
        "params": params,
        "wall_s": round(time.time() - start, 3),
        "examples_per_sec": state.last_train.get("examples_per_sec"),
        "tokens_per_sec": state.last_train.get("tokens_per_sec"),
        "run_dir": str(run_dir),
    }
    runs.write_summary(run_dir, summary)
    log.info("done: %d steps in %.1fs  %s", state.step, summary["wall_s"],
             "  ".join(f"{k} {v:.4f}" for k, v in final.items() if k.startswith(("val_", "test_"))))
    return summary
