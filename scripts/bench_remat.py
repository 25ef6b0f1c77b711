"""Peak memory and step time of bigtrain's transformer LM with `model.remat` off and on, side
by side in one run, each configuration in its own child process (a fresh peak RSS), beside
the estimate `bigtrain info` gives for it.

    python -m scripts.bench_remat                       # base size, seq 512, batch 16, fp32
    python -m scripts.bench_remat --batch 8 --precision bf16 --steps 4

Each child builds the model from bigtrain's config (model=transformer model/size=...), runs
`--steps` training steps (forward, cross-entropy, gradients, Adam) in one tf.function after
one warm-up step, and reports its peak RSS (getrusage), its RSS after building the model and
optimizer (the runtime, weights and slots), the median step time and bigtrain's memory
estimate. Results go to a results file of the run (scripts/harness.py); its rows are the two
children's reports.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# scripts.harness is imported by the parent's code alone, so that the child (--child) also
# runs from this file's path
#: what the table shows of each child's report
COLUMNS = ("remat", "size", "seq", "batch", "precision", "params", "peak_rss_mib",
           "rss_after_build_mib", "estimate_mib.total", "step_s", "tokens_per_s")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(args) -> dict:
    """One configuration, in this (fresh) process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed
    from bigtrain.data.spec import DatasetSpec
    from bigtrain.models import build_model
    from bigtrain.models.size import measure, optimizer_slots

    tf.config.threading.set_inter_op_parallelism_threads(1)
    policies = {"fp32": "float32", "bf16": "mixed_bfloat16"}
    keras.mixed_precision.set_dtype_policy(policies[args.precision])
    keras.utils.set_random_seed(0)
    cfg = to_typed(compose(["model=transformer", f"model/size={args.size}",
                            f"model.remat={str(args.remat).lower()}",
                            f"model.dropout={args.dropout}", "optim=adam", *args.override]))
    spec = DatasetSpec("bench", "lm", (args.seq,), "int32", args.vocab, 1, 1, 1)
    model = build_model(cfg.model, spec)
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(model.trainable_variables)
    size = measure(model, spec.input_shape, spec.input_dtype, flops=False)
    estimate = size.memory(args.batch, args.precision, optimizer_slots(cfg.optim))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, args.vocab, (args.batch, args.seq)), tf.int32)
    y = tf.constant(rng.integers(0, args.vocab, (args.batch, args.seq)), tf.int32)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                y, tf.cast(logits, tf.float32)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    built = rss_mib()
    float(step(x, y))  # trace and warm up
    times = []  # --steps 0: the warm-up step's peak only
    for _ in range(args.steps):
        start = time.perf_counter()
        float(step(x, y))
        times.append(time.perf_counter() - start)
    return {"remat": args.remat, "size": args.size, "seq": args.seq, "batch": args.batch,
            "precision": args.precision, "params": size.trainable,
            "peak_rss_mib": round(peak_mib(), 1), "rss_after_build_mib": round(built, 1),
            "step_s": round(statistics.median(times), 3) if times else None,
            "tokens_per_s": round(args.batch * args.seq / statistics.median(times), 1)
            if times else None,
            "estimate_mib": {k: round(v / 2**20, 1) for k, v in (
                ("total", estimate.total), ("weights", estimate.weights),
                ("gradients", estimate.gradients), ("optimizer", estimate.optimizer),
                ("activations", estimate.activations))}}


def run_child(argv: list[str]) -> dict:
    from scripts import harness

    out = subprocess.run([sys.executable, "-m", "scripts.bench_remat", "--child", *argv],
                         capture_output=True, text=True, check=False, cwd=harness.ROOT)
    if out.returncode:
        raise SystemExit(f"child {argv} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.bench_remat",
                                description=__doc__.splitlines()[0])
    p.add_argument("--size", default="base")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--override", action="append", default=[], help="a model override")
    p.add_argument("--remat", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None,
                   help="the results file (default: a new one in scripts/results/)")
    return p


def main() -> None:
    args = parser().parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    from scripts import harness, report

    run = harness.Run("bench_remat", args.out)
    common = ["--size", args.size, "--seq", str(args.seq), "--batch", str(args.batch),
              "--vocab", str(args.vocab), "--dropout", str(args.dropout), "--precision",
              args.precision, "--steps", str(args.steps)]
    for o in args.override:
        common += ["--override", o]
    rows = [run_child(common), run_child([*common, "--remat"])]
    off, on = rows
    result = {"rows": rows,
              "peak_saving": round(1 - on["peak_rss_mib"] / off["peak_rss_mib"], 3),
              "peak_over_build_saving": round(
                  1 - (on["peak_rss_mib"] - on["rss_after_build_mib"])
                  / (off["peak_rss_mib"] - off["rss_after_build_mib"]), 3),
              "step_time_ratio": round(on["step_s"] / off["step_s"], 3)}
    print(f"{'remat':>6} {'peak RSS MiB':>13} {'over build':>11} {'estimate':>9} "
          f"{'step s':>7} {'tokens/s':>9}")
    for r in rows:
        print(f"{str(r['remat']):>6} {r['peak_rss_mib']:>13.0f} "
              f"{r['peak_rss_mib'] - r['rss_after_build_mib']:>11.0f} "
              f"{r['estimate_mib']['total']:>9.0f} {r['step_s']:>7.2f} {r['tokens_per_s']:>9.0f}")
    print(f"remat: {result['peak_saving']:.0%} less peak RSS "
          f"({result['peak_over_build_saving']:.0%} of the step's own), step time "
          f"x{result['step_time_ratio']:.2f}")
    path = run.write(result, columns=COLUMNS)
    print(report.table(rows, COLUMNS))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
