"""Helpers the tests import (`from helpers import ...`); fixtures live in conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "bigtrain.cli.main"]


def run_cli(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None,
            ) -> subprocess.CompletedProcess:
    """Run `bigtrain ARGS` in a fresh process, as a user would (stdout is not a terminal)."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("BIGTRAIN_DEBUG", "HYDRA_FULL_ERROR")}
    full_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    return subprocess.run([*CLI, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def checkpoint_tensors(prefix) -> dict[str, bytes]:
    """Every saved tensor of a checkpoint as bytes, bookkeeping (save counter, loop state)
    left out: two runs that end bitwise equal have equal dicts."""
    import numpy as np
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    out = {}
    for name in reader.get_variable_to_shape_map():
        if name.startswith(("save_counter", "loop_state")):
            continue
        value = reader.get_tensor(name)
        out[name] = value if isinstance(value, bytes) else np.asarray(value).tobytes()
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
