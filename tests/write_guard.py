"""Where the test suite writes: under one temporary root, and the check that it wrote nowhere
else (docs/contributing.md, "Where the tests write").

tests/conftest.py calls `redirect()` as pytest imports it, before any test imports bigtrain,
Keras, matplotlib or W&B: HOME, the XDG base directories, TMPDIR and the directories that the
code and its libraries keep caches and settings in (`ENV_DIRS`) then point into a new session
directory under `$TMPDIR/bigtrain-tests-<uid>`, the tests' root, and pytest-xdist's workers and
every command a test starts inherit them. pytest's own temporary directories (tmp_path) follow
TMPDIR there. The XLA compilation cache the tests' commands share (BIGTRAIN_XLA_CACHE) is the
root's `xla/`, kept from one session to the next; a session directory is kept until three newer
ones exist (as pytest keeps its own), then removed by a later session once its pytest has ended.

`WriteGuard` (registered by conftest in the pytest process that made the session, not in
its xdist workers nor in a pytest that a test starts) snapshots the places outside
the root that the suite must leave alone (`watched_places`: the real home's caches, configs and
top-level names, and the checkout) when the session starts, and fails the session, naming the
paths, where they differ at its end. In the checkout, build outputs (`BUILD_OUTPUTS`) do not
count, nor do source files edited, added or removed in a folder that was already there: that is
what a person does while the suite runs, and the suite writes no source files.
"""

from __future__ import annotations

import os
import shutil
import site
import tempfile
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import pytest

#: the session directory of this pytest run (set by redirect; xdist's workers inherit it)
SESSION_ENV = "BIGTRAIN_TEST_SESSION"

#: variables that say where a program keeps its files, as paths under the session's home
ENV_DIRS = {
    "HOME": ".",
    "XDG_CACHE_HOME": ".cache",  # bigtrain's CPU peak and XLA caches, matplotlib's, W&B's
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
    "KERAS_HOME": ".keras",  # keras.json (written at import), downloaded weights
    "MPLCONFIGDIR": ".config/matplotlib",
    "WANDB_CONFIG_DIR": ".config/wandb",
    "WANDB_CACHE_DIR": ".cache/wandb",
    "WANDB_DATA_DIR": ".local/share/wandb",
    "HF_HOME": ".cache/huggingface",
    "KAGGLEHUB_CACHE": ".cache/kagglehub",  # KerasHub's downloaded presets
    "CUDA_CACHE_PATH": ".nv/ComputeCache",
}
#: variables that send a run's files elsewhere than its run directory: a developer's own
#: settings, not the tests'
UNSET_ENV = ("WANDB_DIR", "MLFLOW_TRACKING_URI")

#: names under the checkout that tools write while the suite runs (never counted)
BUILD_OUTPUTS = frozenset({".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache",
                           ".hypothesis", ".import_linter_cache", ".grimp_cache", ".benchmarks",
                           ".venv", "htmlcov"})
#: what a person edits in the checkout (see the module's docstring)
SOURCE_SUFFIXES = frozenset({".py", ".pyi", ".md", ".yaml", ".yml", ".toml", ".cfg", ".ini",
                             ".txt", ".json", ".sh", ".css", ".js", ".html", ".svg"})
#: how many of the newest sessions are kept (one whose pytest still runs is never removed)
KEEP_SESSIONS = 3


def _skipped(name: str) -> bool:
    """A build output or an editor's scratch file."""
    return (name in BUILD_OUTPUTS or name.endswith((".egg-info", "~", ".swp", ".swo", ".swx"))
            or name.startswith((".coverage", ".#")))


