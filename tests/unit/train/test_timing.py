"""Where a run's time goes (summary.json's `timing` block) and the stalls it brought to light:
tf.data iterators that wait for their autotune thread when deleted, a second trace of the
eval step for another batch size, the interpreter's exit. No test here times anything."""

from __future__ import annotations

import atexit
import gc
import types

import pytest
import tensorflow as tf

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core import timing
from bigtrain.run.job import train
from bigtrain.train.engine import _one_cpu  # noqa: E402
from bigtrain.train.fit import build  # noqa: E402

SMALL = ["debug=smoke", "model=mlp", "model.hidden=[32]", "trainer.progress=none", "logger=[]",
         "strategy.precision=fp32"]
PARTS = ("startup_s", "first_step_s", "steps_s", "eval_s", "checkpoint_s", "other_s")


def test_the_summary_says_where_the_time_went_and_its_parts_add_up(tmp_path):
    import time

    origin = time.time() - 2.0  # a job that began 2 s before train() was called
    summary = train(to_typed(compose(SMALL)), tmp_path, origin=origin)
    t = summary["timing"]
    assert set(t) == {*PARTS, "total_s", "end_s"}
    assert sum(t[k] for k in PARTS) == pytest.approx(t["total_s"], abs=0.005)
    assert all(t[k] >= 0 for k in PARTS if k != "other_s") and t["other_s"] > -0.005
    assert t["startup_s"] >= 2.0 and t["total_s"] >= summary["wall_s"] + 2.0 - 0.01
    # debug=smoke: several compiled calls, evaluations at steps 3 and 6 and of the test
    # split, checkpoints at steps 3 and 6, each counted where it happened
    assert t["first_step_s"] > 0 and t["steps_s"] > 0 and t["eval_s"] > 0
    assert t["checkpoint_s"] > 0
    assert 0 < t["end_s"] <= t["total_s"] - t["startup_s"] - t["first_step_s"]
    on_disk = (tmp_path / "summary.json").read_text()
    assert '"timing"' in on_disk


def test_the_first_job_of_a_command_times_its_start_up_from_the_command_start():
    timing.command_started(100.0)
    assert timing.job_origin(105.0) == 100.0  # the command's start
    assert timing.job_origin(130.0) == 130.0  # a later job of a sweep: its own start
    assert timing.job_origin(140.0) == 140.0


def test_a_timing_without_steps_still_adds_up():
    t = timing.Timing(origin=0.0).block()
    assert t["first_step_s"] == 0 and t["end_s"] == 0
    assert sum(t[k] for k in PARTS) == pytest.approx(t["total_s"], abs=0.005)


def test_the_command_freezes_the_heap_before_the_interpreter_exits(monkeypatch):
    """Registered first, gc.freeze runs last at exit: the interpreter's shutdown then skips
    its full collections over TensorFlow's objects."""
    from bigtrain.cli import main

    registered = []
    monkeypatch.setattr(atexit, "register", lambda fn, *a, **k: registered.append(fn))
    monkeypatch.setattr(main, "app", lambda: None)
    main.run()
    assert registered and registered[0] is gc.freeze


def test_input_pipelines_run_without_the_autotune_thread(tmp_path):
    """Deleting an iterator waits for tf.data's autotune thread to wake up (later the older
    the iterator): bigtrain's pipelines run without one."""
    c = build(to_typed(compose(SMALL)), tmp_path)
    for ds in (c.splits.train_batches(32, 0), c.splits.eval_batches("val", 64),
               c.splits.eval_batches("test", 64)):
        assert ds.options().autotune.enabled is False


