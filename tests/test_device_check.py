"""scripts/device_check.sh --dry-run: the GPU check's script keeps working where CI runs (a CPU):
its GPU tests are collected and said to be skipped, its LM benchmark runs at tiny shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import ROOT


def test_the_device_check_dry_run_works_on_a_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh"), "--dry-run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "tests collected" in out and "GPU tests skipped: no GPU here" in out
    assert "every step passed" in out
    bench = json.loads((tmp_path / "bench_gpu.json").read_text())
    row = bench["rows"][0]
    assert row["framework"].startswith("bigtrain") and row["tokens_per_sec"] > 0
    assert row["flops_per_token"] > 0 and row["loss"] > 0
    assert (tmp_path / "device_check.log").read_text().count("device_check:") >= 4
