"""A full disk and a read-only output dir, for real: the run dir lives on a small tmpfs the
test mounts (root only; where mounting is not allowed the tests say so and skip — the engine
test of an injected ENOSPC still runs everywhere). A clear error, previous checkpoints
intact, and the run resumes once there is space again."""

from __future__ import annotations

import subprocess

import pytest
from helpers import read_json, run_cli

pytestmark = pytest.mark.slow

# mlp on digits: ~0.6 MB per checkpoint (weights + Adam slots)
ARGS = ["debug=smoke", "model=mlp", "trainer.max_steps=12", "trainer.checkpoint_every=3",
        "trainer.keep_checkpoints=5", "trainer.progress=none", "logger=[]"]


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1800k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()[:80]}); the injected-ENOSPC "
                    "test in test_engine.py covers the write path")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _checkpoints(run):
    return sorted(int(p.name[5:-6]) for p in (run / "checkpoints").glob("ckpt-*.index"))


def test_full_disk_is_a_clear_error_and_keeps_the_last_checkpoint(small_fs, tmp_path):
    run = small_fs / "run"
    r = run_cli("fit", *ARGS, f"hydra.run.dir={run}", cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "No space left" in r.stderr and "Traceback" not in r.stderr
    kept = _checkpoints(run)
    assert kept, "no checkpoint survived"
    summary = read_json(run / "summary.json")
    assert summary["status"] == "failed" and "No space left" in summary["error"]
    # space again: the run resumes from the newest intact checkpoint and finishes
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    again = run_cli("fit", *ARGS, f"hydra.run.dir={run}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"at step {kept[-1]}" in again.stderr
    assert read_json(run / "summary.json")["status"] == "completed"


def test_read_only_run_dir_is_a_clear_error_and_changes_nothing(small_fs, tmp_path):
    run = small_fs / "run"
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    first = run_cli("fit", *ARGS, "trainer.max_steps=6", f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    r = run_cli("fit", *ARGS, f"hydra.run.dir={run}", cwd=tmp_path)
    assert r.returncode in (1, 2), r.stderr[-2000:]
    assert "Read-only file system" in r.stderr and "Traceback" not in r.stderr
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before
