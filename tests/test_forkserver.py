"""The tests' fork server (forkserver.py): commands forked from it give what a fresh
interpreter gives, and the server keeps serving from one test to the next."""

from __future__ import annotations

import helpers
from helpers import run_cli


def test_commands_of_later_tests_are_forked_and_answer_as_a_fresh_process(tmp_path,
                                                                         monkeypatch):
    fresh = run_cli("validate", "optim.lr=-1", cwd=tmp_path, fresh=True)
    before = helpers._FORKS.forked
    first = run_cli("validate", "optim.lr=-1", cwd=tmp_path)
    # pytest names the current test in the environment: a new name must not stop the forking
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/test_other.py::test_next (call)")
    second = run_cli("validate", "optim.lr=-1", cwd=tmp_path)
    assert helpers._FORKS.forked == before + 2
    assert (first.returncode, first.stdout, first.stderr) == \
        (second.returncode, second.stdout, second.stderr) == \
        (fresh.returncode, fresh.stdout, fresh.stderr)
    assert fresh.returncode == 2 and "optim.lr" in fresh.stderr


def test_a_started_command_is_forked_and_answers_as_popen_does(tmp_path):
    import signal
    import subprocess

    import pytest

    args = ("validate", "optim.lr=-1")
    plain = helpers.start_cli(*args, cwd=tmp_path, fresh=True)
    assert isinstance(plain, subprocess.Popen)
    forked = helpers.start_cli(*args, cwd=tmp_path)
    assert isinstance(forked, helpers.ForkedProcess)
    assert forked.communicate(timeout=60) == plain.communicate(timeout=60)
    assert forked.returncode == plain.returncode == 2
    merged = helpers.start_cli(*args, cwd=tmp_path, merge_stderr=True)
    out, err = merged.communicate(timeout=60)
    assert err is None and "optim.lr" in out

    # a long run: it waits, and a signal ends it as it ends a Popen
    long = helpers.start_cli("fit", "debug=smoke", "trainer.max_steps=100000",
                             "trainer.epochs=1000", cwd=tmp_path)
    with pytest.raises(subprocess.TimeoutExpired):
        long.wait(timeout=0.2)
    assert long.poll() is None
    long.send_signal(signal.SIGKILL)
    assert long.wait(timeout=60) == -signal.SIGKILL

