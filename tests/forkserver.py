"""A fork server for the tests' `bigtrain` commands (helpers.run_cli).

Each `bigtrain` command a test runs in a fresh process spends most of its time importing
TensorFlow, Keras and KerasHub (4-8 s here, against 1-4 s of work for a smoke run). This
server imports them once, never runs a TensorFlow op itself (so no runtime or thread pool
exists to be copied), and forks one child per command: the child gets the command's argv,
working directory and environment, its stdout and stderr go to files, it runs the console
script's entry point (`bigtrain.cli.main:run`) as the installed `bigtrain` would, runs the
exit handlers and ends with the command's exit status, or with the signal that killed it.

What a fork cannot give, the tests get from a real subprocess (run_cli(..., fresh=True), or
an environment that differs in more than `FORKABLE_ENV`): TensorFlow's own import-time
output, and anything read from the environment while importing.

Protocol: one JSON request per line on stdin ({"argv", "cwd", "env", "out", "err",
"timeout"}, and "stdin", a file to read as the command's standard input), one JSON reply per
line ({"returncode"} or {"timeout": true}) on the stdout the server was started with, once
the command has ended. One request at a time. A request with a "status" path is started and
left running: the reply ({"pid"}) comes at once, and the exit status is written to that file
when the command ends (helpers.start_cli).

    python tests/forkserver.py      # started by helpers.run_cli, one per pytest process
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

#: environment variables bigtrain reads only while running (never while importing): a
#: command whose environment differs from the server's in these alone can be forked.
#: PYTEST_CURRENT_TEST, which pytest changes for every test, is read by nothing we run;
#: TF_CONFIG is read when the strategy is made; TMPDIR by tempfile, whose cached directory
#: the child forgets (_child), and by TensorFlow's C++ at the moment it makes a file.
FORKABLE_ENV = frozenset({"BIGTRAIN_FAULTS", "BIGTRAIN_ALLOW_TARGETS", "XDG_CACHE_HOME",
                          "PYTHONUNBUFFERED", "PYTEST_CURRENT_TEST", "TF_CONFIG", "TMPDIR"})


def _preload() -> None:
    """What a `bigtrain` command imports on its way to training, evaluating or exporting."""
    from bigtrain.core import xla_cache

    xla_cache.enable()  # as bigtrain.cli.main.run does first: TensorFlow reads it once
    import tensorflow as tf

    # what bigtrain.core.tensorflow_start.import_tensorflow does first (and then skips,
    # TensorFlow being imported): the GPU lookup and its cuInit messages, into the server's
    # stderr here
    tf.config.list_physical_devices("GPU")

    import bigtrain.cli.hydra_glue  # noqa: F401
    import bigtrain.cli.main  # noqa: F401
    import bigtrain.data  # noqa: F401
    import bigtrain.inference.predict  # noqa: F401
    import bigtrain.inference.serving  # noqa: F401
    import bigtrain.models  # noqa: F401
    import bigtrain.optim  # noqa: F401
    import bigtrain.run.task  # noqa: F401
    import bigtrain.train.fit  # noqa: F401

    try:  # model=hub and the learned tokenizers
        import keras_hub  # noqa: F401
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass


def _child(request: dict, reply_fd: int | None) -> None:
    """In the forked child: become the command, run it, exit as it would."""
    if reply_fd is not None:
        os.close(reply_fd)
    os.setpgid(0, 0)  # its own process group: a timeout ends it and what it started
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.dup2(os.open(request.get("stdin") or os.devnull, os.O_RDONLY), 0)
    os.dup2(os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
    if request["err"] == request["out"]:  # stderr into stdout, as stderr=STDOUT gives
        os.dup2(1, 2)
    else:
        os.dup2(os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
    import tempfile

    tempfile.tempdir = None  # read TMPDIR again, from the command's environment
    code = 1
    try:
        import bigtrain
        from bigtrain.cli import main

        # as `python -m bigtrain.cli.main ARGS` started in cwd sees them
        sys.argv = [main.__file__, *request["argv"]]
        sys.path[0] = request["cwd"]
        bigtrain.IMPORTED_AT = time.time()  # the command starts now, not when the server did
        main.run()
        code = 0
    except SystemExit as ex:
        code = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
        if not isinstance(ex.code, int | None):
            print(ex.code, file=sys.stderr)
    except BaseException:  # what an uncaught exception does to the interpreter
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _wait(pid: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"returncode": os.waitstatus_to_exitcode(status)}
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return {"timeout": True}
        time.sleep(0.01)


def _spawn(request: dict, reply_fd: int) -> int:
    """Fork a monitor that forks the command, tells the server its pid, waits for it (ending
    it after the request's timeout) and writes its exit status, as _wait gives it, to the
    request's "status" file. The command's pid."""
    read, write = os.pipe()
    monitor = os.fork()
    if monitor == 0:
        try:
            os.close(read)
            os.close(reply_fd)  # a dead server's protocol must end at once
            pid = os.fork()
            if pid == 0:
                os.close(write)
                _child(request, None)
            os.write(write, f"{pid}\n".encode())
            os.close(write)
            status = _wait(pid, request["timeout"])
            if status.get("timeout"):
                status["returncode"] = -signal.SIGKILL
            partial = request["status"] + ".partial"
            with open(partial, "w") as f:
                json.dump(status, f)
            os.replace(partial, request["status"])
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        pid = int(f.readline())
    _MONITORS.add(monitor)
    return pid


_MONITORS: set[int] = set()


def _reap_monitors() -> None:
    for monitor in list(_MONITORS):
        if os.waitpid(monitor, os.WNOHANG)[0]:
            _MONITORS.discard(monitor)


def serve() -> None:
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # the children's output never reaches the protocol
    before = dict(os.environ)
    _preload()
    set_by_imports = {k: v for k, v in os.environ.items() if before.get(k) != v}
    reply.write(json.dumps({"ready": os.getpid(), "set_by_imports": set_by_imports}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        _reap_monitors()
        if "status" in request:
            reply.write(json.dumps({"pid": _spawn(request, reply.fileno())}) + "\n")
            continue
        pid = os.fork()
        if pid == 0:
            _child(request, reply.fileno())
        reply.write(json.dumps(_wait(pid, request["timeout"])) + "\n")


if __name__ == "__main__":
    serve()
