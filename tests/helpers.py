"""Helpers the tests import (`from helpers import ...`); fixtures live in conftest.py."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "bigtrain.cli.main"]


def run_cli(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None,
            fresh: bool = False) -> subprocess.CompletedProcess:
    """Run `bigtrain ARGS` in a fresh process, as a user would (stdout is not a terminal).

    The process is forked from a server that has TensorFlow imported already (forkserver.py)
    unless `fresh` is set, the environment differs from the server's in more than what
    bigtrain reads at run time, another command is being forked for this pytest process right
    now, or BIGTRAIN_TEST_FORK=0: then it is a new interpreter (`python -m bigtrain.cli.main`).
    """
    from forkserver import FORKABLE_ENV

    full_env = {k: v for k, v in os.environ.items()
                if k not in ("BIGTRAIN_DEBUG", "HYDRA_FULL_ERROR", "BIGTRAIN_TEST_FORK")}
    full_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    if not fresh and os.environ.get("BIGTRAIN_TEST_FORK", "1") != "0":
        forked = _FORKS.run(list(args), Path(cwd), full_env, timeout, FORKABLE_ENV)
        if forked is not None:
            return forked
    return subprocess.run([*CLI, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


class _ForkServer:
    """This pytest process's fork server (tests/forkserver.py), started at its first use."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._env: dict[str, str] = {}
        self._lock = threading.Lock()
        self._dir: Path | None = None
        self._broken = False
        self.forked = 0  # commands run by a fork of the server so far

    def _start(self, env: dict[str, str], forkable: frozenset) -> bool:
        self._dir = Path(tempfile.mkdtemp(prefix="bigtrain-forkserver-"))
        self._env = {k: v for k, v in env.items() if k not in forkable}
        self._env["PYTHONUNBUFFERED"] = "1"
        with open(self._dir / "server.err", "w") as err:
            self._proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("forkserver.py"))],
                cwd=self._dir, env=self._env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, text=True, bufsize=1)
        ready = self._proc.stdout.readline()
        if not ready.startswith('{"ready"'):
            self._broken = True
            return False
        atexit.register(self.close)
        return True

    def run(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float,
            forkable: frozenset) -> subprocess.CompletedProcess | None:
        """The command's result, or None where it is not forked (see run_cli)."""
        if self._broken or not self._lock.acquire(blocking=False):
            return None
        try:
            if self._proc is None and not self._start(env, forkable):
                return None
            if {k: v for k, v in env.items() if k not in forkable} != \
                    {k: v for k, v in self._env.items() if k not in forkable}:
                return None
            out, err = (self._dir / "child.out", self._dir / "child.err")
            request = {"argv": args, "cwd": str(cwd.resolve()), "env": env, "out": str(out),
                       "err": str(err), "timeout": timeout}
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
            if not line:  # the server died: the rest run as plain subprocesses
                self._broken = True
                return None
            reply = json.loads(line)
            self.forked += 1
            stdout, stderr = (p.read_text(errors="replace") for p in (out, err))
            cmd = [*CLI, *args]
            if reply.get("timeout"):
                raise subprocess.TimeoutExpired(cmd, timeout, stdout, stderr)
            return subprocess.CompletedProcess(cmd, reply["returncode"], stdout, stderr)
        finally:
            self._lock.release()

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()


_FORKS = _ForkServer()


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def checkpoint_tensors(prefix) -> dict[str, bytes]:
    """Every saved tensor of a checkpoint as bytes, bookkeeping (save counter, loop state)
    left out: two runs that end bitwise equal have equal dicts."""
    import numpy as np
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    out = {}
    for name in reader.get_variable_to_shape_map():
        if name.startswith(("save_counter", "loop_state")):
            continue
        value = reader.get_tensor(name)
        out[name] = value if isinstance(value, bytes) else np.asarray(value).tobytes()
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def value_and_grads(fn, *args):
    """fn(*args), and the gradient of sum(fn * w) for a fixed random w, for every arg."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(args)
        y = fn(*args)
        w = tf.random.stateless_normal(y.shape, seed=(1, 2))
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * w)
    return y, tape.gradient(loss, args)


def check_eval_and_exports(run_dir: Path, summary: dict, tol: float,
                           loss_tol: float | None = None) -> None:
    """A trained run's `eval` gives its final val loss (within `loss_tol`, default `tol`), and
    its SavedModel and .keras exports answer as the restored model does, within `tol`."""
    import keras
    import numpy as np
    import pytest
    import tensorflow as tf

    from bigtrain.train.restore import evaluate_run, export_run, load_run

    result = evaluate_run(run_dir, "val", "latest")
    assert result["metrics"]["val_loss"] == pytest.approx(summary["final"]["val_loss"],
                                                           rel=loss_tol or tol)
    _, c, _, _ = load_run(run_dir)
    x = next(iter(c.splits.eval_batches("test", 16)))[0]
    expected = np.array(c.model(x, training=False))
    saved = tf.saved_model.load(str(export_run(run_dir, "savedmodel")))
    np.testing.assert_allclose(np.array(saved.serve(x)), expected, rtol=tol, atol=tol)
    loaded = keras.models.load_model(str(export_run(run_dir, "keras")), safe_mode=True)
    np.testing.assert_allclose(np.array(loaded(x, training=False)), expected, rtol=tol, atol=tol)
