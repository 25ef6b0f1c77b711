"""fp32 against bf16 for each model family on digits (and the issue-9 LM), side by side in one
process, alternating: how much `strategy.precision=auto` (bf16 where it is native) pays off.

    python scripts/bench_precision.py [--reps 5] [--steps 80] [--out FILE.json]

bigtrain's compiled loop, 10 steps per call, batch 32, Adam, steady state; medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

import tensorflow as tf  # noqa: E402
from bench_engine import LM, components, time_bigtrain  # noqa: E402

from bigtrain.strategy import devices  # noqa: E402

MODELS = {name: ["dataset=digits", f"model={name}", "optim=adam", "trainer.batch_size=32"]
          for name in ("mlp", "cnn", "rnn", "transformer")}
MODELS["lm (issue 9)"] = LM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--out", default="scripts/results/bench_precision.json")
    args = parser.parse_args()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    results: dict = {"cpu": devices.cpu_name(), "native_bf16": devices.cpu_native_bf16(),
                     "unit": "examples/s", "models": {}}
    with tempfile.TemporaryDirectory() as d:
        for name, overrides in MODELS.items():
            built = {p: components([*overrides, f"strategy.precision={p}"],
                                   Path(d) / f"{name}-{p}")[1] for p in ("fp32", "bf16")}
            steps = args.steps // 4 if name.startswith("lm") else args.steps
            times: dict[str, list[float]] = {p: [] for p in built}
            for _ in range(args.reps):
                for p, c in built.items():
                    times[p].append(time_bigtrain(c, 32, steps, 10))
            row = {p: 32 / statistics.median(v) for p, v in times.items()}
            row["bf16_over_fp32"] = row["bf16"] / row["fp32"]
            results["models"][name] = row
            print(f"{name:14s} fp32 {row['fp32']:9,.0f}  bf16 {row['bf16']:9,.0f}  "
                  f"bf16/fp32 {row['bf16_over_fp32']:.2f}x", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
