"""scripts/device_check.sh: on a CPU (CI) its --dry-run keeps working (the GPU tests' kernel
checks run on the CPU, the rest said to be skipped, the LM benchmark at tiny shapes); on a
machine without TensorFlow (the lent H200) it says bigtrain was not checked and exits 2;
bench_gpu --torch-only needs no TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from helpers import ROOT


def test_the_device_check_dry_run_works_on_a_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh"), "--dry-run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "GPU tests that need a GPU skipped: no GPU here" in out
    # the kernel checks ran on the CPU and passed: a wrong call in a GPU test fails here
    tests = ET.parse(tmp_path / "gpu_tests.xml").getroot().find("testsuite")
    kernels = [case for case in tests.iter("testcase") if "kernels" in case.get("name")
               or "batch_norm" in case.get("name")]
    assert len(kernels) == 5 and not any(case.find("skipped") is not None
                                         or case.find("failure") is not None for case in kernels)
    assert "every step passed" in out
    bench = json.loads((tmp_path / "bench_gpu.json").read_text())
    row = bench["rows"][0]
    assert row["framework"].startswith("bigtrain") and row["tokens_per_sec"] > 0
    assert row["flops_per_token"] > 0 and row["loss"] > 0
    assert (tmp_path / "device_check.log").read_text().count("device_check:") >= 4


def test_without_tensorflow_the_check_says_so_and_exits_2(tmp_path):
    """The lent H200 had PyTorch but no TensorFlow and no registry: the check must say that
    bigtrain was not checked, run no GPU tests, and exit 2 (not 0, not a traceback). Here pip
    fails and neither TensorFlow nor torch imports (a stand-in python)."""
    fake = tmp_path / "fake"
    fake.mkdir()
    for name in ("tensorflow", "torch"):
        (fake / f"{name}.py").write_text(f"raise ImportError('no {name} on this machine')\n")
    python = tmp_path / "python"
    python.write_text("#!/usr/bin/env bash\n"
                      'if [[ "$1" == -m && "$2" == pip ]]; then echo "pip: no registry" >&2; '
                      "exit 1; fi\n"
                      f'PYTHONPATH={fake} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": str(python)}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "bigtrain with TensorFlow does not import here" in out
    assert "GPU tests NOT RUN: no TensorFlow here" in out
    assert "LM benchmark NOT RUN: neither TensorFlow nor PyTorch" in out
    assert "WITHOUT TensorFlow" in out and "bigtrain not checked on this GPU" in out
    assert "Traceback" not in out


def test_the_torch_only_benchmark_imports_no_tensorflow(tmp_path):
    """bench_gpu.py --torch-only (what ran on the H200): PyTorch's rows, eager and compiled,
    with the matmul chain beside them, and TensorFlow never imported."""
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    code = ("import runpy, sys\n"
            f"sys.argv = ['bench_gpu', '--torch-only', '--tiny', '--out', {str(out)!r}]\n"
            "runpy.run_module('scripts.bench_gpu', run_name='__main__')\n"
            "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["framework"].split()[-1] for r in rows] == ["eager", "torch.compile"]
    for r in rows:
        assert r.get("failed") or (r["tokens_per_sec"] > 0 and r["torch_matmul_flops"] > 0
                                   and 0 < r["matmul_fraction"] < 1.5)
    assert rows[0]["tokens_per_sec"] > 0  # eager always runs
