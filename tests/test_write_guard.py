"""The suite writes only under its temporary root (write_guard.py): the session's environment
points there, and the guard that fails a session finds what was written elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import write_guard
from write_guard import SESSION_ENV, Place, compare, snapshot

TESTS = Path(__file__).resolve().parent


def _write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_new_changed_or_removed_file_under_a_watched_folder_is_reported(tmp_path):
    cache = tmp_path / "cache"
    kept, changed, removed = (_write(cache / n) for n in ("kept", "changed", "removed"))
    places = [Place(cache)]
    before = snapshot(places)
    assert compare(before, snapshot(places)) == []
    _write(cache / "bigtrain" / "peak_flops.json", "{}")
    changed.write_text("longer")
    removed.unlink()
    assert compare(before, snapshot(places)) == [
        f"new: {cache / 'bigtrain'}", f"new: {cache / 'bigtrain' / 'peak_flops.json'}",
        f"changed: {changed}", f"removed: {removed}"]
    assert kept.exists()


def test_a_rewrite_of_the_same_size_is_reported(tmp_path):
    path = _write(tmp_path / "w" / "peak_flops.json", "{1}")
    before = snapshot([Place(tmp_path / "w")])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert compare(before, snapshot([Place(tmp_path / "w")])) == [f"changed: {path}"]


def test_a_watched_folder_made_during_the_session_is_reported(tmp_path):
    places = [Place(tmp_path / "keras")]
    before = snapshot(places)
    _write(tmp_path / "keras" / "keras.json")
    assert compare(before, snapshot(places)) == [f"new: {tmp_path / 'keras'}",
                                                 f"new: {tmp_path / 'keras' / 'keras.json'}"]


def test_a_shallow_place_reports_new_names_and_not_hidden_files_if_asked(tmp_path):
    home = tmp_path / "home"
    _write(home / "notes" / "a.txt")
    places = [Place(home, deep=False, hidden_files=False)]
    before = snapshot(places)
    _write(home / "notes" / "b.txt")  # inside a name that was there: not looked at
    _write(home / ".bash_history")  # a shell's, not the suite's
    _write(home / "mlruns" / "0" / "meta.yaml")
    _write(home / ".keras" / "keras.json")
    assert compare(before, snapshot(places)) == [f"new: {home / '.keras'}",
                                                 f"new: {home / 'mlruns'}"]


def test_in_the_checkout_build_outputs_and_a_persons_edits_do_not_count(tmp_path):
    repo = tmp_path / "repo"
    module = _write(repo / "bigtrain" / "core" / "x.py")
    places = [Place(repo, edits_allowed=True)]
    before = snapshot(places)
    for output in (".pytest_cache/v/cache/lastfailed", "bigtrain/core/__pycache__/x.pyc",
                   ".ruff_cache/0.1/a", ".hypothesis/examples/a", "bigtrain.egg-info/PKG-INFO",
                   ".import_linter_cache/a", ".grimp_cache/a", "bigtrain/core/.x.py.swp"):
        _write(repo / output)
    module.write_text("edited by a person")
    _write(repo / "bigtrain" / "core" / "new_module.py")
    _write(repo / "docs" / "new-page.md")  # a new source file in a new folder does count
    _write(repo / "outputs" / "2026-01-01" / "run" / "summary.json")
    _write(repo / "bigtrain" / "core" / "model.keras")
    _write(repo / "mlruns" / "0" / "meta.yaml")
    assert compare(before, snapshot(places)) == [
        f"new: {repo / 'bigtrain' / 'core' / 'model.keras'}",
        f"new: {repo / 'docs'}", f"new: {repo / 'docs' / 'new-page.md'}",
        f"new: {repo / 'mlruns'}", f"new: {repo / 'mlruns' / '0'}",
        f"new: {repo / 'mlruns' / '0' / 'meta.yaml'}",
        f"new: {repo / 'outputs'}", f"new: {repo / 'outputs' / '2026-01-01'}",
        f"new: {repo / 'outputs' / '2026-01-01' / 'run'}",
        f"new: {repo / 'outputs' / '2026-01-01' / 'run' / 'summary.json'}"]


def test_the_tests_root_inside_a_watched_folder_is_left_out(tmp_path):
    root = tmp_path / "cache" / "bigtrain-tests"  # TMPDIR=~/.cache/tmp, say
    root.mkdir(parents=True)  # made before the guard's first snapshot
    places = [Place(tmp_path / "cache")]
    before = snapshot(places, skip=[root])
    _write(root / "session" / "home" / ".keras" / "keras.json")
    assert compare(before, snapshot(places, skip=[root])) == []


def test_watched_places_follow_the_starting_environment(tmp_path):
    env = {"HOME": str(tmp_path / "me"), "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
           "KERAS_HOME": str(tmp_path / "keras")}
    places = {p.path: p for p in write_guard.watched_places(env, tmp_path / "repo")}
    assert not places[tmp_path / "me"].deep and not places[tmp_path / "me"].hidden_files
    assert not places[tmp_path / "xdg-cache"].deep
    for deep in ("xdg-cache/bigtrain", "xdg-cache/matplotlib", "keras", "me/.config/wandb"):
        assert places[tmp_path / deep].deep, deep
    assert places[tmp_path / "repo"].edits_allowed


def test_redirect_points_every_place_into_a_new_session(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    env = {"HOME": "/home/me", "WANDB_DIR": "/home/me/wandb", "XDG_CACHE_HOME": "/data/cache"}
    session = write_guard.redirect(env)
    assert session.parent == tmp_path / f"bigtrain-tests-{os.getuid()}"
    assert env[SESSION_ENV] == str(session) and env["TMPDIR"] == str(session / "tmp")
    for var in write_guard.ENV_DIRS:
        assert Path(env[var]).is_relative_to(session / "home"), var
    assert Path(env["HOME"]).is_dir() and Path(env["TMPDIR"]).is_dir()
    assert env["BIGTRAIN_XLA_CACHE"] == str(session.parent / "xla")  # kept across sessions
    assert not set(write_guard.UNSET_ENV) & env.keys()
    assert env["PYTHONUSERBASE"]  # `pip install --user` packages stay importable
    # what a session starts (xdist's workers, a pytest that a test starts) keeps its session
    assert write_guard.inside_a_session(env) and write_guard.redirect(dict(env)) == session
    stale = {**env, write_guard.SESSION_ENV: str(tmp_path / "gone")}
    assert not write_guard.inside_a_session(stale)
    assert write_guard.redirect(stale) not in (session, tmp_path / "gone")


def test_this_session_and_what_it_starts_write_under_the_root():
    """Where the product code keeps its caches (the CPU peak's, the XLA cache) is under the
    tests' root, in this process (an xdist worker or not) and in a process it starts."""
    from bigtrain.core import xla_cache
    from bigtrain.strategy import peaks

    session = Path(os.environ[SESSION_ENV])
    assert peaks.cache_path().is_relative_to(session)
    assert xla_cache.default_base().is_relative_to(session.parent)
    code = ("import os, tempfile; from bigtrain.strategy import peaks; "
            "print(os.path.expanduser('~'), peaks.cache_path(), tempfile.gettempdir(), "
            "os.environ['KERAS_HOME'], os.environ['MPLCONFIGDIR'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for path in proc.stdout.split():
        assert Path(path).is_relative_to(session), path


@pytest.mark.parametrize("where, fails", [("outside", True), ("inside", False)])
def test_a_session_that_writes_outside_the_root_fails(tmp_path, where, fails):
    """The guard as a pytest plugin: a session whose test passes but writes into a watched
    folder fails and names the file; one that writes under tmp_path passes."""
    project, watched = tmp_path / "project", tmp_path / "home-cache"
    _write(project / "pytest.ini", "[pytest]\n")
    _write(project / "conftest.py", textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        import write_guard

        def pytest_configure(config):
            places = [write_guard.Place(Path({str(watched)!r}))]
            config.pluginmanager.register(
                write_guard.WriteGuard(places, Path({str(tmp_path / 'root')!r})), "guard")
        """))
    _write(project / "test_it.py", textwrap.dedent(f"""
        from pathlib import Path

        def test_outside():
            Path({str(watched)!r}).mkdir()
            (Path({str(watched)!r}) / "peak_flops.json").write_text("{{}}")

        def test_inside(tmp_path):
            (tmp_path / "peak_flops.json").write_text("{{}}")
        """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p",
                           "no:cacheprovider", "-k", where, "test_it.py"], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert "1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == (1 if fails else 0), proc.stdout
    assert ("written outside the tests' temporary root" in proc.stdout) == fails
    assert (f"new: {watched / 'peak_flops.json'}" in proc.stdout) == fails


def test_the_guard_is_registered_in_the_main_process_only(pytestconfig):
    """The main process watches; an xdist worker (whose writes it sees) does not."""
    guard = pytestconfig.pluginmanager.get_plugin("write_guard")
    if hasattr(pytestconfig, "workerinput"):
        assert guard is None
    else:
        assert isinstance(guard, write_guard.WriteGuard) and guard.before
