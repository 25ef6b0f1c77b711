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
from helpers import read_json, run_cli, start_cli

pytestmark = pytest.mark.slow


def test_second_fit_into_a_live_run_dir_is_refused(tmp_path):
    args = ["fit", "debug=smoke", "trainer.max_steps=100000", "trainer.epochs=1000",
            "trainer.checkpoint_every=100000", "trainer.eval_every=100000",
            "trainer.progress=none", "hydra.run.dir=run"]
    live = start_cli(*args, cwd=tmp_path)
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


def _start_fit(tmp_path, args):
    return start_cli(*args, cwd=tmp_path)


@pytest.mark.parametrize("before", ["fresh", "stale lock of a SIGKILLed run"])
def test_eight_fits_started_together_exactly_one_trains(tmp_path, before):
    """The kernel's lock decides: of 8 processes started at once into one run dir (fresh, or
    over the lock a SIGKILLed run left behind), one trains and 7 exit 2 naming it."""
    args = ["fit", "model=mlp", "trainer.max_steps=300", "trainer.checkpoint_every=50",
            "trainer.progress=none", "hydra.run.dir=run"]
    if before != "fresh":
        first = _start_fit(tmp_path, args)
        deadline = time.time() + 120
        while time.time() < deadline and not list((tmp_path / "run" / "checkpoints").glob(
                "ckpt-*.index")):
            assert first.poll() is None, first.communicate()[1][-2000:]
            time.sleep(0.1)
        first.kill()
        first.communicate()
        assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == first.pid
    procs = [_start_fit(tmp_path, args) for _ in range(8)]
    results = [(p.pid, p.returncode, err) for p in procs
               for _, err in [p.communicate(timeout=300)]]
    winners = [pid for pid, rc, _ in results if rc == 0]
    assert len(winners) == 1, [(rc, err[-300:]) for _, rc, err in results]
    refused = [err for _, rc, err in results if rc == 2]
    assert len(refused) == 7
    for err in refused:
        assert f"in use by a running bigtrain (pid {winners[0]} on {socket.gethostname()}" \
            in err, err[-500:]
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "completed" and summary["steps"] == 300
    assert not (tmp_path / "run" / ".lock").exists()


def test_a_dead_runs_lock_whose_pid_was_reused_is_stale(tmp_path):
    """The lock file names a pid that is alive again, as another program: no process holds
    the kernel lock, so the run dir is free (a pid file alone would refuse it forever)."""
    other = subprocess.Popen(["sleep", "120"])
    try:
        run = tmp_path / "run"
        run.mkdir()
        (run / ".lock").write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(),
                                               "time": time.time() - 600}))
        r = run_cli("fit", "debug=smoke", "trainer.progress=none", "hydra.run.dir=run",
                    cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"taking over a stale lock on {run}" in r.stderr
        assert read_json(run / "summary.json")["status"] == "completed"
    finally:
        other.kill()
        other.wait()


def test_without_file_locks_a_soft_lock_still_refuses_a_live_holder(tmp_path, monkeypatch):
    """On a file system where flock fails (ENOLCK), the lock falls back to an exclusively
    created file with the pid: a live holder is refused, a dead one taken over."""
    import errno
    import fcntl

    from bigtrain.core.errors import ConfigError
    from bigtrain.run import lock as runlock

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    run = tmp_path / "run"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        run.mkdir()
        (run / ".lock").write_text(json.dumps({"pid": sleeper.pid,
                                               "host": socket.gethostname(), "time": 0}))
        with pytest.raises(ConfigError, match=f"pid {sleeper.pid}"):
            runlock.RunLock(run).__enter__()
    finally:
        sleeper.kill()
        sleeper.wait()
    with runlock.RunLock(run) as lock:  # the holder is gone now: taken over
        assert lock.held and json.loads((run / ".lock").read_text())["pid"] == os.getpid()
    assert not (run / ".lock").exists()
