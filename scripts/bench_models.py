"""Each model on digits: validation accuracy and wall time, one after another in one run.

    python scripts/bench_models.py [--seeds 1]

Runs `bigtrain fit dataset=digits model=<name>` with the overrides below (the same for every
seed), reads each run's summary.json, and prints a markdown table. Targets on the 2-core CPU:
mlp >= 95%, rnn >= 95%, transformer >= 95%, cnn >= 98% validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPES = {
    "default": [],  # plain `bigtrain fit`: digits + cnn + adam, 12 epochs (target: >= 95%)
    "mlp": ["model=mlp", "trainer.epochs=30", "optim/schedule=cosine"],
    "cnn": ["model=cnn", "trainer.epochs=20", "optim/schedule=cosine"],
    "rnn": ["model=rnn", "model.cell=gru", "model.bidirectional=true", "trainer.epochs=30",
            "optim/schedule=cosine"],
    "transformer": ["model=transformer", "trainer.epochs=25", "optim/schedule=warmup_cosine"],
}
TARGETS = {"default": 0.95, "mlp": 0.95, "cnn": 0.98, "rnn": 0.95, "transformer": 0.95}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--models", default=",".join(RECIPES),
                        help="comma-separated recipe names (default: all)")
    parser.add_argument("--out", default="scripts/results/bench_models.json")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as d:
        for name in args.models.split(","):
            accs, test_accs, walls = [], [], []
            for seed in range(args.seeds):
                run = Path(d) / f"{name}-{seed}"
                cmd = [sys.executable, "-m", "bigtrain.cli.main", "fit", *RECIPES[name],
                       f"trainer.seed={seed}", "trainer.progress=none",
                       "trainer.monitor=val_accuracy", f"hydra.run.dir={run}"]
                tic = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                walls.append(time.perf_counter() - tic)
                summary = json.loads((run / "summary.json").read_text())
                accs.append(summary["final"]["val_accuracy"])
                test_accs.append(summary["final"]["test_accuracy"])
            results[name] = {"overrides": RECIPES[name], "val_accuracy": statistics.mean(accs),
                             "test_accuracy": statistics.mean(test_accs),
                             "wall_s": statistics.mean(walls), "target": TARGETS[name],
                             "seeds": args.seeds}
            r = results[name]
            print(f"{name}: val {r['val_accuracy']:.4f} test {r['test_accuracy']:.4f} "
                  f"wall {r['wall_s']:.1f}s", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("\n| model | overrides | val accuracy (final) | test accuracy | target | wall s |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        mark = "met" if r["val_accuracy"] >= r["target"] else "MISSED"
        print(f"| {name} | `{' '.join(r['overrides']) or '(none)'}` | {r['val_accuracy']:.4f} | "
              f"{r['test_accuracy']:.4f} | >= {r['target']:.2f} ({mark}) | {r['wall_s']:.1f} |")


if __name__ == "__main__":
    main()
