"""Kills at random points (seeded), with augmentation on: the resumed run ends bitwise equal
to the uninterrupted one, and no more than `trainer.checkpoint_every` steps are trained again."""

from __future__ import annotations

import csv
import random
import re
import signal

import pytest
from helpers import checkpoint_tensors, read_json, read_jsonl, run_cli

pytestmark = pytest.mark.slow

EVERY = 5
ARGS = ["debug=smoke", "trainer.deterministic=true", "trainer.max_steps=20",
        f"trainer.checkpoint_every={EVERY}", "trainer.eval_every=4", "trainer.log_every=1",
        "trainer.progress=none", "model.dropout=0.2", "dataset.augment.crop=1",
        "dataset.augment.mixup=0.2", "logger=[csv]"]


def fault_for(seed: int) -> str:
    rng = random.Random(seed)
    kind = rng.choice(["step", "step", "eval", "checkpoint"])
    if kind == "step":
        return f"step={rng.randint(2, 19)}"
    if kind == "eval":
        return f"eval={rng.randint(1, 4)}"
    return f"checkpoint={EVERY * rng.randint(1, 3)}"


@pytest.mark.parametrize("seed", [0, 3, 4, 5])  # checkpoint=10, step=19, step=11, eval=3
def test_random_sigkill_loses_nothing(reference_run, tmp_path, seed):
    reference = reference_run(ARGS)  # the uninterrupted run (conftest.py)
    fault = fault_for(seed)
    killed = run_cli("fit", *ARGS, "hydra.run.dir=run", cwd=tmp_path,
                     env={"BIGTRAIN_FAULTS": f"sigkill@{fault}"})
    assert killed.returncode == -signal.SIGKILL, (fault, killed.stderr[-1500:])
    trained = [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    reached = max(trained, default=0)  # the last step logged before the kill
    assert reached >= 1, fault
    resumed = run_cli("fit", *ARGS, "hydra.run.dir=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    m = re.search(r"resumed from .* at step (\d+)", resumed.stderr)
    start = int(m.group(1)) if m else 0
    assert reached - start <= EVERY, (fault, reached, start)  # lost work bounded
    assert read_json(tmp_path / "run" / "summary.json")["steps"] == 20
    got = checkpoint_tensors(tmp_path / "run" / "checkpoints" / "ckpt-20")
    differ = [k for k in got if got[k] != reference.get(k)]
    assert got.keys() == reference.keys() and not differ, (fault, differ[:3])
    # the csv logger holds each step once after the resume
    with open(tmp_path / "run" / "metrics_train.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, 21))
