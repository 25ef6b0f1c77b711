"""Where the wall time of whole `bigtrain fit` commands goes, and whether any of it is a stall.

    python scripts/bench_wall.py [--runs default,lm80,text] [--reps 2] [--baseline DIR]

Each run is a fresh `bigtrain fit` process, timed from spawning it to its exit. Its summary.json
`timing` block splits the time into start-up, the first compiled call, the other steps,
evaluation, checkpoints and the rest; issue 20's target is
wall <= 1.15 x (time in train steps + evaluation) + start-up. `after_last_step_s` is how long
the command ran after its last training step (final evaluation, test, checkpoint, exit),
read from fit.log's timestamps. With --baseline DIR (a directory holding an older bigtrain
package, e.g. `git archive` of a commit), the same runs of that code alternate with these.
Writes scripts/results/bench_wall.json.

Runs: `default` is `bigtrain fit` (digits + cnn, 12 epochs); `lm80` the issue-9 LM of
scripts/bench_engine.py in fp32 for 80 steps; `text` a transformer LM on the machine's licence
texts with a learned BPE vocabulary.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LM = ["dataset=synthetic", "dataset.task=lm", "dataset.vocab_size=256", "dataset.seq_len=128",
      "dataset.num_examples=2048", "model=transformer", "model.d_model=256",
      "model.num_layers=4", "model.num_heads=4", "model.mlp_ratio=4", "model.dropout=0",
      "optim=adam", "trainer.batch_size=32"]
RUNS = {
    "default": [],
    "lm80": [*LM, "strategy.precision=fp32", "trainer.max_steps=80"],
    "text": ["dataset=text", "dataset.path=/usr/share/common-licenses", "dataset.vocab=bpe",
             "dataset.vocab_size=1000", "model=transformer", "trainer.max_steps=40"],
}
RESULTS = Path(__file__).parent / "results" / "bench_wall.json"
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[bigtrain\]\[INFO\] - (.*)$")


def _log_times(path: Path) -> dict[str, float]:
    """Epoch seconds of the last step line and the `done` line of a run's fit.log."""
    out: dict[str, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        m = STAMP.match(line)
        if not m:
            continue
        at = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if m.group(2).startswith("step "):
            out["last_step"] = at
        elif m.group(2).startswith("done: "):
            out["done"] = at
    return out


def run_once(name: str, run: Path, code: str | None = None) -> dict:
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "bigtrain.cli.main", "fit", *RUNS[name],
           "trainer.progress=plain", f"hydra.run.dir={run}"]
    began = time.time()
    tic = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=run.parent, env=env)
    wall = time.perf_counter() - tic
    ended = began + wall
    logged = _log_times(run / "fit.log")
    summary = json.loads((run / "summary.json").read_text())
    out = {"wall_s": wall, "after_last_step_s": ended - logged["last_step"],
           "exit_after_done_s": ended - logged["done"], "steps": summary["steps"]}
    t = summary.get("timing")
    if t:
        work = t["first_step_s"] + t["steps_s"] + t["eval_s"]
        out.update(timing=t, work_s=work, ratio=(wall - t["startup_s"]) / work,
                   target_s=1.15 * work + t["startup_s"])
    return out


def median_of(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="default,lm80,text")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--baseline", help="a directory holding an older bigtrain package")
    args = parser.parse_args()
    names = [n for n in args.runs.split(",") if n]
    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bigtrain-bench-wall-") as tmp:
        for name in names:
            rows, base = [], []
            for i in range(args.reps):  # alternating, so load changes hit both alike
                rows.append(run_once(name, Path(tmp) / f"{name}-{i}"))
                if args.baseline:
                    base.append(run_once(name, Path(tmp) / f"{name}-base-{i}", args.baseline))
            results[name] = {"overrides": RUNS[name], "runs": rows, "baseline_runs": base}
            r = results[name]
            for key in ("wall_s", "after_last_step_s", "exit_after_done_s", "ratio", "work_s",
                        "target_s"):
                r[key] = median_of(rows, key)
                if base and key in ("wall_s", "after_last_step_s", "exit_after_done_s"):
                    r["baseline_" + key] = median_of(base, key)
            parts = {k: statistics.median(row["timing"][k] for row in rows)
                     for k in rows[0]["timing"]}
            r["timing"] = parts
            line = (f"{name:8s} wall {r['wall_s']:6.1f} s (target {r['target_s']:6.1f} s: "
                    f"{r['ratio']:.2f} x steps+eval after start-up), after the last step "
                    f"{r['after_last_step_s']:5.1f} s")
            if base:
                line += (f"; baseline wall {r['baseline_wall_s']:6.1f} s, after the last step "
                         f"{r['baseline_after_last_step_s']:5.1f} s")
            print(line, flush=True)
            print("         timing " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()),
                  flush=True)
    out = {"runs": results, "reps": args.reps, "baseline": args.baseline,
           "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
           "cpus": os.cpu_count()}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"load average {load_before[0]:.2f} -> {out['loadavg_after'][0]:.2f}; "
          f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
