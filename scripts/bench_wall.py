"""Where the wall time of whole `bigtrain fit` commands goes, and whether any of it is a stall.

    python -m scripts.bench_wall [--runs default,lm80,text] [--reps 2] [--baseline DIR]

Each run is a fresh `bigtrain fit` process, timed from spawning it to its exit. Its summary.json
`timing` block splits the time into start-up, the first compiled call, the other steps,
evaluation, checkpoints and the rest; issue 20's target is
wall <= 1.15 x (time in train steps + evaluation) + start-up. `after_last_step_s` is how long
the command ran after its last training step (final evaluation, test, checkpoint, exit),
read from fit.log's timestamps. With --baseline DIR (a directory holding an older bigtrain
package, e.g. `git archive` of a commit), the same runs of that code alternate with these.
Writes a results file of the run (scripts/harness.py).

Runs: `default` is `bigtrain fit` (digits + cnn, 12 epochs); `lm80` workloads.LM_SMALL in fp32
for 80 steps; `text` a transformer LM on the machine's licence
texts with a learned BPE vocabulary.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from scripts import harness, report
from scripts.workloads import LM_SMALL_RUN

RUNS = {
    "default": [],
    "lm80": [*LM_SMALL_RUN, "strategy.precision=fp32", "trainer.max_steps=80"],
    "text": ["dataset=text", "dataset.path=/usr/share/common-licenses", "dataset.vocab=bpe",
             "dataset.vocab_size=1000", "model=transformer", "trainer.max_steps=40"],
}
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
    cmd = [*harness.BIGTRAIN, "fit", *RUNS[name],
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
    parser = harness.arguments("bench_wall", __doc__)
    parser.add_argument("--runs", default="default,lm80,text")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--baseline", help="a directory holding an older bigtrain package")
    args = parser.parse_args()
    names = [n for n in args.runs.split(",") if n]
    run = harness.Run("bench_wall", args.out)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bigtrain-bench-wall-") as tmp:
        for name in names:
            count = iter(range(2 * args.reps))
            sides = {"current": lambda name=name, count=count: run_once(
                name, Path(tmp) / f"{name}-{next(count)}")}
            if args.baseline:
                sides["baseline"] = lambda name=name, count=count: run_once(
                    name, Path(tmp) / f"{name}-base-{next(count)}", args.baseline)
            measured = harness.alternate(sides, args.reps)  # load changes hit both alike
            rows, base = measured.values["current"], measured.values.get("baseline", [])
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
    out = {"runs": results, "reps": args.reps, "baseline": args.baseline}
    path = run.write(out, table_rows)
    print(report.table(table_rows(out)))
    print(f"load average {run.machine['loadavg'][0]:.2f} -> {os.getloadavg()[0]:.2f}; "
          f"wrote {path}")


def table_rows(record: dict) -> list[dict]:
    """The results file's table: a row per command (medians), the baseline's beside it."""
    rows = []
    for name, r in record["runs"].items():
        t = r.get("timing") or {}
        rows.append({"run": name, "wall s": r["wall_s"], "target s": r.get("target_s"),
                     "(wall - start-up) / (steps + eval)": r.get("ratio"),
                     "start-up s": t.get("startup_s"),
                     "after the last step s": r["after_last_step_s"],
                     "exit after done s": r["exit_after_done_s"],
                     "baseline wall s": r.get("baseline_wall_s"),
                     "baseline after the last step s": r.get("baseline_after_last_step_s")})
    return rows


if __name__ == "__main__":
    main()
