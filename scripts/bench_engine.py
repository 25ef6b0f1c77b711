"""The engine side by side with what a user would write by hand, in one process, alternating.

    python -m scripts.bench_engine [--reps 3] [--steps 30] [--out FILE.json]

1. Throughput: bigtrain's loop (steps_per_loop 1 and 10) vs `keras.Model.fit` on the same model
   (built by bigtrain's builder), the same tf.data batches, batch 32, Adam:
   digits + cnn (examples/s) and workloads.LM_SMALL (vocab 256, seq 128, d_model 256, 4 layers,
   4 heads; tokens/s).
2. Per-step overhead for a tiny model (digits + mlp) vs a bare `tf.function` train step.
3. Checkpoint save and restore time for the LM.

Steady state only: each measurement skips warm-up calls and times steps with per-step
timestamps (fit's own wall time includes a stall at its end). Medians over `--reps`
alternating repetitions (scripts/harness.py). Also the timing library of bench.py, bench_data,
bench_precision, bench_hub and profile_lm: `components`, `time_bigtrain`, `time_keras_fit`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bigtrain.cli.hydra_glue import compose  # noqa: E402
from bigtrain.config.schema import to_typed  # noqa: E402
from bigtrain.core.hooks import LoopState  # noqa: E402
from bigtrain.train.fit import build  # noqa: E402
from scripts import harness, report  # noqa: E402
from scripts.workloads import (  # noqa: E402
    DIGITS_BATCH,
    DIGITS_CNN,
    DIGITS_MLP,
    LM_SMALL,
    LM_SMALL_RUN,
)


def components(overrides: list[str], tmp: Path):
    """(config, what bigtrain.train.fit.build makes of it: model, engine, data...) for
    `overrides`, its run directory `tmp`."""
    config = to_typed(compose([*overrides, "trainer.progress=none"]))
    return config, build(config, tmp)


def batches(built, batch: int):
    """`built`'s training batches (bigtrain.train.fit.build's result), repeated."""
    return built.splits.train_batches(batch, 0).repeat()


def time_bigtrain(built, batch: int, steps: int, per_call: int) -> float:
    """Seconds per step of bigtrain's compiled loop, `per_call` steps per call."""
    c = built
    it = iter(c.strategy.experimental_distribute_dataset(batches(c, batch)))
    c.engine.train_steps(it, per_call)  # trace + warm up
    c.engine.train_steps(it, per_call)
    calls = max(1, steps // per_call)
    tic = time.perf_counter()
    for _ in range(calls):
        c.engine.train_steps(it, per_call)
    return (time.perf_counter() - tic) / (calls * per_call)


class StepTimes(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.stamps.append(time.perf_counter())

    def on_train_begin(self, logs=None):
        self.stamps = []


def time_keras_fit(model, ds, steps: int, warmup: int = 3) -> float:
    """Seconds per step of Model.fit, from per-batch timestamps after `warmup` batches."""
    timer = StepTimes()
    model.fit(ds, epochs=1, steps_per_epoch=steps + warmup, verbose=0, callbacks=[timer])
    stamps = timer.stamps[warmup - 1:]
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


@contextlib.contextmanager
def plain_keras_layers():
    """bigtrain's builders with Keras's own layers where bigtrain has a fused one, in fp32
    (whatever policy building bigtrain's side left behind)."""
    from bigtrain.models import cnn

    fused, policy = cnn.FusedBatchNorm, keras.mixed_precision.dtype_policy()
    cnn.FusedBatchNorm = keras.layers.BatchNormalization
    keras.mixed_precision.set_dtype_policy("float32")
    try:
        yield
    finally:
        cnn.FusedBatchNorm = fused
        keras.mixed_precision.set_dtype_policy(policy)


def keras_model_for(overrides: list[str]):
    """The same architecture from bigtrain's builder, with Keras's own layers (no fused batch
    norm), outside any strategy, compiled for fit with Keras's Adam."""
    from bigtrain.data import build_dataset
    from bigtrain.models import build_model

    config = to_typed(compose(overrides))
    keras.utils.set_random_seed(config.trainer.seed)
    splits = build_dataset(config.dataset)
    with plain_keras_layers():
        model = build_model(config.model, splits.spec)
    model.compile(optimizer=keras.optimizers.Adam(config.optim.lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, splits.train_batches(config.trainer.batch_size, 0).repeat()


def time_bare_step(built, batch: int, steps: int) -> float:
    """A hand-written tf.function step with the same model, optimizer and loss."""
    c = built
    model, opt = c.model, keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=model(x, training=True)))
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    it = iter(batches(c, batch))
    for _ in range(3):
        step(*next(it))
    tic = time.perf_counter()
    for _ in range(steps):
        loss = step(*next(it))
    loss.numpy()
    return (time.perf_counter() - tic) / steps


def throughput(name: str, overrides: list[str], unit_per_example: int, reps: int, steps: int,
               tmp: Path) -> dict:
    """Keras fit vs bigtrain variants: steps_per_loop 1, 10 (default), and 10 with XLA."""
    variants = {"bigtrain_steps_per_loop_1": (overrides, 1),
                "bigtrain": (overrides, 10),
                "bigtrain_xla": ([*overrides, "strategy.jit_compile=true"], 10)}
    built = {k: components(o, tmp / f"{name}-{k}")[1] for k, (o, _) in variants.items()}
    kmodel, kds = keras_model_for(overrides)
    sides = {"keras_fit": lambda: time_keras_fit(kmodel, kds, steps)}
    for k, (_, per_call) in variants.items():
        sides[k] = lambda k=k, per_call=per_call: time_bigtrain(built[k], DIGITS_BATCH, steps,
                                                                per_call)
    seconds = harness.alternate(sides, reps).medians()
    per = DIGITS_BATCH * unit_per_example
    out: dict = {k: per / v for k, v in seconds.items()}
    for k in variants:
        out[f"ratio_{k}"] = out[k] / out["keras_fit"]
    out["unit"] = "tokens/s" if unit_per_example > 1 else "examples/s"
    return out


def overhead(reps: int, steps: int, tmp: Path) -> dict:
    _, c = components(DIGITS_MLP, tmp / "mlp-bt")
    _, c10 = components(DIGITS_MLP, tmp / "mlp-bt10")
    _, bare = components(DIGITS_MLP, tmp / "mlp-bare")
    med = harness.alternate({
        "bigtrain": lambda: time_bigtrain(c, DIGITS_BATCH, steps, 1),
        "bare": lambda: time_bare_step(bare, DIGITS_BATCH, steps),
        "bigtrain_10": lambda: time_bigtrain(c10, DIGITS_BATCH, steps, 10),
    }, reps).medians()
    return {"bigtrain_ms_per_step": 1e3 * med["bigtrain"],
            "bigtrain_steps_per_loop_10_ms_per_step": 1e3 * med["bigtrain_10"],
            "bare_ms_per_step": 1e3 * med["bare"],
            "overhead": med["bigtrain"] / med["bare"] - 1,
            "overhead_steps_per_loop_10": med["bigtrain_10"] / med["bare"] - 1}


def checkpoint_times(reps: int, tmp: Path) -> dict:
    _, c = components(LM_SMALL_RUN, tmp / "ckpt")
    it = iter(c.strategy.experimental_distribute_dataset(batches(c, LM_SMALL.batch)))
    c.engine.train_steps(it, 1)  # optimizer slots exist
    step = iter(range(1, reps + 1))

    def save() -> float:
        tic = time.perf_counter()
        c.checkpointer.save(LoopState(step=next(step)))
        return time.perf_counter() - tic

    def restore() -> float:
        tic = time.perf_counter()
        c.checkpointer.restore(LoopState())
        return time.perf_counter() - tic

    med = harness.alternate({"save": save, "restore": restore}, reps).medians()
    size = sum(p.stat().st_size for p in (tmp / "ckpt" / "checkpoints").glob(f"ckpt-{reps}.*"))
    return {"save_s": med["save"], "restore_s": med["restore"], "size_mb": size / 2**20}


COLUMNS = ("item", "reference", "bigtrain, steps_per_loop=1", "bigtrain (default, 10 per call)",
           "bigtrain + XLA")


def table_rows(record: dict) -> list[dict]:
    """The results file's table: throughput against Keras fit, the tiny model's step against
    a bare tf.function step, the LM's checkpoint."""
    rows = []
    for key, label in (("digits_cnn", "digits + cnn"), ("lm_transformer", "LM_SMALL")):
        r = record.get(key)
        if r:
            cells = [f"{r[k]:,.0f} ({r['ratio_' + k]:.2f}x)" for k in
                     ("bigtrain_steps_per_loop_1", "bigtrain", "bigtrain_xla")]
            rows.append(dict(zip(COLUMNS, [f"{label} {r['unit']} (reference: keras fit)",
                                           f"{r['keras_fit']:,.0f}", *cells], strict=True)))
    o = record.get("tiny_mlp_overhead")
    if o:
        rows.append(dict(zip(COLUMNS[:4], [
            "digits + mlp ms/step (reference: a bare tf.function step)",
            f"{o['bare_ms_per_step']:.3f}",
            f"{o['bigtrain_ms_per_step']:.3f} ({100 * o['overhead']:+.0f}%)",
            f"{o['bigtrain_steps_per_loop_10_ms_per_step']:.3f} "
            f"({100 * o['overhead_steps_per_loop_10']:+.0f}%)"], strict=True)))
    k = record.get("lm_checkpoint")
    if k:
        rows.append({"item": f"LM_SMALL checkpoint ({k['size_mb']:.1f} MB): save / restore s",
                     "bigtrain (default, 10 per call)":
                     f"{k['save_s']:.3f} / {k['restore_s']:.3f}"})
    return rows


def main() -> None:
    parser = harness.arguments("bench_engine", __doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    run = harness.Run("bench_engine", args.out)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = {
            "digits_cnn": throughput("cnn", DIGITS_CNN, 1, args.reps, args.steps * 4, tmp),
            "lm_transformer": throughput("lm", LM_SMALL_RUN, LM_SMALL.seq, args.reps,
                                         args.steps, tmp),
            "tiny_mlp_overhead": overhead(args.reps, args.steps * 10, tmp),
            "lm_checkpoint": checkpoint_times(args.reps, tmp),
        }
    path = run.write(results, table_rows, COLUMNS)
    print(report.table(table_rows(results), COLUMNS))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