def test_on_one_cpu_the_steps_iterate_the_dataset_itself(tmp_path):
    """A distributed dataset on one CPU only adds tf.data's per-device copy pipeline (a
    GeneratorDataset, with an autotune thread of its own); on several replicas or a GPU the
    strategy's distributed dataset is kept."""
    c = build(to_typed(compose(SMALL)), tmp_path)
    ds = c.splits.eval_batches("val", 64)
    assert c.engine.distribute(ds) is ds
    assert _one_cpu(tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert _one_cpu(tf.distribute.get_strategy())

    def fake(replicas: int, devices: tuple[str, ...]):
        return types.SimpleNamespace(num_replicas_in_sync=replicas,
                                     extended=types.SimpleNamespace(worker_devices=devices))

    assert not _one_cpu(fake(2, ("/job:localhost/replica:0/task:0/device:CPU:0",
                                 "/job:localhost/replica:0/task:0/device:CPU:1")))
    assert not _one_cpu(fake(1, ("/job:localhost/replica:0/task:0/device:GPU:0",)))


def test_evaluation_traces_its_step_once_for_every_batch_size(tmp_path):
    """A last partial batch, and each split's own, reuse one trace with an unknown batch size
    (a second trace cost seconds at the end of a run)."""
    c = build(to_typed(compose(SMALL)), tmp_path)
    spec = c.splits.spec
    assert spec.num_val % 64 and spec.num_test % 64  # each ends in a partial batch
    val = c.engine.evaluate(c.splits.eval_batches("val", 64), "val_")
    c.engine.evaluate(c.splits.eval_batches("test", 64), "test_")
    c.engine.evaluate(c.splits.eval_batches("val", 7), "val_")
    assert c.engine._eval_step.experimental_get_tracing_count() == 1
    assert c.engine.evaluate(c.splits.eval_batches("val", 180), "val_") == pytest.approx(val)


def test_tensorboard_gets_its_scalars_and_config_table_without_tensorboard_summary(
        tmp_path, monkeypatch):
    """tf.summary.scalar and text import tensorboard.summary (0.2 s before the first step);
    the same events are written with tf.summary.write and the plugins' metadata."""
    import sys

    from bigtrain.loggers.builders import TensorBoard

    monkeypatch.setitem(sys.modules, "tensorboard.summary", None)  # importing it fails now
    board = TensorBoard(tmp_path, to_typed(compose(SMALL)))
    board.on_log(None, {"step": 3, "epoch": 0.5, "loss": 0.25, "lr": 0.01, "note": "x"})
    board.on_eval(None, {"step": 3, "epoch": 0.5, "val_loss": 0.75}, True)
    board.close()

    def events(split):
        out = {}
        for path in (tmp_path / "tb" / split).glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for v in event.summary.value:
                    out[v.tag] = (event.step, v.metadata.plugin_data.plugin_name,
                                  tf.make_ndarray(v.tensor))
        return out

    train, val = events("train"), events("val")
    assert train["loss"][:2] == (3, "scalars") and float(train["loss"][2]) == 0.25
    assert train["lr"][2].dtype == "float32" and "note" not in train
    assert train["config"][1] == "text" and b"| trainer.seed |" in train["config"][2].item()
    assert val["loss"][:2] == (3, "scalars") and float(val["loss"][2]) == 0.75


def test_checkpoints_written_by_one_compiled_call_hold_what_an_eager_write_holds(tmp_path):
    """One replica: each write is a call of one traced function (5-10 ms, not 50-90), whose
    files restore like an eager write's; a change in the variables traces it again."""
    from helpers import checkpoint_tensors

    from bigtrain.core.hooks import LoopState
    from bigtrain.train.checkpoint import CompiledWrites

    c = build(to_typed(compose(SMALL)), tmp_path)
    writes = c.checkpointer._manager._checkpoint
    assert isinstance(writes, CompiledWrites)
    state = LoopState(total_steps=10, steps_per_epoch=5, total_epochs=2)
    for step in (1, 2, 3, 4):
        state.step = step
        c.checkpointer.save(state)
    c.checkpointer.save_best(state)
    assert writes._fn.experimental_get_tracing_count() == 1
    directory = tmp_path / "checkpoints"
    assert tf.train.latest_checkpoint(str(directory)).endswith("ckpt-4")
    assert sorted(p.name for p in directory.glob("ckpt-*.index")) == [
        "ckpt-2.index", "ckpt-3.index", "ckpt-4.index"]  # keep_checkpoints=3, swept as before
    assert list((directory / "best").glob("ckpt-4.index"))
    eager = c.checkpointer._ckpt.write(str(tmp_path / "eager" / "ckpt-4"))
    assert checkpoint_tensors(directory / "ckpt-4") == checkpoint_tensors(eager)

    count = writes._count()
    writes._count = lambda: count + 1  # as if a variable had been created since the trace
    state.step = 5
    c.checkpointer.save(state)
    assert writes._fn.experimental_get_tracing_count() == 1 and writes._traced_for == count + 1
    restored = LoopState()
    assert c.checkpointer.restore(restored) == str(directory / "ckpt-5") and restored.step == 5


def test_the_compiled_steps_trace_without_autograph(tmp_path, monkeypatch):
    """AutoGraph converted every layer's and the optimizer's Python at each trace (~1 s of
    the first step's 1.2-1.7 s for digits + cnn); the steps need none of it."""
    from tensorflow.python.autograph.impl import api

    args = [a for a in SMALL if not a.startswith("model")] + ["model=cnn"]
    c = build(to_typed(compose(args)), tmp_path)
    iterator = iter(c.engine.distribute(c.splits.train_batches(32, 0)))
    converted = []
    call = api.converted_call
    monkeypatch.setattr(api, "converted_call",
                        lambda f, *a, **k: (converted.append(f), call(f, *a, **k))[1])
    c.engine.train_steps(iterator, 1)
    c.engine.train_steps(iterator, 3)
    c.engine.evaluate(c.splits.eval_batches("val", 64))
    assert converted == []
