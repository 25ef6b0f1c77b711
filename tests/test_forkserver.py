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
