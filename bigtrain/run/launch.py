"""Run one multi-worker job as N processes on this machine, each with its own TF_CONFIG.

    bigtrain launch --workers 2 -- bigtrain fit strategy=multi_worker ...

Free ports on 127.0.0.1 are found at start. Every worker gets the same command; when it is a
`bigtrain fit` without `hydra.run.dir=`, one run dir is added for all of them (the workers
must share it: the chief writes it, the others read its checkpoints). Output lines are
prefixed with the worker's index. If one worker fails, the others are stopped; the exit status
is the first non-zero one. `--timeout` bounds the whole job.

Standard library only: `bigtrain launch` (bigtrain/cli/launch.py) imports it without
TensorFlow.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _pump(stream, prefix: str, sink) -> None:
    for line in iter(stream.readline, ""):
        sink.write(f"{prefix}{line}")
        sink.flush()


def launch(command: list[str], workers: int, timeout: float | None = None,
           env: dict | None = None) -> int:
    if command and command[0] == "bigtrain":  # the same interpreter as this launcher
        command = [sys.executable, "-m", "bigtrain.cli.main", *command[1:]]
    if "fit" in command and not any(a.startswith("hydra.run.dir=") for a in command):
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        command = [*command, f"hydra.run.dir=outputs/multi_worker/{stamp}"]
    hosts = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    procs = []
    threads = []
    for i in range(workers):
        tf_config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}
        penv = {**os.environ, **(env or {}), "TF_CONFIG": json.dumps(tf_config),
                "PYTHONUNBUFFERED": "1"}
        p = subprocess.Popen(command, env=penv, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
        procs.append(p)
        t = threading.Thread(target=_pump, args=(p.stdout, f"[w{i}] ", sys.stdout), daemon=True)
        t.start()
        threads.append(t)
    deadline = None if timeout is None else time.monotonic() + timeout
    status = 0
    try:
        while any(p.poll() is None for p in procs):
            failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
            if failed:
                status = failed[0]
                break
            if deadline is not None and time.monotonic() > deadline:
                print(f"bigtrain launch: timed out after {timeout:.0f}s", file=sys.stderr)
                status = 124
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        status = 130
    finally:
        _stop(procs)
        for t in threads:
            t.join(timeout=5)
    if status == 0:
        status = next((p.returncode for p in procs if p.returncode), 0)
    return status


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM the workers still running (the engine checkpoints), then SIGKILL."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        os.killpg(p.pid, signal.SIGTERM)
    end = time.monotonic() + 20
    for p in live:
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
