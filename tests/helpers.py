"""Helpers the tests import (`from helpers import ...`); fixtures live in conftest.py."""

from __future__ import annotations

import atexit
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: TensorFlow's and absl's start-up lines, which never reach a user's console
TF_NOISE = re.compile(r"(^[IWEF]\d{4} |absl::InitializeLog|oneDNN|cudart|cuInit|"
                      r"cuda_platform|cpu_feature_guard)", re.M)
CLI = [sys.executable, "-m", "bigtrain.cli.main"]


def command_env(env: dict | None = None) -> dict[str, str]:
    """The environment a test's `bigtrain` command gets: this process's, without the debug
    switches a developer may have set, plus `env`."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("BIGTRAIN_DEBUG", "HYDRA_FULL_ERROR", "BIGTRAIN_TEST_FORK")}
    full_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    return full_env


def run_cli(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None,
            fresh: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
    """Run `bigtrain ARGS` in a fresh process, as a user would (stdout is not a terminal),
    with `input` as its standard input if given.

    The process is forked from a server that has TensorFlow imported already (forkserver.py)
    unless `fresh` is set, the environment differs from the server's in more than what
    bigtrain reads at run time, another command is being forked for this pytest process right
    now, or BIGTRAIN_TEST_FORK=0: then it is a new interpreter (`python -m bigtrain.cli.main`).
    """
    full_env = command_env(env)
    tic = time.monotonic()
    why = "fresh=True" if fresh else "BIGTRAIN_TEST_FORK=0"
    if not fresh and os.environ.get("BIGTRAIN_TEST_FORK", "1") != "0":
        forked, why = _FORKS.run(list(args), Path(cwd), full_env, timeout, input)
        if forked is not None:
            _log_command(args, "forked", tic)
            return forked
    try:
        return subprocess.run([*CLI, *args], cwd=cwd, env=full_env, capture_output=True,
                              text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
    finally:
        _log_command(args, f"fresh: {why}", tic)


def start_cli(*args: str, cwd: Path, env: dict | None = None, merge_stderr: bool = False,
              timeout: float = 600, fresh: bool = False):
    """Start `bigtrain ARGS` and return at once: a process with the Popen methods the tests
    use (pid, poll, wait, communicate, send_signal, kill, returncode), text output, stderr
    into stdout with `merge_stderr`. Forked from the fork server as run_cli's commands are
    (and killed after `timeout` s there), else a subprocess.Popen."""
    full_env = command_env(env)
    why = "fresh=True" if fresh else "BIGTRAIN_TEST_FORK=0"
    if not fresh and os.environ.get("BIGTRAIN_TEST_FORK", "1") != "0":
        proc, why = _FORKS.spawn(list(args), Path(cwd), full_env, timeout, merge_stderr)
        if proc is not None:
            _log_command(args, "forked (started)", time.monotonic())
            return proc
    _log_command(args, f"fresh (started): {why}", time.monotonic())
    return subprocess.Popen([*CLI, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                            text=True)


def start_workers(*args: str, cwd: Path, workers: int = 2, env: dict | None = None) -> list:
    """`bigtrain ARGS` as the `workers` processes of one multi-worker job on 127.0.0.1, each
    with its own TF_CONFIG (as `bigtrain launch` writes it), started by start_cli with stderr
    into stdout. The launcher starts fresh interpreters; these are forked."""
    from bigtrain.run.launch import free_ports

    hosts = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    return [start_cli(*args, cwd=cwd, merge_stderr=True,
                      env={**(env or {}), "TF_CONFIG": json.dumps(
                          {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})})
            for i in range(workers)]


def run_workers(*args: str, cwd: Path, workers: int = 2, env: dict | None = None,
                timeout: float = 240) -> tuple[list[int], list[str]]:
    """start_workers run to their end: the workers' exit statuses and outputs."""
    return wait_all(start_workers(*args, cwd=cwd, workers=workers, env=env), timeout)


def wait_all(procs: list, timeout: float = 240) -> tuple[list[int], list[str]]:
    """Started processes (stderr into stdout) run to their end, any left killed: their exit
    statuses and outputs."""
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [p.returncode for p in procs], outs


def _log_command(args, how: str, tic: float) -> None:
    """With BIGTRAIN_TEST_FORK_LOG=FILE, one JSON line per command: the test, the command,
    forked or why not, and its seconds (to find the tests that lose the fork server)."""
    path = os.environ.get("BIGTRAIN_TEST_FORK_LOG")
    if path:
        line = {"test": os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0],
                "argv": list(args)[:3], "how": how, "s": round(time.monotonic() - tic, 2)}
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


class ForkedProcess:
    """A command the fork server forked and left running (start_cli): its output goes to
    files, its exit status comes in a file the server's monitor writes when it ends."""

    def __init__(self, args: list[str], pid: int, out: Path, err: Path | None, status: Path):
        self.args, self.pid, self.returncode = [*CLI, *args], pid, None
        self._out, self._err, self._status = out, err, status

    def poll(self) -> int | None:
        if self.returncode is None and self._status.exists():
            self.returncode = json.loads(self._status.read_text())["returncode"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str | None]:
        self.wait(timeout)
        out = self._out.read_text(errors="replace")
        return out, None if self._err is None else self._err.read_text(errors="replace")

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        import signal

        self.send_signal(signal.SIGTERM)


