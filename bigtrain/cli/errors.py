"""Turn exceptions into what a user should see: a short message and an exit status.

Exit statuses: 0 success; 1 the run failed (its summary.json and log say why); 2 a usage or
config mistake; 75 preempted (SIGTERM, SIGUSR2 or Ctrl-C: checkpoint written; requeue, or
`bigtrain resume RUN_DIR`, to resume); 130 interrupted. `BIGTRAIN_DEBUG=1` also prints the
traceback, with the same exit status.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from bigtrain.core.console import debug_enabled
from bigtrain.run.rundir import RunFailed
from bigtrain.train.preemption import EXIT_PREEMPTED, Preempted

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")


def _shipped_options(group: str) -> list[str]:
    from bigtrain.config.catalog import catalog

    return sorted(catalog().get(group, {}))


def describe_config_error(ex: BaseException) -> str | None:
    """A one-line description of a config mistake, or None if `ex` is not one."""
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
        SearchPathException,
    )
    from omegaconf.errors import OmegaConfBaseException

    from bigtrain.core.errors import ConfigError

    if isinstance(ex, ConfigError):
        return str(ex)
    if isinstance(ex, MissingConfigException):
        missing = ex.missing_cfg_file or ""
        if "/" in missing:
            group, option = missing.rsplit("/", 1)
            # Hydra lists the options for `group=x`, not for a list entry (`logger=[x]`)
            options = ex.options or _shipped_options(group)
            if options:
                return (f"{group}={option}: no such option. Available: {', '.join(options)} "
                        f"(see `bigtrain ls {group}`)")
        return _first_line(str(ex))
    if isinstance(ex, OverrideParseException):
        return f"cannot parse override {ex.override!r}: {_first_line(ex.message)}"
    if isinstance(ex, SearchPathException):
        return _first_line(str(ex))
    if isinstance(ex, ConfigCompositionException):
        head = _first_line(str(ex))
        sweep = _sweep_in_a_run(head) or _group_as_a_key(str(ex))
        if sweep:
            return sweep
        cause = ex.__cause__
        if isinstance(cause, OmegaConfBaseException):
            key = getattr(cause, "full_key", None)
            detail = _first_line(getattr(cause, "msg", str(cause)))
            parent = getattr(cause, "parent_node", None)
            if "not in" in detail and parent is not None and hasattr(parent, "keys"):
                append = re.search(r"To append to your config use (\S+)", str(ex))
                if not list(parent.keys()) and append:  # an open map, empty so far
                    return (f"{key}: a new entry of a map that has none yet: write "
                            f"{append.group(1)} (a leading + adds a key)")
                allowed = ", ".join(str(k) for k in parent.keys())
                return f"{key}: unknown key. Allowed keys: {allowed}"
            scalar = _scalar_for_a_list(head, cause)
            if scalar:
                return scalar
            override = _merged_override(head)
            where = f" (in {override})" if override else ""
            if key:
                return f"{key}: {detail}{where}"
            return f"{detail}{where}" if override else f"{head}: {detail}"
        return head
    if isinstance(ex, OmegaConfBaseException):
        key = getattr(ex, "full_key", None)
        msg = _first_line(getattr(ex, "msg", str(ex)))
        return f"{key}: {msg}" if key else msg
    return None


#: Hydra's words for a sweep given to a single run
_AMBIGUOUS = re.compile(r"^Ambiguous value for argument '(?P<arg>.*)'$")
_NEEDS_MULTIRUN = re.compile(r"^Sweep parameters '(?P<arg>.*)' requires --multirun$")


def _sweep_in_a_run(head: str) -> str | None:
    """`optim.lr=1e-3,1e-2` without -m: what a comma list means, and the other two ways."""
    m = _AMBIGUOUS.match(head)
    if m:
        arg = m.group("arg")
        key, _, value = arg.partition("=")
        return (f"{arg}: a comma list is a sweep; add -m to run one job per value "
                f"(bigtrain fit -m {arg}), or for one list value write {key}=[{value}] "
                f"(a string: {key}=\"'{value}'\")")
    m = _NEEDS_MULTIRUN.match(head)
    if m:
        arg = m.group("arg")
        return f"{arg}: a sweep runs one job per value; add -m (bigtrain fit -m {arg})"
    return None


#: Hydra's words for an override it could not merge onto the config
_MERGING = re.compile(r"^Error merging override (?P<override>.*)$")


def _merged_override(head: str) -> str | None:
    m = _MERGING.match(head)
    return m.group("override") if m else None


#: Hydra's words for an override of a key the config does not have, or has already
_OVERRIDE_OF_NO_KEY = re.compile(r"^To append to your config use \+(?P<override>\S+=.*)$",
                                 re.MULTILINE)
_APPEND_TO_A_KEY = re.compile(r"^Could not append to config\. An item is already at "
                              r"'(?P<key>[^']+)'")


def _group_as_a_key(text: str) -> str | None:
    """`optim.schedule=cosine` (or `+optim.schedule=cosine`) where optim/schedule is a config
    group: the `/` spelling that chooses an option of the group, and the options."""
    head = _first_line(text)
    override = _merged_override(head)
    if override is None:
        m = _OVERRIDE_OF_NO_KEY.search(text)
        override = m.group("override") if m else None
    if override is None:
        m = _APPEND_TO_A_KEY.match(head)
        override = f"+{m.group('key')}" if m else None
    if override is None:
        return None
    key, _, value = override.lstrip("+~").partition("=")
    group = key.replace(".", "/")
    if "." not in key or group.startswith("hydra/"):
        return None
    options = _shipped_options(group)
    if not options:
        return None
    choice = value if value in options else "<option>"
    return (f"{override}: {key} is a config group, not a key: write {group}={choice} "
            f"(options: {', '.join(options)}; see `bigtrain ls {group}`)")


def _scalar_for_a_list(head: str, cause: BaseException) -> str | None:
    """`model.hidden=64` where model.hidden is a list: the list spelling, `model.hidden=[64]`."""
    from omegaconf import ListConfig

    if not isinstance(getattr(cause, "child_node", None), ListConfig):
        return None
    key = getattr(cause, "full_key", None)
    value = getattr(cause, "value", None)
    if not key or value is None or isinstance(value, (list, tuple, ListConfig)):
        return None
    override = _merged_override(head)
    text = override.partition("=")[2] if override and "=" in override else str(value)
    return f"{key}={text}: {key} is a list: write {key}=[{text}]"


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
    """Run a command body, mapping exceptions to messages and exit statuses. With
    `BIGTRAIN_DEBUG=1` the traceback is printed too; the exit status stays the same."""
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except BrokenPipeError:  # the reader of our output has gone (`| head`): its choice
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        raise typer.Exit(0) from None
    except BaseException as ex:  # noqa: BLE001 - Preempted and KeyboardInterrupt included
        outcome = _outcome(ex)
        if outcome is None:
            raise
        status, message = outcome
        if debug_enabled():
            traceback.print_exception(ex)
        sys.stderr.write(message + "\n")
        raise typer.Exit(status) from None


def _outcome(ex: BaseException) -> tuple[int, str] | None:
    """The exit status and the line to print for `ex`; None for what is not ours to report."""
    if isinstance(ex, Preempted):
        if ex.by_user:  # Ctrl-C: the user's own choice, not an error
            return EXIT_PREEMPTED, f"bigtrain: {ex}"
        return EXIT_PREEMPTED, f"bigtrain: error: {ex} (exit status {EXIT_PREEMPTED}: " \
                               f"requeue, or {ex.hint})"
    if isinstance(ex, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "bigtrain: error: interrupted"
    if isinstance(ex, RunFailed):
        return EXIT_FAILED, f"bigtrain: error: {ex} (details: {ex.run_dir})"
    if not isinstance(ex, Exception):
        return None
    msg = describe_config_error(ex)
    if msg is None and isinstance(ex, ValueError) and ("--resolve" in str(ex)
                                                       or "Only one of" in str(ex)):
        msg = str(ex)
    if msg is not None:
        return EXIT_USAGE, f"bigtrain: error: {msg}"
    os_error = _os_error(ex)
    if os_error is not None:  # a disk or permission problem behind the error
        text = f"{ex}: {os_error.strerror}: {os_error.filename or ''}".rstrip(": ")
        return EXIT_FAILED, f"bigtrain: error: {text}"
    hint = "" if debug_enabled() else " (set BIGTRAIN_DEBUG=1 for the traceback)"
    return EXIT_FAILED, f"bigtrain: error: {type(ex).__name__}: {ex}{hint}"
