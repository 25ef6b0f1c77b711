"""Wall time of the commands that must feel instant, next to bare Python and bare TensorFlow;
with --fit, the time to the first training step of `bigtrain fit debug=smoke` beside
`import tensorflow`, and where its start-up goes.

    python -m scripts.time_cli [--repeats 7]
    python -m scripts.time_cli --fit [--repeats 5]
    python -m scripts.time_cli --fit --baseline DIR   # and DIR's (older) bigtrain, alternating

Runs each command `repeats` times, alternating, and prints the median seconds and the ratio to
`python -c pass`; each run writes a results file (scripts/harness.py, or --out). The targets:
`bigtrain --help` under 0.5 s on this 2-core machine; the first logged step of `bigtrain fit
debug=smoke` within `import tensorflow` + 1.0 s (issue 20). That is timed from spawning the
command to the first line of its metrics.jsonl (one step per call, a record per step); the
run's summary.json says where the time went (its `timing` block). `first_step` is also what
scripts/bench.py's start-up part times.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts import harness

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "bigtrain --help": [*harness.BIGTRAIN, "--help"],
    "bigtrain ls": [*harness.BIGTRAIN, "ls"],
    "bigtrain show": [*harness.BIGTRAIN, "show"],
    "bigtrain validate": [*harness.BIGTRAIN, "validate"],
    "python -c 'import tensorflow'": [sys.executable, "-c", "import tensorflow"],
}
IMPORT_TF = COMMANDS["python -c 'import tensorflow'"]
SMOKE = ["debug=smoke", "trainer.log_every=1", "trainer.steps_per_loop=1",
         "trainer.progress=none"]


def first_step(run: Path, cwd: Path, code: str | None = None) -> dict:
    """Seconds from spawning `bigtrain fit debug=smoke` to its first metrics.jsonl line and
    to its exit, with its summary's timing block. `code`: a directory whose `bigtrain`
    package runs instead of the installed one (a checkout of older code)."""
    metrics = run / "metrics.jsonl"
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, env.get("PYTHONPATH")]))
    tic = time.perf_counter()
    proc = subprocess.Popen([*harness.BIGTRAIN, "fit", *SMOKE,
                             f"hydra.run.dir={run}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=cwd, env=env)
    while not (metrics.exists() and metrics.stat().st_size > 0):
        if proc.poll() is not None:
            raise RuntimeError(f"bigtrain fit debug=smoke ended before a step was logged "
                               f"(see {run / 'fit.log'})")
        time.sleep(0.005)
    to_step = time.perf_counter() - tic
    proc.wait()
    summary = json.loads((run / "summary.json").read_text())
    return {"first_step_s": to_step, "exit_s": time.perf_counter() - tic,
            "timing": summary.get("timing", {})}


def fit_startup(repeats: int, baseline: str | None = None) -> dict:
    """`import tensorflow` and `bigtrain fit debug=smoke` (and the baseline's), alternating,
    in scratch dirs outside the repository."""
    with tempfile.TemporaryDirectory(prefix="bigtrain-time-cli-") as tmp:
        cwd = Path(tmp)
        count = iter(range(2 * repeats))
        sides = {"import_tensorflow": lambda: harness.time_command(IMPORT_TF, cwd),
                 "fit": lambda: first_step(cwd / f"run-{next(count)}", cwd)}
        if baseline:
            sides["baseline"] = lambda: first_step(cwd / f"base-{next(count)}", cwd, baseline)
        measured = harness.alternate(sides, repeats).values
    tf_runs, fits = measured["import_tensorflow"], measured["fit"]
    base = measured.get("baseline", [])
    tf_s = statistics.median(tf_runs)
    step_s = statistics.median(f["first_step_s"] for f in fits)
    parts = {k: statistics.median(f["timing"].get(k, 0.0) for f in fits)
             for k in ("startup_s", "first_step_s", "end_s", "total_s")}
    out = {"import_tensorflow_s": tf_s, "fit_first_step_s": step_s,
           "fit_exit_s": statistics.median(f["exit_s"] for f in fits),
           "after_import_tensorflow_s": step_s - tf_s,
           "runs": {"import_tensorflow_s": tf_runs, "fit": fits},
           "timing_medians": parts, "repeats": repeats}
    if base:
        out["baseline"] = {"code": baseline, "runs": base,
                           "fit_first_step_s": statistics.median(f["first_step_s"] for f in base),
                           "fit_exit_s": statistics.median(f["exit_s"] for f in base)}
    return out


def table_rows(record: dict) -> list[dict]:
    """The results file's table: each command's median and its ratio to `python -c pass`
    (without --fit), or the first step of `bigtrain fit debug=smoke` beside `import
    tensorflow` (with it)."""
    if "commands" in record:
        base = record["commands"]["python -c pass"]["median_s"]
        return [{"command": name, "median s": r["median_s"], "min s": r["min_s"],
                 "x python": r["median_s"] / base} for name, r in record["commands"].items()]
    rows = [{"command": "python -c 'import tensorflow'", "seconds": record["import_tensorflow_s"]},
            {"command": "bigtrain fit debug=smoke, first step",
             "seconds": record["fit_first_step_s"],
             "after import tensorflow s": record["after_import_tensorflow_s"]},
            {"command": "bigtrain fit debug=smoke, exit", "seconds": record["fit_exit_s"]}]
    b = record.get("baseline")
    if b:
        rows += [{"command": f"baseline ({b['code']}): first step",
                  "seconds": b["fit_first_step_s"],
                  "after import tensorflow s": b["fit_first_step_s"]
                  - record["import_tensorflow_s"]},
                 {"command": f"baseline ({b['code']}): exit", "seconds": b["fit_exit_s"]}]
    return rows


def main() -> None:
    parser = harness.arguments("time_cli", __doc__)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--fit", action="store_true",
                        help="time the first step of bigtrain fit debug=smoke instead")
    parser.add_argument("--baseline", help="with --fit: a directory holding an older bigtrain "
                        "package to time alternately (e.g. `git archive` of a commit)")
    args = parser.parse_args()
    run = harness.Run("time_cli", args.out)
    if args.fit:
        r = fit_startup(args.repeats or 5, args.baseline)
        print(f"load average {run.machine['loadavg'][0]:.2f} -> {os.getloadavg()[0]:.2f}, "
              f"medians of {r['repeats']}, alternating")
        print(f"python -c 'import tensorflow'           {r['import_tensorflow_s']:7.2f} s")
        print(f"bigtrain fit debug=smoke, first step    {r['fit_first_step_s']:7.2f} s  "
              f"(+{r['after_import_tensorflow_s']:.2f} s; target +1.00 s)")
        print(f"bigtrain fit debug=smoke, exit          {r['fit_exit_s']:7.2f} s")
        if "baseline" in r:
            b = r["baseline"]
            print(f"baseline ({b['code']}): first step {b['fit_first_step_s']:.2f} s "
                  f"(+{b['fit_first_step_s'] - r['import_tensorflow_s']:.2f} s), exit "
                  f"{b['fit_exit_s']:.2f} s")
        m = r["timing_medians"]
        print(f"its summary: startup {m['startup_s']:.2f} s (command start to the first "
              f"step), first step {m['first_step_s']:.2f} s, after the last step "
              f"{m['end_s']:.2f} s, total {m['total_s']:.2f} s")
        print(f"written to {run.write(r, table_rows)}")
        return
    repeats = args.repeats or 7
    times = harness.alternate(  # load changes hit all alike
        {name: lambda cmd=cmd: harness.time_command(cmd) for name, cmd in COMMANDS.items()},
        repeats).values
    base = statistics.median(times["python -c pass"])
    print(f"{'command':34} {'median s':>9} {'min s':>7} {'x python':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:34} {med:9.3f} {min(ts):7.3f} {med / base:9.1f}")
    results = {"repeats": repeats, "commands": {
        name: {"median_s": statistics.median(ts), "min_s": min(ts), "runs_s": ts}
        for name, ts in times.items()}}
    print(f"written to {run.write(results, table_rows)}")


if __name__ == "__main__":
    main()
