"""Wall time of the commands that must feel instant, next to bare Python and bare TensorFlow;
with --fit, the time to the first training step of `bigtrain fit debug=smoke` beside
`import tensorflow`, and where its start-up goes.

    python scripts/time_cli.py [--repeats 7]
    python scripts/time_cli.py --fit [--repeats 5]    # -> scripts/results/time_cli_fit.json
    python scripts/time_cli.py --fit --baseline DIR   # and DIR's (older) bigtrain, alternating

Runs each command `repeats` times, alternating, and prints the median seconds and the ratio to
`python -c pass`. The targets: `bigtrain --help` under 0.5 s on this 2-core machine; the first
logged step of `bigtrain fit debug=smoke` within `import tensorflow` + 1.0 s (issue 20). That
is timed from spawning the command to the first line of its metrics.jsonl (one step per call,
a record per step); the run's summary.json says where the time went (its `timing` block).
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

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "bigtrain --help": [sys.executable, "-m", "bigtrain.cli.main", "--help"],
    "bigtrain ls": [sys.executable, "-m", "bigtrain.cli.main", "ls"],
    "bigtrain show": [sys.executable, "-m", "bigtrain.cli.main", "show"],
    "bigtrain validate": [sys.executable, "-m", "bigtrain.cli.main", "validate"],
    "python -c 'import tensorflow'": [sys.executable, "-c", "import tensorflow"],
}
IMPORT_TF = COMMANDS["python -c 'import tensorflow'"]
SMOKE = ["debug=smoke", "trainer.log_every=1", "trainer.steps_per_loop=1",
         "trainer.progress=none"]
RESULTS = Path(__file__).parent / "results" / "time_cli_fit.json"


def first_step(run: Path, cwd: Path, code: str | None = None) -> dict:
    """Seconds from spawning `bigtrain fit debug=smoke` to its first metrics.jsonl line and
    to its exit, with its summary's timing block. `code`: a directory whose `bigtrain`
    package runs instead of the installed one (a checkout of older code)."""
    metrics = run / "metrics.jsonl"
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, env.get("PYTHONPATH")]))
    tic = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bigtrain.cli.main", "fit", *SMOKE,
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
    tf_runs, fits, base = [], [], []
    with tempfile.TemporaryDirectory(prefix="bigtrain-time-cli-") as tmp:
        cwd = Path(tmp)
        for i in range(repeats):
            tic = time.perf_counter()
            subprocess.run(IMPORT_TF, check=True, capture_output=True, cwd=cwd)
            tf_runs.append(time.perf_counter() - tic)
            fits.append(first_step(cwd / f"run-{i}", cwd))
            if baseline:
                base.append(first_step(cwd / f"base-{i}", cwd, baseline))
    tf_s = statistics.median(tf_runs)
    step_s = statistics.median(f["first_step_s"] for f in fits)
    parts = {k: statistics.median(f["timing"].get(k, 0.0) for f in fits)
             for k in ("startup_s", "first_step_s", "end_s", "total_s")}
    out = {"import_tensorflow_s": tf_s, "fit_first_step_s": step_s,
           "fit_exit_s": statistics.median(f["exit_s"] for f in fits),
           "after_import_tensorflow_s": step_s - tf_s,
           "runs": {"import_tensorflow_s": tf_runs, "fit": fits},
           "timing_medians": parts, "repeats": repeats, "loadavg": os.getloadavg()}
    if base:
        out["baseline"] = {"code": baseline, "runs": base,
                           "fit_first_step_s": statistics.median(f["first_step_s"] for f in base),
                           "fit_exit_s": statistics.median(f["exit_s"] for f in base)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--fit", action="store_true",
                        help="time the first step of bigtrain fit debug=smoke instead")
    parser.add_argument("--baseline", help="with --fit: a directory holding an older bigtrain "
                        "package to time alternately (e.g. `git archive` of a commit)")
    args = parser.parse_args()
    if args.fit:
        load = os.getloadavg()
        r = fit_startup(args.repeats or 5, args.baseline)
        print(f"load average {load[0]:.2f} -> {r['loadavg'][0]:.2f}, medians of "
              f"{r['repeats']}, alternating")
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
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(r, indent=2) + "\n")
        return
    repeats = args.repeats or 7
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, cmd in COMMANDS.items():  # alternate, so load changes hit all alike
            tic = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[name].append(time.perf_counter() - tic)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':34} {'median s':>9} {'min s':>7} {'x python':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:34} {med:9.3f} {min(ts):7.3f} {med / base:9.1f}")


if __name__ == "__main__":
    main()
