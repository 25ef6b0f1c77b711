"""fp32 against bf16 for each model family on digits (and workloads.LM_SMALL), side by side in
one process, alternating: how much `strategy.precision=auto` (bf16 where it is native) pays off.

    python -m scripts.bench_precision [--reps 5] [--steps 80] [--out FILE.json]

bigtrain's compiled loop, 10 steps per call, batch 32, Adam, steady state; medians.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from bigtrain.strategy import devices  # noqa: E402
from scripts import harness, report  # noqa: E402
from scripts.bench_engine import components, time_bigtrain  # noqa: E402
from scripts.workloads import DIGITS_BATCH, LM_SMALL_RUN  # noqa: E402

MODELS = {name: ["dataset=digits", f"model={name}", "optim=adam",
                 f"trainer.batch_size={DIGITS_BATCH}"]
          for name in ("mlp", "cnn", "rnn", "transformer")}
MODELS["lm (LM_SMALL)"] = LM_SMALL_RUN


def table_rows(record: dict) -> list[dict]:
    """The results file's table: a row per model."""
    unit = record.get("unit", "examples/s")
    return [{"model": name, f"fp32 {unit}": r["fp32"], f"bf16 {unit}": r["bf16"],
             "bf16 / fp32": f"{r['bf16_over_fp32']:.2f}x"}
            for name, r in record["models"].items()]


def main() -> None:
    parser = harness.arguments("bench_precision", __doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=80)
    args = parser.parse_args()
    run = harness.Run("bench_precision", args.out)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    results: dict = {"cpu": devices.cpu_name(), "native_bf16": devices.cpu_native_bf16(),
                     "unit": "examples/s", "models": {}}
    with tempfile.TemporaryDirectory() as d:
        for name, overrides in MODELS.items():
            built = {p: components([*overrides, f"strategy.precision={p}"],
                                   Path(d) / f"{name.split()[0]}-{p}")[1]
                     for p in ("fp32", "bf16")}
            steps = args.steps // 4 if name.startswith("lm") else args.steps
            seconds = harness.alternate(
                {p: lambda c=c, steps=steps: time_bigtrain(c, DIGITS_BATCH, steps, 10)
                 for p, c in built.items()}, args.reps).medians()
            row = {p: DIGITS_BATCH / v for p, v in seconds.items()}
            row["bf16_over_fp32"] = row["bf16"] / row["fp32"]
            results["models"][name] = row
            print(f"{name:14s} fp32 {row['fp32']:9,.0f}  bf16 {row['bf16']:9,.0f}  "
                  f"bf16/fp32 {row['bf16_over_fp32']:.2f}x", flush=True)
            run.write(results, table_rows)
    print(report.table(table_rows(results)))
    print(f"\nwritten to {run.write(results, table_rows)}")


if __name__ == "__main__":
    main()
