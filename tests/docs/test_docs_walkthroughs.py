"""The walkthroughs of the docs (blocks marked `<!-- test: walkthrough NAME -->`) run as a new
user runs them: every block of one walkthrough, in page order, as one bash script with `set -e`
in one empty directory, with the installed `bigtrain` and this Python on PATH. A walkthrough
that fails at any command fails here, with its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from docs_support import blocks, markdown_files, rel


def _walkthroughs() -> dict[str, list]:
    found: dict[str, list] = {}
    for path in markdown_files():
        for block in blocks(path):
            if block.walkthrough:
                assert block.lang in ("bash", "sh"), f"{rel(path)}:{block.line}: not a shell block"
                found.setdefault(f"{rel(path)}#{block.walkthrough}", []).append(block)
    return found


WALKS = _walkthroughs()


def test_the_own_data_tutorial_walks_a_table_images_and_text_to_the_end():
    names = {k.split("#")[1] for k in WALKS if k.startswith("docs/tutorials/your-own-data.md")}
    assert names == {"csv", "images", "text"}
    for key in WALKS:
        script = "\n".join(b.body for b in WALKS[key])
        for step in ("bigtrain fit", "bigtrain eval", "bigtrain export", "saved_model.load"
                     if "#text" not in key else "bigtrain generate"):
            assert step in script, f"{key} has no {step!r}"


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(WALKS))
def test_a_walkthrough_runs_from_top_to_bottom(key, tmp_path):
    script = "set -euo pipefail\n" + "\n".join(b.body for b in WALKS[key])
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
           "COLUMNS": "120", "NO_COLOR": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, (f"{key} failed (exit {proc.returncode})\nstdout:\n"
                                  f"{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-4000:]}")
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
