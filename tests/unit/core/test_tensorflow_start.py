"""bigtrain.core.tensorflow_start: TensorFlow's native start-up lines stay off the console
when the import is interrupted (Ctrl-C), and are shown when the import fails."""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT, command_env

#: a stand-in for TensorFlow that writes native lines to fd 2 as TensorFlow's C++ does, then
#: is interrupted (Ctrl-C) or fails
FAKE_TF = """
import os
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written "
            b"to STDERR\\nI0000 00:00:1 port.cc:153] oneDNN custom operations are on.\\n")
if os.environ["FAKE_TF"] == "interrupt":
    raise KeyboardInterrupt
raise ImportError("libcudart.so: cannot open shared object file")
"""

IMPORT = """
import sys
from bigtrain.core.tensorflow_start import import_tensorflow
try:
    import_tensorflow()
except BaseException as ex:
    print(type(ex).__name__)
"""


def _import_with(tmp_path, behaviour: str) -> subprocess.CompletedProcess:
    (tmp_path / "tensorflow").mkdir(exist_ok=True)
    (tmp_path / "tensorflow" / "__init__.py").write_text(FAKE_TF)
    env = command_env({"FAKE_TF": behaviour, "PYTHONPATH": f"{tmp_path}:{ROOT}"})
    return subprocess.run([sys.executable, "-c", IMPORT], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=60)


def test_ctrl_c_while_tensorflow_loads_keeps_its_native_lines_off_the_console(tmp_path):
    proc = _import_with(tmp_path, "interrupt")
    assert proc.stdout.strip() == "KeyboardInterrupt", proc.stderr
    assert "absl::InitializeLog" not in proc.stderr and "oneDNN" not in proc.stderr, proc.stderr


def test_an_import_that_fails_shows_what_tensorflow_said(tmp_path):
    proc = _import_with(tmp_path, "fail")
    assert proc.stdout.strip() == "ImportError", proc.stderr
    assert "absl::InitializeLog" in proc.stderr and "oneDNN" in proc.stderr, proc.stderr
