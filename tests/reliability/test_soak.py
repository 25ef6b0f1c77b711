"""The soak (scripts/soak.py) with a small count: repeated SIGKILLs and a SIGTERM at random
points, relaunching each time, end bitwise equal to an uninterrupted run, with every step
recorded once and no temporary files left. `python scripts/soak.py` runs the full count."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow


def test_a_small_soak_loses_nothing(tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "soak.py"), "--kills", "3",
                           "--terms", "1", "--sweep-kills", "0", "--seed", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(out.read_text())["run"]
    assert run["faults_injected"] == 4 and run["sigterm"] == 1
    assert run["sigterm_exit_75"] == 1
    assert run["final_rc"] == 0 and run["survived"] == 4
    assert run["bitwise_equal"], run["events"]
    assert run["metrics_jsonl_each_step_once"] and run["metrics_csv_each_step_once"]
    assert run["stray_files"] == []
    assert run["steps_redone"] <= 4 * 5  # at most one checkpoint interval per fault
