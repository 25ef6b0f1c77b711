"""A soak of repeated faults: one training through many random SIGKILLs and SIGTERMs, and a
joblib sweep killed as a whole, each relaunched until done, then compared to an uninterrupted
run.

    python -m scripts.soak [--kills 20] [--terms 5] [--sweep-kills 2] [--steps 200] [--seed 0]

Faults land at random points: after a training step, during an evaluation, while a
checkpoint is written (bigtrain's BIGTRAIN_FAULTS hooks), in the first seconds of start-up
(a timed SIGKILL), and SIGTERM at a random time (a preemption: exit 75). After the last
relaunch the run must be bitwise equal to the uninterrupted one, hold every step exactly once
in metrics.jsonl and metrics_train.csv, and leave no temporary files. The sweep's jobs must
each complete once and appear once in the sweep table. Writes a results file of the run
(scripts/harness.py, or --out: its `run` and `sweep` beside the machine and commit).
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from scripts import harness, report

CLI = harness.BIGTRAIN
EVERY = 5
TOTAL = 200  # steps of the soaked run (--steps)
ARGS: list[str] = []


def set_steps(total: int) -> None:
    global TOTAL, ARGS
    TOTAL = total
    ARGS = ["debug=smoke", "trainer.deterministic=true", f"trainer.max_steps={TOTAL}",
            f"trainer.checkpoint_every={EVERY}", "trainer.eval_every=8", "trainer.log_every=1",
            "trainer.progress=none", "model.dropout=0.2", "dataset.augment.crop=1",
            "logger=[csv]"]
SWEEP = ["fit", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=mlp",
         "optim.lr=0.001,0.002,0.003,0.004", "trainer.max_steps=150", "trainer.checkpoint_every=25",
         "trainer.progress=none", "hydra.sweep.dir=sweep"]


def _env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("BIGTRAIN_DEBUG", "BIGTRAIN_FAULTS")}
    return {**env, "PYTHONUNBUFFERED": "1", **(extra or {})}


def checkpoint_tensors(prefix: Path) -> dict[str, bytes]:
    import numpy as np
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    return {name: np.asarray(reader.get_tensor(name)).tobytes()
            for name in reader.get_variable_to_shape_map()
            if not name.startswith(("save_counter", "loop_state"))}


def latest_step(run: Path) -> int:
    steps = [int(m.group(1)) for p in (run / "checkpoints").glob("ckpt-*.index")
             if (m := re.match(r"ckpt-(\d+)\.index", p.name))]
    return max(steps, default=0)


def logged_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if "loss" in r:
            out.append(r["step"])
    return out


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def one_fault(rng: random.Random, kind: str, cwd: Path) -> dict:
    """Launch the run once with one fault; return what happened."""
    run = cwd / "run"
    start = latest_step(run)
    env, timer = {}, None
    if kind == "step":
        # near where it resumed, so that all the faults fit in one run
        env["BIGTRAIN_FAULTS"] = f"sigkill@step={rng.randint(start + 1, min(TOTAL - 1, start + 8))}"
    elif kind == "eval":
        env["BIGTRAIN_FAULTS"] = "sigkill@eval=1"
    elif kind == "checkpoint":
        first = (start // EVERY + 1) * EVERY
        last = min(TOTAL, first + 2 * EVERY)
        env["BIGTRAIN_FAULTS"] = f"sigkill@checkpoint={rng.randrange(first, last, EVERY)}"
    elif kind == "startup":
        timer = ("kill", rng.uniform(0.3, 4.0))
    elif kind == "term":
        timer = ("term", None)
    proc = subprocess.Popen([*CLI, "fit", *ARGS, "hydra.run.dir=run"], cwd=cwd, env=_env(env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if timer and timer[0] == "kill":
        time.sleep(timer[1])
        proc.kill()
    elif timer:  # SIGTERM once this process has trained a step past its start
        deadline = time.time() + 120
        target = start + rng.randint(1, 6)
        before = _inode(run / "metrics.jsonl")  # a resumed run rewrites the file first
        while proc.poll() is None and time.time() < deadline:
            fresh = _inode(run / "metrics.jsonl") not in (before, None)
            if (fresh or before is None) and max(logged_steps(run), default=0) >= target:
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.05)
    _, err = proc.communicate(timeout=300)
    reached = max(logged_steps(run), default=0)
    return {"kind": kind, "fault": env.get("BIGTRAIN_FAULTS") or timer[0], "rc": proc.returncode,
            "resumed_from": start, "reached": reached,
            "finished": proc.returncode == 0, "stderr_tail": err[-300:]}


def soak_run(kills: int, terms: int, seed: int, root: Path) -> dict:
    rng = random.Random(seed)
    ref = root / "reference"
    ref.mkdir()
    r = subprocess.run([*CLI, "fit", *ARGS, "hydra.run.dir=run"], cwd=ref, env=_env(),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    reference = checkpoint_tensors(ref / "run" / "checkpoints" / f"ckpt-{TOTAL}")
    work = root / "soak"
    work.mkdir()
    kinds = ["term"] * terms + [rng.choice(["step", "step", "eval", "checkpoint", "startup"])
                                for _ in range(kills)]
    rng.shuffle(kinds)
    events = []
    for kind in kinds:
        if latest_step(work / "run") >= TOTAL - EVERY:
            break  # too close to the end to inject more here
        events.append(one_fault(rng, kind, work))
    final = subprocess.run([*CLI, "fit", *ARGS, "hydra.run.dir=run"], cwd=work, env=_env(),
                           capture_output=True, text=True)
    run = work / "run"
    got = checkpoint_tensors(run / "checkpoints" / f"ckpt-{TOTAL}")
    with open(run / "metrics_train.csv", newline="") as f:
        csv_steps = [int(r["step"]) for r in csv.DictReader(f)]
    stray = [str(p.relative_to(run)) for p in run.rglob("*")
             if "_temp" in p.name or p.name.endswith((".tmp", ".partial")) or p.name == ".lock"]
    survived = [e for e in events if e["rc"] in (-signal.SIGKILL, 75, 0)]
    # steps trained again: what a launch reached beyond the step the next launch resumed from
    resumed = [e["resumed_from"] for e in events[1:]] + [latest_resumed(final.stderr)]
    redone = sum(max(0, e["reached"] - r) for e, r in zip(events, resumed, strict=True))
    return {
        "faults_injected": len(events),
        "sigkill": sum(e["kind"] != "term" for e in events),
        "sigterm": sum(e["kind"] == "term" for e in events),
        "sigterm_exit_75": sum(e["kind"] == "term" and e["rc"] == 75 for e in events),
        "survived": len(survived) if final.returncode == 0 else 0,
        "steps_redone": redone,
        "final_rc": final.returncode,
        "bitwise_equal": got == reference,
        "metrics_jsonl_each_step_once": logged_steps(run) == list(range(1, TOTAL + 1)),
        "metrics_csv_each_step_once": csv_steps == list(range(1, TOTAL + 1)),
        "stray_files": stray,
        "events": events,
    }


def latest_resumed(stderr: str) -> int:
    m = re.search(r"resumed from .* at step (\d+)", stderr)
    return int(m.group(1)) if m else 0


def soak_sweep(kills: int, seed: int, root: Path) -> dict:
    rng = random.Random(seed + 1)
    work = root / "sweep-soak"
    work.mkdir()
    killed_after = []
    for _ in range(kills):
        proc = subprocess.Popen([*CLI, *SWEEP], cwd=work, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        delay = rng.uniform(8.0, 20.0)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_after.append(round(delay, 1))
    final = subprocess.run([*CLI, *SWEEP], cwd=work, env=_env(), capture_output=True, text=True)
    jobs = sorted(p for p in (work / "sweep").iterdir() if p.is_dir() and p.name.isdigit())
    statuses = [json.loads((j / "summary.json").read_text())["status"] for j in jobs]
    with open(work / "sweep" / "sweep_summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"kills": kills, "killed_after_s": killed_after, "final_rc": final.returncode,
            "jobs": len(jobs), "completed": statuses.count("completed"),
            "table_rows": len(rows), "table_jobs": sorted(r.get("job", "") for r in rows)}


def main() -> None:
    parser = harness.arguments("soak", __doc__)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--terms", type=int, default=5)
    parser.add_argument("--sweep-kills", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200, help="length of the soaked run")
    args = parser.parse_args()
    run = harness.Run("soak", args.out)
    set_steps(args.steps)
    with tempfile.TemporaryDirectory() as d:
        tic = time.time()
        result = {"run": soak_run(args.kills, args.terms, args.seed, Path(d))}
        if args.sweep_kills:
            result["sweep"] = soak_sweep(args.sweep_kills, args.seed, Path(d))
        result["wall_s"] = round(time.time() - tic, 1)
    path = run.write(result, table_rows)
    summary = {k: v for k, v in result["run"].items() if k != "events"}
    print(json.dumps({**summary, "sweep": result.get("sweep"), "wall_s": result["wall_s"]},
                     indent=2))
    print(report.table(table_rows(result)))
    print(f"written to {path}")


def table_rows(record: dict) -> list[dict]:
    """The results file's table: what the soaked run and the sweep went through and kept."""
    rows = [{"check": f"run: {k}", "result": v} for k, v in record["run"].items()
            if k != "events"]
    rows += [{"check": f"sweep: {k}", "result": v} for k, v in (record.get("sweep") or {}).items()]
    rows.append({"check": "wall s", "result": record.get("wall_s")})
    return rows


if __name__ == "__main__":
    main()
