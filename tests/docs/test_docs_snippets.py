"""The shell blocks the docs mark with `<!-- test: run -->` (on a line before the block) are
run, one test per command, and must exit as the docs say: with the status of the last
`exit N` in the line's comment, else 0. Only `bigtrain` commands are run, each in an empty
directory; mark only commands that take seconds and never import TensorFlow (`ls`, `show`,
`validate`, `--help`, a `fit` that is refused)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from docs_support import ROOT, blocks, commands, markdown_files, rel


def _marked() -> list[tuple[str, str, int]]:
    """(where, command, expected exit status) of every command in a marked block; a command
    documented in several places is run once (the places must agree on its status)."""
    found: dict[str, tuple[list[str], set[int]]] = {}
    for path in markdown_files():
        for block in blocks(path):
            if not block.marked:
                continue
            for command, comment in commands(block.body):
                statuses = re.findall(r"\bexit (\d+)\b", comment)
                places, expected = found.setdefault(" ".join(shlex.split(command)),
                                                    ([], set()))
                places.append(f"{rel(path)}:{block.line}")
                expected.add(int(statuses[-1]) if statuses else 0)
    out = []
    for command, (places, expected) in found.items():
        assert len(expected) == 1, f"{command!r}: the docs give several exit statuses " \
            f"({sorted(expected)}) in {places}"
        out.append((", ".join(places), command, expected.pop()))
    return out


MARKED = _marked()


def _bigtrain() -> list[str]:
    """The installed console script (beside this interpreter), else the module."""
    script = Path(sys.executable).with_name("bigtrain")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "bigtrain.cli.main"]


def test_the_docs_mark_commands_to_run():
    assert len(MARKED) >= 10, MARKED
    assert any(status == 2 for _, _, status in MARKED), "no refused command is checked"
    assert any(rel(ROOT / "README.md") in where for where, _, _ in MARKED), \
        "the README's quick tour has no checked command"


@pytest.mark.parametrize("where, command, status", MARKED,
                         ids=[c for _, c, _ in MARKED])
def test_a_documented_command_exits_as_the_docs_say(where, command, status, tmp_path):
    words = shlex.split(command)
    assert words[0] == "bigtrain", f"{where}: only bigtrain commands are run, not {command!r}"
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    proc = subprocess.run([*_bigtrain(), *words[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == status, (
        f"{where}: `{command}` exited {proc.returncode}, the docs say {status}\n"
        f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "outputs").exists(), f"{where}: `{command}` left a run dir"
