"""The engine side by side with what a user would write by hand, in one process, alternating.

    python scripts/bench_engine.py [--reps 3] [--steps 30] [--out scripts/results/bench_engine.json]

1. Throughput: bigtrain's loop (steps_per_loop 1 and 10) vs `keras.Model.fit` on the same model
   (built by bigtrain's builder), the same tf.data batches, batch 32, Adam:
   digits + cnn (examples/s) and a transformer LM (vocab 256, seq 128, d_model 256, 4 layers,
   4 heads; tokens/s).
2. Per-step overhead for a tiny model (digits + mlp) vs a bare `tf.function` train step.
3. Checkpoint save and restore time for the LM.

Steady state only: each measurement skips warm-up calls and times steps with per-step
timestamps (fit's own wall time includes a stall at its end). Medians over `--reps`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bigtrain.cli.hydra_glue import compose  # noqa: E402
from bigtrain.config import to_typed  # noqa: E402
from bigtrain.train.engine import LoopState  # noqa: E402
from bigtrain.train.fit import build  # noqa: E402

LM = ["dataset=synthetic", "dataset.task=lm", "dataset.vocab_size=256", "dataset.seq_len=128",
      "dataset.num_examples=2048", "model=transformer", "model.d_model=256",
      "model.num_layers=4", "model.num_heads=4", "model.mlp_ratio=4", "model.dropout=0",
      "optim=adam", "trainer.batch_size=32"]
CNN = ["dataset=digits", "model=cnn", "optim=adam", "trainer.batch_size=32"]
MLP = ["dataset=digits", "model=mlp", "model.dropout=0", "optim=adam", "trainer.batch_size=32"]
GPT2_BATCH = 8  # bench_torch.GPT2_SMALL.batch: the language-model issue's GPT-2-small shape
GPT2 = ["dataset=synthetic", "dataset.task=lm", "dataset.vocab_size=50257", "dataset.seq_len=128",
        "dataset.num_examples=256", "model=transformer", "model/size=gpt2_small",
        "model.dropout=0", "optim=adam", f"trainer.batch_size={GPT2_BATCH}"]


def components(overrides: list[str], tmp: Path):
    config = to_typed(compose([*overrides, "trainer.progress=none"]))
    return config, build(config, tmp)


def batches(c, batch: int):
    return c.splits.train_batches(batch, 0).repeat()


def time_bigtrain(c, batch: int, steps: int, per_call: int) -> float:
    """Seconds per step of bigtrain's compiled loop, `per_call` steps per call."""
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


def time_bare_step(c, batch: int, steps: int) -> float:
    """A hand-written tf.function step with the same model, optimizer and loss."""
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


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def throughput(name: str, overrides: list[str], unit_per_example: int, reps: int, steps: int,
               tmp: Path) -> dict:
    """Keras fit vs bigtrain variants: steps_per_loop 1, 10 (default), and 10 with XLA."""
    variants = {"bigtrain_steps_per_loop_1": (overrides, 1),
                "bigtrain": (overrides, 10),
                "bigtrain_xla": ([*overrides, "strategy.jit_compile=true"], 10)}
    built = {k: components(o, tmp / f"{name}-{k}")[1] for k, (o, _) in variants.items()}
    kmodel, kds = keras_model_for(overrides)
    times: dict[str, list[float]] = {k: [] for k in ["keras_fit", *variants]}
    for _ in range(reps):  # alternate, so machine noise hits every variant alike
        times["keras_fit"].append(time_keras_fit(kmodel, kds, steps))
        for k, (_, per_call) in variants.items():
            times[k].append(time_bigtrain(built[k], 32, steps, per_call))
    per = 32 * unit_per_example
    out: dict = {k: per / median(v) for k, v in times.items()}
    for k in variants:
        out[f"ratio_{k}"] = out[k] / out["keras_fit"]
    out["unit"] = "tokens/s" if unit_per_example > 1 else "examples/s"
    return out


def overhead(reps: int, steps: int, tmp: Path) -> dict:
    _, c = components(MLP, tmp / "mlp-bt")
    _, c10 = components(MLP, tmp / "mlp-bt10")
    _, bare = components(MLP, tmp / "mlp-bare")
    t_bt, t_bt10, t_bare = [], [], []
    for _ in range(reps):
        t_bt.append(time_bigtrain(c, 32, steps, 1))
        t_bare.append(time_bare_step(bare, 32, steps))
        t_bt10.append(time_bigtrain(c10, 32, steps, 10))
    return {"bigtrain_ms_per_step": 1e3 * median(t_bt),
            "bigtrain_steps_per_loop_10_ms_per_step": 1e3 * median(t_bt10),
            "bare_ms_per_step": 1e3 * median(t_bare),
            "overhead": median(t_bt) / median(t_bare) - 1,
            "overhead_steps_per_loop_10": median(t_bt10) / median(t_bare) - 1}


def checkpoint_times(reps: int, tmp: Path) -> dict:
    _, c = components(LM, tmp / "ckpt")
    it = iter(c.strategy.experimental_distribute_dataset(batches(c, 32)))
    c.engine.train_steps(it, 1)  # optimizer slots exist
    save, restore = [], []
    for i in range(reps):
        state = LoopState(step=i + 1)
        tic = time.perf_counter()
        c.checkpointer.save(state)
        save.append(time.perf_counter() - tic)
        tic = time.perf_counter()
        c.checkpointer.restore(LoopState())
        restore.append(time.perf_counter() - tic)
    size = sum(p.stat().st_size for p in (tmp / "ckpt" / "checkpoints").glob(f"ckpt-{reps}.*"))
    return {"save_s": median(save), "restore_s": median(restore), "size_mb": size / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default="scripts/results/bench_engine.json")
    args = parser.parse_args()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": sys.version.split()[0], "tensorflow": tf.__version__,
                        "keras": keras.__version__},
            "digits_cnn": throughput("cnn", CNN, 1, args.reps, args.steps * 4, tmp),
            "lm_transformer": throughput("lm", LM, 128, args.reps, args.steps, tmp),
            "tiny_mlp_overhead": overhead(args.reps, args.steps * 10, tmp),
            "lm_checkpoint": checkpoint_times(args.reps, tmp),
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("| item | keras fit | bigtrain steps_per_loop=1 | bigtrain (default, 10) | "
          "bigtrain + XLA |")
    print("|---|---|---|---|---|")
    for key in ("digits_cnn", "lm_transformer"):
        r = results[key]
        cells = [f"{r[k]:.0f} ({r['ratio_' + k]:.2f}x)" for k in
                 ("bigtrain_steps_per_loop_1", "bigtrain", "bigtrain_xla")]
        print(f"| {key} ({r['unit']}) | {r['keras_fit']:.0f} | " + " | ".join(cells) + " |")
    o = results["tiny_mlp_overhead"]
    print(f"\ntiny mlp, ms/step: bare tf.function {o['bare_ms_per_step']:.3f}; bigtrain "
          f"steps_per_loop=1 {o['bigtrain_ms_per_step']:.3f} ({100 * o['overhead']:+.1f}%), "
          f"steps_per_loop=10 (default) {o['bigtrain_steps_per_loop_10_ms_per_step']:.3f} "
          f"({100 * o['overhead_steps_per_loop_10']:+.1f}%)")
    k = results["lm_checkpoint"]
    print(f"LM checkpoint ({k['size_mb']:.1f} MB): save {k['save_s']:.3f} s, "
          f"restore {k['restore_s']:.3f} s")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
