"""One live run per run dir: a lock the kernel holds for the run, on `<run dir>/.lock`.

The run takes an exclusive `flock` on the file and keeps it until it exits; the kernel drops
it when the process dies, however it dies, so a dead run never looks alive (a reused pid
does not matter) and two processes can never both take over a stale lock. The file records
the holder's pid, host and start time, for the message that refuses a second run.

A lock file naming another host is refused with the path to remove: on a shared file system
without working locks a lock from there cannot be checked from here. Where the file system
has no locks at all (flock fails with ENOLCK or EOPNOTSUPP), a soft lock takes over: the
file is created exclusively and a dead holder is recognized by its pid.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from bigtrain.core.errors import ConfigError

log = logging.getLogger("bigtrain")
LOCK = ".lock"
#: flock's answers on file systems without locks
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


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
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _locked_by_other(path: Path) -> bool | None:
    """Whether another process holds the kernel lock on `path`: True, False, or None when
    the file is missing or its file system has no locks."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError as ex:
        return None if ex.errno in _NO_LOCKS else True
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return False


def live_holder(run_dir: Path) -> dict | None:
    """The lock's holder if it may still be running (a live lock here, or one from another
    host); None if the dir is free or the lock is stale."""
    path = Path(run_dir) / LOCK
    info = _read(path)
    if info is not None and info.get("host") == socket.gethostname() \
            and int(info.get("pid", -1)) == os.getpid():
        return None  # this process
    locked = _locked_by_other(path)
    if locked:
        return _settled_record(path, info)
    if not info:
        return None
    if info.get("host") != socket.gethostname():
        return info  # cannot be checked from here
    if locked is None:  # soft lock: the pid tells
        return info if _alive(int(info.get("pid", -1))) else None
    return None


def _settled_record(path: Path, info: dict | None) -> dict:
    """The record of the process that holds the kernel lock on `path`: it writes it right
    after locking, over a stale one's (a dead pid) or into an empty file, so a record that is
    missing or names a dead process of this host is read again for up to a second."""
    for _ in range(20):
        if info and (info.get("host") != socket.gethostname()
                     or _alive(int(info.get("pid", -1)))):
            return info
        time.sleep(0.05)
        info = _read(path)
    return info or {"pid": "?", "host": "?", "time": 0}


def _refusal(run_dir: Path, info: dict) -> ConfigError:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("time", 0) or 0))
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
        self._fd: int | None = None
        self._soft = False

    @property
    def held(self) -> bool:
        return self._fd is not None or self._soft

    def __enter__(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as ex:
                os.close(fd)
                if ex.errno in _NO_LOCKS:
                    return self._soft_lock()
                if isinstance(ex, BlockingIOError) or ex.errno in (errno.EAGAIN, errno.EACCES):
                    raise _refusal(self.run_dir, self._holder_info()) from None
                raise
            # a holder that was leaving may have removed the file we opened: lock the new one
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            self._take(fd)
            return self
        raise ConfigError("hydra.run.dir", f"could not take the lock {self.path}")

    def _holder_info(self) -> dict:
        return _settled_record(self.path, _read(self.path))

    def _take(self, fd: int) -> None:
        """With the kernel lock held: refuse another host's record, note a stale one, write
        ours."""
        previous = _read(self.path)
        if previous and previous.get("host") != socket.gethostname():
            os.close(fd)
            raise _refusal(self.run_dir, previous)
        if previous:
            log.warning("taking over a stale lock on %s (pid %s on %s is gone)", self.run_dir,
                        previous.get("pid"), previous.get("host"))
        me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fd = fd

    def _soft_lock(self) -> RunLock:
        """No locks on this file system: an exclusively created file and the pid in it."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = _read(self.path) or {}
                if live_holder(self.run_dir) is not None:
                    raise _refusal(self.run_dir, info) from None
                log.warning("taking over a stale lock on %s (pid %s on %s is gone)",
                            self.run_dir, info.get("pid"), info.get("host"))
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._soft = True
            return self
        raise ConfigError("hydra.run.dir", f"could not take the lock {self.path}")

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            # remove the file while still holding the lock: a process that opened it before
            # the unlink sees the inode change after it locks, and retries on the new file
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
        elif self._soft:
            info = _read(self.path)
            if info and info.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self._soft = False
