"""One live run per run dir: a second `bigtrain fit` into it is refused, naming the holder;
a stale lock from a dead process is taken over with a warning."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from helpers import CLI, read_json, run_cli

pytestmark = pytest.mark.slow


def test_second_fit_into_a_live_run_dir_is_refused(tmp_path):
    args = ["fit", "debug=smoke", "trainer.max_steps=100000", "trainer.epochs=1000",
            "trainer.checkpoint_every=100000", "trainer.eval_every=100000",
            "trainer.progress=none", "hydra.run.dir=run"]
    live = subprocess.Popen([*CLI, *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lock = tmp_path / "run" / ".lock"
        deadline = time.time() + 120
        while time.time() < deadline and not (tmp_path / "run" / "metrics.jsonl").exists():
            assert live.poll() is None, live.communicate()[1][-2000:]
            time.sleep(0.2)
        holder = json.loads(lock.read_text())
        assert holder["pid"] == live.pid and holder["host"] == socket.gethostname()
        hydra_files = {p: p.read_bytes() for p in (tmp_path / "run" / ".hydra").iterdir()}
        second = run_cli("fit", "debug=smoke", "optim.lr=0.1", "hydra.run.dir=run",
                         cwd=tmp_path)
        assert second.returncode == 2
        assert f"in use by a running bigtrain (pid {live.pid}" in second.stderr
        # nothing of the live run was touched
        assert {p: p.read_bytes() for p in (tmp_path / "run" / ".hydra").iterdir()} == hydra_files
        assert not (tmp_path / "run" / "summary.json").exists()
        assert live.poll() is None
    finally:
        live.terminate()
        live.communicate(timeout=120)
    assert live.returncode == 75  # the live run was preempted cleanly by SIGTERM
    assert not lock.exists()  # released on exit


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(json.dumps({"pid": int(dead), "host": socket.gethostname(),
                                           "time": time.time() - 60}))
    r = run_cli("fit", "debug=smoke", "trainer.progress=none", "hydra.run.dir=run",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"taking over a stale lock on {run}" in r.stderr and f"pid {dead}" in r.stderr
    assert read_json(run / "summary.json")["status"] == "completed"
    assert not (run / ".lock").exists()


def test_lock_of_another_host_is_refused_with_the_file_to_remove(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": "node-17",
                                           "time": time.time()}))
    r = run_cli("fit", "debug=smoke", "hydra.run.dir=run", cwd=tmp_path)
    assert r.returncode == 2
    assert "node-17" in r.stderr and "remove" in r.stderr and ".lock" in r.stderr