def inside_a_session(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process was started inside a session, and inherited its environment: an
    xdist worker, or a pytest that a test started (scripts/device_check.sh)."""
    return bool(environ.get(SESSION_ENV)) and os.path.isdir(environ[SESSION_ENV])


def redirect(environ: MutableMapping[str, str] = os.environ) -> Path:
    """Point HOME, the XDG directories, TMPDIR and ENV_DIRS into a new session directory under
    the tests' root (see the module's docstring) and return it. Inside a session, they are
    kept."""
    if inside_a_session(environ):
        return Path(environ[SESSION_ENV])
    root = Path(tempfile.gettempdir()) / f"bigtrain-tests-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    _prune(root)
    session = Path(tempfile.mkdtemp(prefix=f"session-{os.getpid()}-", dir=root))
    home = session / "home"
    # packages installed with `pip install --user` stay importable with HOME moved
    environ.setdefault("PYTHONUSERBASE", site.getuserbase())
    for var, where in ENV_DIRS.items():
        environ[var] = os.path.normpath(home / where)
    for var in UNSET_ENV:
        environ.pop(var, None)
    for var in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        Path(environ[var]).mkdir(parents=True, exist_ok=True)
    (session / "tmp").mkdir()
    environ["TMPDIR"] = str(session / "tmp")
    # the tests' commands share one XLA compilation cache (bigtrain.core.xla_cache, off for
    # users unless asked for), kept across sessions: the same islands compile once per
    # machine, not once per command
    environ.setdefault("BIGTRAIN_XLA_CACHE", str(root / "xla"))
    environ[SESSION_ENV] = str(session)
    if environ is os.environ:
        tempfile.tempdir = None  # read TMPDIR again (pytest's capture has read it already)
    return session


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune(root: Path, keep: int = KEEP_SESSIONS) -> None:
    """Remove the sessions past the `keep` newest whose pytest has ended."""
    sessions = []
    for path in root.glob("session-*"):
        try:
            sessions.append((path.stat().st_mtime, path))
        except OSError:
            continue
    for _, path in sorted(sessions, reverse=True)[keep:]:
        pid = path.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Place:
    """A folder the suite must leave alone: everything under it (`deep`), else only the
    names directly in it (hidden files left out without `hidden_files`). With `edits_allowed`,
    source files a person edits do not count (the checkout)."""

    path: Path
    deep: bool = True
    hidden_files: bool = True
    edits_allowed: bool = False


#: path -> ("dir",) for a folder, ("entry",) for a name in a shallow place, or (size,
#: mtime_ns, is a source file a person may edit) for a file or link
Snapshot = dict[str, tuple]


def snapshot(places: Iterable[Place], skip: Iterable[Path] = ()) -> Snapshot:
    """What is in `places` now, the folders in `skip` left out (what does not exist is left
    out too)."""
    out: Snapshot = {}
    skipped = {str(p) for p in skip}
    for place in places:
        if place.deep:
            if place.path.is_dir():
                out[str(place.path)] = ("dir",)
                _walk(place, str(place.path), out, skipped)
        else:
            _list(place, out)
    return out


def _walk(place: Place, top: str, out: Snapshot, skipped: set[str]) -> None:
    try:
        entries = list(os.scandir(top))
    except OSError:
        return
    for entry in entries:
        if _skipped(entry.name) or entry.path in skipped:
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                out[entry.path] = ("dir",)
                _walk(place, entry.path, out, skipped)
            else:
                st = entry.stat(follow_symlinks=False)
                out[entry.path] = (st.st_size, st.st_mtime_ns, place.edits_allowed
                                   and os.path.splitext(entry.name)[1] in SOURCE_SUFFIXES)
        except OSError:
            continue


def _list(place: Place, out: Snapshot) -> None:
    try:
        entries = list(os.scandir(place.path))
    except OSError:
        return
    for entry in entries:
        try:
            hidden_file = entry.name.startswith(".") and not entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if place.hidden_files or not hidden_file:
            out[entry.path] = ("entry",)


def compare(before: Snapshot, after: Snapshot) -> list[str]:
    """`new: PATH`, `changed: PATH` and `removed: PATH` for each path that differs, a person's
    edit in the checkout left out (see the module's docstring)."""
    lines = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old is not None and new is not None and old[:2] == new[:2]:
            continue
        editable = any(v is not None and len(v) == 3 and v[2] for v in (old, new))
        if editable and before.get(os.path.dirname(path)) == ("dir",):
            continue
        what = "new" if old is None else "removed" if new is None else "changed"
        lines.append(f"{what}: {path}")
    return lines


def watched_places(environ: Mapping[str, str], checkout: Path) -> list[Place]:
    """The places outside the tests' root that the suite must leave alone, found from the
    environment pytest started with (`environ`, before redirect): the top-level names of the
    home, its cache, config and data folders, everything under the folders that bigtrain and
    its libraries keep files in, and the checkout."""
    home = Path(environ.get("HOME") or os.path.expanduser("~"))

    def where(var: str) -> Path:
        return Path(environ.get(var) or home / ENV_DIRS[var])

    cache, config = where("XDG_CACHE_HOME"), where("XDG_CONFIG_HOME")
    data = where("XDG_DATA_HOME")
    deep = [where(var) for var in ("KERAS_HOME", "MPLCONFIGDIR", "WANDB_CONFIG_DIR",
                                   "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "HF_HOME",
                                   "KAGGLEHUB_CACHE")]
    deep += [cache / "bigtrain", cache / "matplotlib", config / "matplotlib", cache / "wandb",
             config / "wandb", data / "wandb", cache / "kagglehub", cache / "huggingface",
             config / "mlflow", home / ".mlflow", home / "tensorflow_datasets"]
    return [Place(home, deep=False, hidden_files=False),
            *(Place(p, deep=False) for p in (cache, config, data, where("XDG_STATE_HOME"))),
            *(Place(p) for p in dict.fromkeys(deep)),
            Place(checkout, edits_allowed=True)]


class WriteGuard:
    """A pytest plugin: the session fails where `places` differ at its end from their
    snapshot when the plugin was made (see the module's docstring)."""

    def __init__(self, places: list[Place], root: Path):
        self.places, self.root = places, root
        self.before = snapshot(places, skip=[root])
        self.written: list[str] = []

    @pytest.hookimpl(trylast=True)  # after xdist has stopped its workers
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.written = compare(self.before, snapshot(self.places, skip=[self.root]))
        if self.written:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.written:
            return
        tr = terminalreporter
        tr.section("written outside the tests' temporary root", sep="=", red=True, bold=True)
        for line in self.written[:40]:
            tr.line(line)
        if len(self.written) > 40:
            tr.line(f"... and {len(self.written) - 40} more")
        tr.line(f"The tests and the commands they start write only under {self.root} "
                "(HOME, XDG_*, TMPDIR and tmp_path point there): use tmp_path, a run "
                "directory under it, or cwd=tmp_path; see docs/contributing.md, "
                "\"Where the tests write\".", red=True)
