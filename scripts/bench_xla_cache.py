"""What XLA's persistent compilation cache (bigtrain.core.xla_cache) saves a Transformer run:
`bigtrain fit` of a small LM and a LoRA fine-tune of a GPT-2 shaped KerasHub preset, each
run in fresh processes, alternating the cache off (`BIGTRAIN_XLA_CACHE=off`) and warm (a
cache the first, untimed run filled). Reports the medians of the summary's `timing` (first
step, evaluation, total) and the wall time of the command.

    python -m scripts.bench_xla_cache [--reps 3] [--out FILE.json]
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from scripts import harness, report
from scripts.workloads import gpt2_preset

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
    proc = subprocess.run([*harness.BIGTRAIN, "fit", *args,
                           f"hydra.run.dir={run}", "logger=[]", "trainer.progress=none"],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    timing = json.loads((run / "summary.json").read_text())["timing"]
    return {"wall_s": wall, **{k: timing[k] for k in ("first_step_s", "eval_s", "total_s")}}


def main() -> None:
    ap = harness.arguments("bench_xla_cache", __doc__)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    run = harness.Run("bench_xla_cache", args.out)
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_xla_cache-") as d:
        root = Path(d)
        preset = gpt2_preset(root / "gpt2", hidden=64, layers=2, heads=2, max_len=64)
        for name, base in RUNS.items():
            overrides = [*base, f"model.preset={preset}"] if name.startswith("hub") else base
            cache = str(root / f"cache-{len(result)}")
            fit(overrides, root, cache)  # fills the cache
            rows = harness.alternate({"off": lambda o=overrides: fit(o, root, "off"),
                                      "warm": lambda o=overrides, c=cache: fit(o, root, c)},
                                     args.reps).values
            med = {side: {k: harness.median(r[k] for r in runs) for k in runs[0]}
                   for side, runs in rows.items()}
            med["saved_s"] = med["off"]["wall_s"] - med["warm"]["wall_s"]
            result[name] = med
            print(name, json.dumps(med), flush=True)
    path = run.write(result, table_rows)
    print(report.table(table_rows(result)))
    print(f"written to {path}")


def table_rows(record: dict) -> list[dict]:
    """The results file's table: each run with the cache off and warm (medians)."""
    rows = []
    for name in RUNS:
        r = record.get(name)
        if not r:
            continue
        for side in ("off", "warm"):
            rows.append({"run": name, "XLA cache": side, **r[side],
                         "saved s": r["saved_s"] if side == "warm" else None})
    return rows


if __name__ == "__main__":
    main()
