"""Shared fixtures: the CLI run in a subprocess, and reference runs that resume tests compare
against. Helpers the tests import are in helpers.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import helpers
import pytest
import write_guard
from helpers import checkpoint_tensors, run_cli

# everything the suite writes goes under one temporary root (write_guard.py): HOME, the XDG
# directories, TMPDIR, the libraries' caches and the tests' shared XLA cache point there before
# any test imports bigtrain, Keras or W&B; xdist's workers and the tests' commands inherit it
_STARTING_ENV = dict(os.environ)
_MAKES_THE_SESSION = not write_guard.inside_a_session()
SESSION_DIR = write_guard.redirect()


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """In the process that made the session (not in its xdist workers, nor in a pytest a test
    starts, whose writes that process sees): the session fails if it wrote outside the root."""
    if _MAKES_THE_SESSION:
        places = write_guard.watched_places(_STARTING_ENV, helpers.ROOT)
        config.pluginmanager.register(write_guard.WriteGuard(places, SESSION_DIR.parent),
                                      "write_guard")


@pytest.fixture(autouse=True)
def _environment_keeps_the_fork_server():
    """A test that leaves os.environ changed so that commands no longer match the fork
    server's environment fails (use monkeypatch.setenv): every later command of its pytest
    process would start a fresh interpreter (helpers.run_cli), 8-10 s each here. What the
    server's own imports set (TensorFlow sets a few variables) does not count."""
    before = dict(os.environ)
    yield
    if helpers._FORKS.running:
        changed = helpers._FORKS.differs(helpers.command_env())
        if changed:
            for key in changed:
                if key in before:
                    os.environ[key] = before[key]
                else:
                    os.environ.pop(key, None)
            pytest.fail(f"the test left os.environ changed in {', '.join(changed)}, so that "
                        "later commands cannot be forked: use monkeypatch.setenv",
                        pytrace=False)


@pytest.fixture(autouse=True)
def _keras_dtype_policy_left_alone():
    """A model carries its own dtype policy (bigtrain.models.build_model): nothing bigtrain
    does, and no test, may leave Keras's process-wide policy changed for the next model built
    in this process. Checked, not repaired."""
    keras = sys.modules.get("keras")
    before = keras.mixed_precision.dtype_policy().name if keras else "float32"
    yield
    keras = sys.modules.get("keras")
    after = keras.mixed_precision.dtype_policy().name if keras else "float32"
    if after != before:
        pytest.fail(f"Keras's process-wide dtype policy was left at {after} (was {before})",
                    pytrace=False)


@pytest.fixture
def cli(tmp_path):
    def _run(*args: str, **kw):
        return run_cli(*args, cwd=tmp_path, **kw)

    return _run


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Callable[..., dict[str, bytes]]:
    """`reference_run(ARGS)`: the final checkpoint's tensors of an uninterrupted
    `bigtrain fit ARGS` (see helpers.checkpoint_tensors), trained once per session (per xdist
    worker) for each distinct ARGS. Kill-and-resume tests compare their resumed run to it."""
    done: dict[tuple, dict[str, bytes]] = {}

    def get(args: Sequence[str], step: int = 20) -> dict[str, bytes]:
        key = (tuple(args), step)
        if key not in done:
            root = tmp_path_factory.mktemp("reference")
            proc = run_cli("fit", *args, "hydra.run.dir=run", cwd=root)
            assert proc.returncode == 0, proc.stderr
            done[key] = checkpoint_tensors(root / "run" / "checkpoints" / f"ckpt-{step}")
        return done[key]

    return get
