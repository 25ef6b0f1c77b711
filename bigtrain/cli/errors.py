"""Turn exceptions into what a user should see: a short message and an exit status.

Exit statuses: 0 success; 1 the run failed (its summary.json and log say why); 2 a usage or
config mistake; 75 preempted (SIGTERM or Ctrl-C: checkpoint written, requeue to resume);
130 interrupted. `BIGTRAIN_DEBUG=1` re-raises, showing the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from bigtrain.rundir import RunFailed
from bigtrain.train.preemption import EXIT_PREEMPTED, Preempted

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _err(msg: str) -> None:
    sys.stderr.write(f"bigtrain: error: {msg}\n")


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")


def describe_config_error(ex: BaseException) -> str | None:
    """A one- or two-line description of a config mistake, or None if `ex` is not one."""
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
        SearchPathException,
    )
    from omegaconf.errors import OmegaConfBaseException

    from bigtrain.config.errors import ConfigError

    if isinstance(ex, ConfigError):
        return str(ex)
    if isinstance(ex, MissingConfigException):
        missing = ex.missing_cfg_file or ""
        if "/" in missing and ex.options:
            group, option = missing.rsplit("/", 1)
            opts = ", ".join(o for o in ex.options)
            return (f"{group}={option}: no such option. Available: {opts} "
                    f"(see `bigtrain ls {group}`)")
        return _first_line(str(ex))
    if isinstance(ex, OverrideParseException):
        return f"cannot parse override {ex.override!r}: {_first_line(ex.message)}"
    if isinstance(ex, SearchPathException):
        return _first_line(str(ex))
    if isinstance(ex, ConfigCompositionException):
        head = _first_line(str(ex))
        cause = ex.__cause__
        if isinstance(cause, OmegaConfBaseException):
            key = getattr(cause, "full_key", None)
            detail = _first_line(getattr(cause, "msg", str(cause)))
            parent = getattr(cause, "parent_node", None)
            if "not in" in detail and parent is not None and hasattr(parent, "keys"):
                allowed = ", ".join(str(k) for k in parent.keys())
                return f"{key}: unknown key. Allowed keys: {allowed}"
            return f"{head}\n  {key}: {detail}" if key else f"{head}\n  {detail}"
        return head
    if isinstance(ex, OmegaConfBaseException):
        key = getattr(ex, "full_key", None)
        msg = _first_line(getattr(ex, "msg", str(ex)))
        return f"{key}: {msg}" if key else msg
    return None


def _os_error(ex: BaseException) -> OSError | None:
    """The OSError (full disk, read-only file system, permissions) an error came from."""
    seen = 0
    while ex is not None and seen < 10:
        if isinstance(ex, OSError) and ex.strerror:
            return ex
        ex = ex.__cause__ or ex.__context__
        seen += 1
    return None


@contextmanager
def reported() -> Iterator[None]:
    """Run a command body, mapping exceptions to messages and exit statuses."""
    debug = os.environ.get("BIGTRAIN_DEBUG", "") not in ("", "0")
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Preempted as ex:
        _err(f"{ex} (exit status {EXIT_PREEMPTED}: requeue to resume)")
        raise typer.Exit(EXIT_PREEMPTED) from None
    except KeyboardInterrupt:
        if debug:
            raise
        _err("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except RunFailed as ex:
        if debug:
            raise
        _err(f"{ex} (details: {ex.run_dir})")
        raise typer.Exit(EXIT_FAILED) from None
    except Exception as ex:
        if debug:
            raise
        msg = describe_config_error(ex)
        if msg is None:
            if isinstance(ex, ValueError) and ("--resolve" in str(ex) or "Only one of" in str(ex)):
                msg = str(ex)
            else:
                os_error = _os_error(ex)
                if os_error is not None:  # a disk or permission problem behind the error
                    _err(f"{ex}: {os_error.strerror}: {os_error.filename or ''}".rstrip(": "))
                else:
                    _err(f"{type(ex).__name__}: {ex} (set BIGTRAIN_DEBUG=1 for the traceback)")
                raise typer.Exit(EXIT_FAILED) from None
        _err(msg)
        raise typer.Exit(EXIT_USAGE) from None
