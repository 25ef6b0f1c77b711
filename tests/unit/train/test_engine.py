"""The training engine in-process (one TensorFlow for all): step maths, loop control, NaN guard,
early stopping, checkpoints, resume modes, eval and export."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.core.hooks import Hook  # noqa: E402
from bigtrain.run.job import train
from bigtrain.train.actions import NonFiniteLoss  # noqa: E402
from bigtrain.train.checkpoint import CheckpointError  # noqa: E402
from bigtrain.train.fit import build  # noqa: E402

SMALL = ["debug=smoke", "model=mlp", "model.hidden=[32]", "trainer.progress=none",
         "trainer.steps_per_loop=1",
         "logger=[]", "trainer.deterministic=true", "strategy.precision=fp32"]


def config(*overrides: str):
    return to_typed(compose([*SMALL, *overrides]))


def weights(model) -> list[np.ndarray]:
    return [v.numpy() for v in model.trainable_variables]


def one_step(overrides: list[str], run_dir: Path) -> list[np.ndarray]:
    """Build from the config and run exactly one optimizer step; return the new weights."""
    c = build(config(*overrides), run_dir)
    batches = c.splits.train_batches(config(*overrides).trainer.batch_size, 0)
    it = iter(c.strategy.experimental_distribute_dataset(batches))
    c.engine.train_steps(it, 1)
    return weights(c.model)


def test_gradient_accumulation_equals_the_full_batch(tmp_path):
    base = ["model.dropout=0", "optim=sgd", "optim.momentum=0"]
    full = one_step(base, tmp_path / "a")
    accumulated = one_step([*base, "trainer.grad_accum=4"], tmp_path / "b")
    for a, b in zip(full, accumulated, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # and it is not a no-op: the weights moved from their initial values
    c = build(config(*base), tmp_path / "c")
    assert any(not np.allclose(a, b) for a, b in zip(full, weights(c.model), strict=True))


def test_clipping_bounds_the_update_by_the_global_norm(tmp_path):
    base = ["model.dropout=0", "optim=sgd", "optim.momentum=0", "optim.lr=1.0"]
    c = build(config(*base), tmp_path / "init")
    before = weights(c.model)
    after = one_step([*base, "trainer.clip_norm=0.001"], tmp_path / "clip")
    norm = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after, before, strict=True)))
    assert norm == pytest.approx(0.001, rel=1e-3)  # lr * clip_norm
    unclipped = one_step(base, tmp_path / "free")
    free = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(unclipped, before, strict=True)))
    assert free > 0.01


def test_steps_per_loop_gives_the_same_weights(tmp_path):
    a = train(config("trainer.max_steps=8"), tmp_path / "a")
    b = train(config("trainer.max_steps=8", "trainer.steps_per_loop=4"), tmp_path / "b")
    assert a["final"]["loss"] == pytest.approx(b["final"]["loss"], rel=1e-6)
    assert a["final"]["val_loss"] == pytest.approx(b["final"]["val_loss"], rel=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_like_fp32(tmp_path, precision):
    import keras

    args = ["trainer.max_steps=20", "trainer.eval_every=20", "optim.lr=0.01", "model.dropout=0"]
    reference = train(config(*args), tmp_path / "fp32")
    summary = train(config(*args, f"strategy.precision={precision}"), tmp_path / precision)
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the model's own, not global
    assert summary["status"] == "completed"
    assert reference["final"]["loss"] < 1.5  # the reference learned (chance: ln 10 = 2.30)
    assert summary["final"]["loss"] == pytest.approx(reference["final"]["loss"], abs=0.1)


def test_fp16_uses_dynamic_loss_scaling(tmp_path):
    import keras

    c = build(config("strategy.precision=fp16"), tmp_path)
    assert isinstance(c.optimizer, keras.optimizers.LossScaleOptimizer)
    assert c.model.dtype_policy.name == "mixed_float16"


def test_xla_step_trains_like_the_plain_step(tmp_path):
    a = train(config("trainer.max_steps=6", "model.dropout=0"), tmp_path / "a")
    b = train(config("trainer.max_steps=6", "model.dropout=0", "strategy.jit_compile=true"),
              tmp_path / "b")
    assert b["final"]["loss"] == pytest.approx(a["final"]["loss"], rel=1e-3)


def test_early_stopping_stops_after_patience(tmp_path):
    summary = train(config("trainer.max_steps=30", "trainer.eval_every=2", "trainer.patience=2",
                           "trainer.min_delta=100"), tmp_path)
    # first eval sets the best; two more without a 100-point improvement stop the run
    assert summary["steps"] == 6
    assert "early stopping" in summary["stop_reason"]


class PoisonWeights(Hook):
    """Makes the weights NaN once, after step `at`: a divergence the guard must catch."""

    def __init__(self, at: int):
        self.at, self.done, self.model = at, False, None

    def on_steps(self, state):
        if state.step == self.at and not self.done:
            self.done = True
            for v in self.model.trainable_variables:
                v.assign(tf.fill(v.shape, float("nan")))


def _poisoned_train(cfg, run_dir, at):
    import bigtrain.train.fit as run_mod

    hook = PoisonWeights(at)
    original = run_mod.build

    def build_and_remember(config, run_dir, **kwargs):
        c = original(config, run_dir, **kwargs)
        hook.model = c.model
        return c

    run_mod.build = build_and_remember
    try:
        return train(cfg, run_dir, extra_hooks=(hook,))
    finally:
        run_mod.build = original


def test_nan_stop_names_the_steps_and_keeps_the_good_checkpoint(tmp_path):
    cfg = config("trainer.max_steps=12", "trainer.checkpoint_every=4", "trainer.eval_every=4")
    with pytest.raises(NonFiniteLoss, match=r"between steps (5|6) and (5|6)"):
        _poisoned_train(cfg, tmp_path, at=5)
    state = tf.train.get_checkpoint_state(str(tmp_path / "checkpoints"))
    assert state.model_checkpoint_path.endswith("ckpt-4")  # nothing written after the NaN
    reader = tf.train.load_checkpoint(state.model_checkpoint_path)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.isfinite(value).all(), name


def test_nan_rollback_restores_and_halves_the_learning_rate(tmp_path):
    cfg = config("trainer.max_steps=12", "trainer.checkpoint_every=4", "trainer.eval_every=4",
                 "trainer.log_every=1", "trainer.on_nan=rollback")
    summary = _poisoned_train(cfg, tmp_path, at=6)
    assert summary["status"] == "completed" and summary["steps"] == 12
    assert summary["nan_rollbacks"] == 1
    assert np.isfinite(summary["final"]["val_loss"])
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in records if "lr" in r}
    assert lrs[12] == pytest.approx(lrs[4] / 2)


def test_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
    train(config("trainer.max_steps=8", "trainer.checkpoint_every=4"), tmp_path)
    data = next((tmp_path / "checkpoints").glob("ckpt-8.data-*"))
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 3])  # truncated
    summary = train(config("trainer.max_steps=10", "trainer.checkpoint_every=4"), tmp_path)
    assert "damaged" in caplog.text and "ckpt-4" in caplog.text
    assert summary["steps"] == 10


def test_all_checkpoints_damaged_is_a_clear_error_and_overwrites_nothing(tmp_path):
    train(config("trainer.max_steps=8", "trainer.checkpoint_every=4"), tmp_path)
    for f in (tmp_path / "checkpoints").glob("ckpt-*.data-*"):
        f.write_bytes(b"junk")
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").glob("ckpt-*")}
    with pytest.raises(CheckpointError, match="every checkpoint .* is damaged"):
        train(config("trainer.max_steps=10", "trainer.checkpoint_every=4"), tmp_path)
    after = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").glob("ckpt-*")}
    assert before == after


def test_checkpoint_of_another_model_is_refused(tmp_path):
    train(config("trainer.max_steps=4"), tmp_path / "a")
    with pytest.raises(CheckpointError, match="does not match"):
        train(config("trainer.max_steps=4", "model.hidden=[64]",
                     f"trainer.resume={tmp_path / 'a'}"), tmp_path / "b")


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    import errno

    train(config("trainer.max_steps=4", "trainer.checkpoint_every=4"), tmp_path)

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", disk_full)
    with pytest.raises(CheckpointError, match="No space left.*ckpt-4 is intact"):
        train(config("trainer.max_steps=8", "trainer.checkpoint_every=4"), tmp_path)
    monkeypatch.undo()
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")


def test_resume_never_refuses_existing_checkpoints_and_path_continues_another_run(tmp_path):
    train(config("trainer.max_steps=4"), tmp_path / "a")
    with pytest.raises(ConfigError, match="trainer.resume"):
        train(config("trainer.max_steps=6", "trainer.resume=never"), tmp_path / "a")
    summary = train(config("trainer.max_steps=6", f"trainer.resume={tmp_path / 'a'}"),
                    tmp_path / "b")
    assert summary["steps"] == 6
    steps = [json.loads(x)["step"] for x in (tmp_path / "b/metrics.jsonl").read_text().splitlines()]
    assert min(steps) > 4  # continued at step 4, did not start over


def test_second_ctrl_c_stops_at_once():
    from bigtrain.train.preemption import PreemptionWatcher

    with PreemptionWatcher() as watcher:
        os.kill(os.getpid(), signal.SIGINT)
        assert watcher.requested and watcher.signal_name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_eval_and_export_match_the_checkpoint(tmp_path):
    from helpers import check_eval_and_exports
    from omegaconf import OmegaConf

    from bigtrain.run import rundir

    args = [*SMALL, "trainer.max_steps=6"]
    rundir.write_config(tmp_path, OmegaConf.to_container(compose(args), resolve=True))
    summary = train(to_typed(compose(args)), tmp_path)
    check_eval_and_exports(tmp_path, summary, 1e-5, loss_tol=1e-6)
    assert (tmp_path / "eval_val_latest.json").exists()


def test_only_the_chief_writes_checkpoints_into_the_run_dir(tmp_path):
    """A non-chief worker saves like the chief (every worker must join a save) but into a
    scratch dir it removes; it restores from the run dir."""
    from bigtrain.core.hooks import LoopState
    from bigtrain.train.checkpoint import Checkpointer

    c = build(config(), tmp_path / "chief")
    c.checkpointer.save(LoopState(step=3))
    worker = Checkpointer(tmp_path / "chief" / "checkpoints", c.model, c.optimizer, 3,
                          lr_scale=c.lr.scale, is_chief=False)
    worker.save(LoopState(step=4))
    scratch = worker._scratch
    assert list(scratch.glob("ckpt-4.index"))
    assert not list((tmp_path / "chief" / "checkpoints").glob("ckpt-4.*"))
    state = LoopState()
    assert worker.restore(state).endswith("ckpt-3") and state.step == 3
    worker.close()
    assert not scratch.exists()
