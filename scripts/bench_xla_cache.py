"""What XLA's persistent compilation cache (bigtrain.xla_cache) saves a Transformer run:
`bigtrain fit` of a small LM and a LoRA fine-tune of a GPT-2 shaped KerasHub preset, each
run in fresh processes, alternating the cache off (`BIGTRAIN_XLA_CACHE=off`) and warm (a
cache the first, untimed run filled). Reports the medians of the summary's `timing` (first
step, evaluation, total) and the wall time of the command.

    python scripts/bench_xla_cache.py [--reps 3] [--out scripts/results/bench_xla_cache.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

RUNS = {
    "transformer LM": ["debug=smoke", "dataset=synthetic", "dataset.task=lm",
                       "dataset.vocab_size=256", "dataset.seq_len=64", "model=transformer",
                       "model.d_model=64", "model.num_layers=2"],
    "hub LoRA": ["debug=smoke", "model=hub", "model.lora_rank=4", "dataset=synthetic",
                 "dataset.task=lm", "dataset.vocab_size=263", "dataset.seq_len=32"],
}


def fit(args: list[str], root: Path, cache: str) -> dict:
    env = {**os.environ, "BIGTRAIN_XLA_CACHE": cache, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_XLA_FLAGS", None)
    run = root / f"run{time.monotonic_ns()}"
    tic = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bigtrain.cli.main", "fit", *args,
                           f"hydra.run.dir={run}", "logger=[]", "trainer.progress=none"],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    timing = json.loads((run / "summary.json").read_text())["timing"]
    return {"wall_s": wall, **{k: timing[k] for k in ("first_step_s", "eval_s", "total_s")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_xla_cache.json")
    args = ap.parse_args()
    import hub_presets

    result: dict = {"machine": {"cpus": os.cpu_count(), "load_at_start": os.getloadavg()[0]}}
    with tempfile.TemporaryDirectory(prefix="bench_xla_cache-") as d:
        root = Path(d)
        preset = hub_presets.gpt2(root / "gpt2", hidden=64, layers=2, heads=2, max_len=64)
        for name, base in RUNS.items():
            overrides = [*base, f"model.preset={preset}"] if name.startswith("hub") else base
            cache = str(root / f"cache-{len(result)}")
            fit(overrides, root, cache)  # fills the cache
            rows: dict[str, list[dict]] = {"off": [], "warm": []}
            for _ in range(args.reps):
                rows["off"].append(fit(overrides, root, "off"))
                rows["warm"].append(fit(overrides, root, cache))
            med = {side: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                   for side, runs in rows.items()}
            med["saved_s"] = med["off"]["wall_s"] - med["warm"]["wall_s"]
            result[name] = med
            print(name, json.dumps(med), flush=True)
    result["machine"]["load_at_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
