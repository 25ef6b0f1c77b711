"""The soak (scripts/soak.py) with a small count: repeated SIGKILLs and a SIGTERM at random
points, relaunching each time, end bitwise equal to an uninterrupted run, with every step
recorded once and no temporary files left. `python -m scripts.soak` runs the full count."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow


def test_a_small_soak_loses_nothing(tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "-m", "scripts.soak", "--kills", "3",
                           "--terms", "1", "--sweep-kills", "0", "--seed", "1", "--steps", "60",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(out.read_text())["run"]
    assert run["faults_injected"] == 4 and run["sigterm"] == 1
    assert run["sigterm_exit_75"] == 1
    assert run["final_rc"] == 0 and run["survived"] == 4
    assert run["bitwise_equal"], run["events"]
    assert run["metrics_jsonl_each_step_once"] and run["metrics_csv_each_step_once"]
    assert run["stray_files"] == []
    assert run["steps_redone"] <= 4 * 5  # at most one checkpoint interval per fault


def test_a_run_killed_before_its_first_checkpoint_leaves_no_duplicate_records(tmp_path):
    from helpers import read_jsonl, run_cli

    args = ["fit", "debug=smoke", "trainer.max_steps=12", "trainer.checkpoint_every=10",
            "trainer.log_every=1", "trainer.progress=none", "hydra.run.dir=run"]
    killed = run_cli(*args, cwd=tmp_path, env={"BIGTRAIN_FAULTS": "sigkill@step=6"})
    assert killed.returncode != 0
    before = [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert before == list(range(1, len(before) + 1)) and len(before) >= 4
    assert not list((tmp_path / "run" / "checkpoints").glob("ckpt-*.index"))
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    steps = [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 13))
