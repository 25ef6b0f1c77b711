"""Issue #18, the first screen: no TensorFlow start-up chatter on the console (it goes to the
run's log file), the run dir named at the start and in the closing line, the closing line on
one line of a 160-column terminal and the last thing there, sweep and table paths named."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from helpers import CLI, TF_NOISE, run_cli

#: what TensorFlow's C++ start-up writes to fd 2 (absl, oneDNN, cudart, cuInit)
CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


def screen(raw: str, width: int) -> list[str]:
    """What a terminal shows after `raw`: a small VT100 subset (CR, LF, cursor up, erase
    line, colors ignored), wrapping at `width`; enough for rich's live progress and logs."""
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(raw):
        ch = raw[i]
        m = CSI.match(raw, i)
        if m:
            arg, op = m.groups()
            n = int(arg) if arg.isdigit() else 1
            if op == "A":
                row = max(0, row - n)
            elif op == "K":
                lines[row] = lines[row][:col] if arg in ("", "0") else []
            i = m.end()
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
        elif ch >= " ":
            if col >= width:
                row, col = row + 1, 0
            while len(lines) <= row:
                lines.append([])
            cells = lines[row]
            cells.extend(" " * (col + 1 - len(cells)))
            cells[col] = ch
            col += 1
        while len(lines) <= row:
            lines.append([])
        i += 1
    return ["".join(c).rstrip() for c in lines]


def run_in_terminal(args: list[str], cwd: Path, width: int = 160,
                    timeout: float = 300) -> tuple[int, str]:
    """`bigtrain ARGS` with stdout and stderr on a pseudo-terminal `width` columns wide."""
    import pty

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, width, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("BIGTRAIN_DEBUG", "COLUMNS",
                                                              "LINES", "FORCE_COLOR")}
    env["TERM"] = "xterm"
    proc = subprocess.Popen([*CLI, *args], cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                            env=env)
    os.close(slave)
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(master)
    return proc.wait(timeout=30), out.decode("utf-8", errors="replace")


@pytest.mark.slow
def test_fit_on_a_terminal_shows_bigtrain_only_and_ends_with_the_result(tmp_path):
    rc, raw = run_in_terminal(["fit", "debug=smoke", "hydra.run.dir=runs/first"], tmp_path)
    assert rc == 0, raw
    shown = [ln for ln in screen(raw, 160) if ln.strip()]
    text = "\n".join(shown)
    # no TensorFlow start-up chatter on the console ...
    assert not TF_NOISE.search(text), text
    # ... it is in the run's log file
    log = (tmp_path / "runs" / "first" / "fit.log").read_text()
    assert "tensorflow start-up" in log and "absl::InitializeLog" in log
    # the run dir is named before anything else happens, and in the closing line
    assert "run dir: runs/first" in shown[0], shown[:3]
    # the closing line is the last thing on screen, on one line, with the result and the dir
    last = shown[-1]
    assert "done: 6 steps," in last and last.endswith("; runs/first"), shown[-4:]
    assert "val loss" in last and "test loss" in last and "accuracy" in last
    assert sum("done:" in ln for ln in shown) == 1
    # the finished progress bar stays, above the closing line
    assert any("step 6/6" in ln for ln in shown[:-1])


def test_commands_that_load_tensorflow_are_quiet_unless_debug(tmp_path):
    quiet = run_cli("env", cwd=tmp_path, fresh=True)  # TensorFlow imported in this process
    assert quiet.returncode == 0, quiet.stderr
    assert not TF_NOISE.search(quiet.stderr), quiet.stderr
    loud = run_cli("env", cwd=tmp_path, env={"BIGTRAIN_DEBUG": "1"})
    assert loud.returncode == 0, loud.stderr
    assert "absl::InitializeLog" in loud.stderr  # BIGTRAIN_DEBUG=1: TensorFlow's own output


EXPECTED_GPU = """
import logging, sys
import bigtrain.core.tensorflow_start as start
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
start.nvidia_driver = lambda: True   # as on a GPU machine whose GPU TensorFlow cannot use
start.import_tensorflow()
import tensorflow as tf
print("GPUS", len(tf.config.list_physical_devices("GPU")))
"""


def test_a_gpu_that_was_expected_and_not_found_is_said_in_bigtrains_words(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("BIGTRAIN_DEBUG",
                                                              "CUDA_VISIBLE_DEVICES")}
    proc = subprocess.run([sys.executable, "-c", EXPECTED_GPU], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    if "GPUS 0" not in proc.stdout:
        pytest.skip("this machine has a GPU that TensorFlow uses")
    assert "WARNING this machine has an NVIDIA driver but TensorFlow found no GPU" in \
        proc.stdout, proc.stdout
    assert not TF_NOISE.search(proc.stderr), proc.stderr


def test_closing_line_fits_one_line_of_a_160_column_terminal():
    from bigtrain.core.console import closing_line

    final = {"loss": 0.5, "accuracy": 0.9, "val_loss": 2.289612, "val_accuracy": 0.105555,
             "val_top5_accuracy": 0.688888, "val_auc": 0.912345, "val_perplexity": 9.87,
             "test_loss": 2.307312, "test_accuracy": 0.111111, "test_top5_accuracy": 0.594444,
             "test_auc": 0.9, "test_perplexity": 10.04}
    line = closing_line(12345, 1234.56, final, "outputs/2026-12-01/21-06-39", "val_auc")
    assert line == ("done: 12345 steps, 1234.6s; val loss 2.29 accuracy 0.1056 auc 0.9123; "
                    "test loss 2.307 accuracy 0.1111 auc 0.9; outputs/2026-12-01/21-06-39")
    assert len(line) + len("[21:06:56] INFO     ") <= 160


@pytest.mark.slow
def test_sweep_names_its_dir_and_its_table(cli, tmp_path):
    proc = cli("fit", "-m", "trainer.seed=0,1", "debug=smoke", "trainer.max_steps=2",
               "trainer.progress=none", "hydra.sweep.dir=sweeps/s1", fresh=True)
    assert proc.returncode == 0, proc.stderr
    out, err = proc.stdout, proc.stderr  # Hydra's launcher lines are on stdout
    assert out.index("sweep dir: sweeps/s1") < out.index("Launching 2 jobs")
    assert err.index("run dir: sweeps/s1/0") < err.index("run dir: sweeps/s1/1")
    tail = err[err.rindex("sweep: 2 jobs"):]  # the table, then where it is written
    assert "table: sweeps/s1/sweep_summary.csv" in tail
    assert (tmp_path / "sweeps" / "s1" / "sweep_summary.csv").exists()
    assert not TF_NOISE.search(out + err), out + err
