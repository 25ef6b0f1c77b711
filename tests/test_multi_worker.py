"""strategy=multi_worker for real: two worker processes on 127.0.0.1, started by
`bigtrain launch` with a TF_CONFIG each (free ports found at run time)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import CLI, ROOT, read_json, read_jsonl

pytestmark = pytest.mark.slow

BASE = ["model=mlp", "model.dropout=0", "trainer.epochs=1", "trainer.log_every=5",
        "trainer.checkpoint_every=10", "trainer.progress=plain", "strategy.precision=fp32"]


def launch(tmp_path, run_dir, *extra, workers=2, env=None, timeout=240):
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    full_env = {**os.environ, "TMPDIR": str(scratch), **(env or {})}
    full_env.pop("BIGTRAIN_DEBUG", None)
    cmd = [*CLI, "launch", "--workers", str(workers),
           "--timeout", str(timeout - 20), "--", "bigtrain", "fit", "strategy=multi_worker",
           *BASE, *extra, f"hydra.run.dir={run_dir}"]
    return subprocess.run(cmd, cwd=tmp_path, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def losses(run_dir):
    return [(r["step"], r.get("loss", r.get("val_loss")))
            for r in read_jsonl(run_dir / "metrics.jsonl")]


def test_two_workers_match_one_and_only_the_chief_writes(tmp_path, cli):
    one = cli("fit", "strategy=cpu", *BASE, "hydra.run.dir=one")
    assert one.returncode == 0, one.stderr[-2000:]
    run = tmp_path / "two"
    r = launch(tmp_path, run)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "CollectiveAllReduceStrategy over 2 replica(s)" in r.stdout
    a, b = losses(tmp_path / "one"), losses(run)
    assert [s for s, _ in a] == [s for s, _ in b]  # one record per interval: one writer
    assert max(abs(x - y) for (_, x), (_, y) in zip(a, b, strict=True)) < 1e-5
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed" and summary["steps"] == 44
    # the chief's files; the other worker's log beside the chief's; its scratch removed
    assert (run / "fit.log").exists() and (run / "fit.worker-1.log").exists()
    assert "done: 44 steps" in (run / "fit.worker-1.log").read_text()
    assert len(list((run / "tb" / "train").iterdir())) == 1
    assert not list((tmp_path / "tmp").glob("bigtrain-worker-ckpt-*"))


def test_killing_both_workers_and_relaunching_resumes(tmp_path):
    whole = tmp_path / "whole"
    assert launch(tmp_path, whole).returncode == 0
    run = tmp_path / "killed"
    r = launch(tmp_path, run, env={"BIGTRAIN_FAULTS": "sigkill@step=25"})
    assert r.returncode != 0
    again = launch(tmp_path, run)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "resumed from" in again.stdout and "at step 20" in again.stdout
    assert losses(run) == losses(whole)


def test_launcher_reports_a_failing_worker(tmp_path):
    r = launch(tmp_path, tmp_path / "bad", "trainer.batch_size=33", timeout=120)
    assert r.returncode == 2
    assert "trainer.batch_size" in r.stdout and "Traceback" not in r.stdout


def test_launch_local_script_is_bigtrain_launch(tmp_path):
    """scripts/launch_local.py, kept for old command lines, runs `bigtrain launch`: one
    TF_CONFIG per worker, each naming its own index, output prefixed with it."""
    code = "import json, os; print(json.loads(os.environ['TF_CONFIG'])['task']['index'])"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "launch_local.py"), "--workers",
                        "2", "--", sys.executable, "-c", code], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == ["0", "1", "[w0]", "[w1]"]
    bad = subprocess.run([*CLI, "launch", "--workers", "2"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "give the command after --" in bad.stderr