class _ForkServer:
    """This pytest process's fork server (tests/forkserver.py), started at its first use."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._env: dict[str, str] = {}
        self._set_by_imports: dict[str, str] = {}
        self._lock = threading.Lock()
        self._dir: Path | None = None
        self._broken = False
        self._commands = 0
        self.forked = 0  # commands run by a fork of the server so far

    @property
    def running(self) -> bool:
        return self._proc is not None and not self._broken

    def _start(self, env: dict[str, str]) -> bool:
        """Start the server in the directory _files made."""
        from forkserver import FORKABLE_ENV

        self._env = {k: v for k, v in env.items() if k not in FORKABLE_ENV}
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
        self._set_by_imports = json.loads(ready)["set_by_imports"]
        atexit.register(self.close)
        return True

    def differs(self, env: dict[str, str]) -> list[str]:
        """The variables in which a command's environment differs from the server's, left
        aside those bigtrain reads only at run time (FORKABLE_ENV) and those the server's
        imports set themselves (the same imports in a fresh interpreter set them alike)."""
        from forkserver import FORKABLE_ENV

        def same(key: str) -> bool:
            if key in FORKABLE_ENV or env.get(key) == self._env.get(key):
                return True
            return key in self._set_by_imports and \
                env.get(key) in (None, self._set_by_imports[key])

        return sorted(k for k in env.keys() | self._env.keys() if not same(k))

    def _files(self) -> Path:
        """A new prefix for one command's files in the server's directory."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="bigtrain-forkserver-"))
        self._commands += 1
        return self._dir / f"command-{self._commands}"

    def _request(self, request: dict, env: dict[str, str]) -> tuple[dict | None, str]:
        """Send one request, the lock held for it: the reply, or None and why there is
        none (the command then runs as a plain subprocess)."""
        if self._broken:
            return None, "the server is broken"
        if not self._lock.acquire(blocking=False):
            return None, "another command of this process is being forked"
        try:
            # the server takes the tests' own environment, not the first command's extras
            # (a BIGTRAIN_DEBUG=1 command must run fresh, not start a debug server)
            if self._proc is None and not self._start(command_env()):
                return None, "the server did not start"
            keys = self.differs(env)
            if keys:
                return None, "environment differs in " + ", ".join(keys)
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
            if not line:  # the server died: the rest run as plain subprocesses
                self._broken = True
                return None, "the server died"
            self.forked += 1
            return json.loads(line), ""
        finally:
            self._lock.release()

    def run(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float,
            input: str | None = None) -> tuple[subprocess.CompletedProcess | None, str]:
        """The command's result, or None and why it is not forked (see run_cli)."""
        base = self._files()
        out, err = Path(f"{base}.out"), Path(f"{base}.err")
        request = {"argv": args, "cwd": str(cwd.resolve()), "env": env, "timeout": timeout,
                   "out": str(out), "err": str(err)}
        if input is not None:
            Path(f"{base}.in").write_text(input)
            request["stdin"] = f"{base}.in"
        reply, why = self._request(request, env)
        if reply is None:
            return None, why
        stdout, stderr = (p.read_text(errors="replace") for p in (out, err))
        for path in (out, err, Path(f"{base}.in")):
            path.unlink(missing_ok=True)
        cmd = [*CLI, *args]
        if reply.get("timeout"):
            raise subprocess.TimeoutExpired(cmd, timeout, stdout, stderr)
        return subprocess.CompletedProcess(cmd, reply["returncode"], stdout, stderr), ""

    def spawn(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float,
              merge_stderr: bool) -> tuple[ForkedProcess | None, str]:
        """The command forked and left running (see start_cli), or None and why not."""
        base = self._files()
        out, err, status = (Path(f"{base}.{x}") for x in ("out", "err", "status"))
        request = {"argv": args, "cwd": str(cwd.resolve()), "env": env, "timeout": timeout,
                   "out": str(out), "err": str(out if merge_stderr else err),
                   "status": str(status)}
        reply, why = self._request(request, env)
        if reply is None:
            return None, why
        return ForkedProcess(args, reply["pid"], out, None if merge_stderr else err,
                             status), ""

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


def tree_digest(root: Path) -> dict[str, str]:
    """Every path under `root` (folders too) with its bytes' SHA-256 (files) or "dir": equal
    digests mean the tree is byte for byte the same."""
    import hashlib

    return {str(p.relative_to(root)): "dir" if p.is_dir() else
            hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*"))}


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

    from bigtrain.inference.restore import evaluate_run, export_run, open_run

    result = evaluate_run(run_dir, "val", "latest")
    assert result["metrics"]["val_loss"] == pytest.approx(summary["final"]["val_loss"],
                                                           rel=loss_tol or tol)
    c = open_run(run_dir).components
    x = next(iter(c.splits.eval_batches("test", 16)))[0]
    expected = np.array(c.model(x, training=False))
    saved = tf.saved_model.load(str(export_run(run_dir, "savedmodel")))
    np.testing.assert_allclose(np.array(saved.serve(x)), expected, rtol=tol, atol=tol)
    loaded = keras.models.load_model(str(export_run(run_dir, "keras")), safe_mode=True)
    np.testing.assert_allclose(np.array(loaded(x, training=False)), expected, rtol=tol, atol=tol)
