"""One live run per run dir: `<run dir>/.lock` holds the holder's pid, host and start time.

A second `bigtrain fit` into a run dir that a live run holds is refused, naming the holder.
A lock left by a process that no longer exists on this host is stale: it is taken over with a
warning. A lock from another host cannot be checked from here; it is refused with the path
to remove if that run is known to be dead.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from bigtrain.config.errors import ConfigError

log = logging.getLogger("bigtrain")
LOCK = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def live_holder(run_dir: Path) -> dict | None:
    """The lock's holder if it may still be running (another live pid here, or another host);
    None if the dir is free or the lock is stale."""
    info = _read(Path(run_dir) / LOCK)
    if not info:
        return None
    if info.get("host") == socket.gethostname():
        pid = int(info.get("pid", -1))
        if pid == os.getpid() or not _alive(pid):
            return None
    return info


def _refusal(run_dir: Path, info: dict) -> ConfigError:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("time", 0)))
    where = ("" if info.get("host") == socket.gethostname() else
             f"; if that run is dead, remove {Path(run_dir) / LOCK}")
    return ConfigError("hydra.run.dir", f"{run_dir} is in use by a running bigtrain (pid "
                       f"{info.get('pid')} on {info.get('host')}, since {since}); wait for it "
                       f"or choose another hydra.run.dir{where}")


def check_free(run_dir: Path) -> None:
    """Refuse now, before anything is written, if a live run holds `run_dir`."""
    info = live_holder(run_dir)
    if info is not None:
        raise _refusal(run_dir, info)


class RunLock:
    """Hold `run_dir` for this process while it trains."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.run_dir = Path(run_dir)
        self.held = False

    def __enter__(self) -> RunLock:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = _read(self.path)
                if info is None:  # being written by another process, or empty: look again
                    time.sleep(0.05)
                    info = _read(self.path) or {}
                if live_holder(self.run_dir) is not None:
                    raise _refusal(self.run_dir, info) from None
                log.warning("taking over a stale lock on %s (pid %s on %s is gone)",
                            self.run_dir, info.get("pid"), info.get("host"))
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise ConfigError("hydra.run.dir", f"could not take the lock {self.path}")

    def __exit__(self, *exc) -> None:
        if self.held:
            info = _read(self.path)
            if info and info.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False
