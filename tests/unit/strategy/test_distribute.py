"""MirroredStrategy over 2 logical CPU devices gives the losses of one device (fresh processes:
the CPU split must come before any TensorFlow op)."""

from __future__ import annotations

import pytest
from helpers import read_jsonl

pytestmark = pytest.mark.slow

BASE = ["debug=smoke", "model=mlp", "model.dropout=0", "trainer.deterministic=true",
        "trainer.max_steps=6", "trainer.log_every=1", "trainer.progress=none",
        "strategy.precision=fp32"]  # the distributed maths, compared at fp32 precision


def losses(run_dir) -> list[float]:
    return [r["loss"] for r in read_jsonl(run_dir / "metrics.jsonl") if "accuracy" in r
            and "val_accuracy" not in r]


@pytest.mark.parametrize("extra", [[], ["trainer.clip_norm=0.05", "trainer.grad_accum=2"]],
                         ids=["plain", "clipped+accumulated"])
def test_mirrored_over_two_logical_cpus_matches_one_device(cli, tmp_path, extra):
    one = cli("fit", *BASE, *extra, "hydra.run.dir=one")
    two = cli("fit", *BASE, *extra, "strategy=mirrored", "strategy.logical_cpus=2",
              "hydra.run.dir=two")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "MirroredStrategy over 2 replica(s)" in two.stderr
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5, (a, b)


def test_batch_not_divisible_by_replicas_is_refused(cli):
    proc = cli("fit", *BASE, "trainer.batch_size=31", "strategy=mirrored",
               "strategy.logical_cpus=2", "hydra.run.dir=run")
    assert proc.returncode == 2
    assert "trainer.batch_size: 31 is not divisible by the 2 replicas" in proc.stderr


def test_mirrored_without_gpus_needs_logical_cpus(cli):
    proc = cli("fit", *BASE, "strategy=mirrored", "hydra.run.dir=run")
    assert proc.returncode == 2 and "strategy.logical_cpus" in proc.stderr


def test_linear_lr_scaling_is_explicit(cli, tmp_path):
    r = cli("fit", *BASE, "strategy=mirrored", "strategy.logical_cpus=2", "optim=sgd",
            "optim.lr=0.01", "optim.lr_scaling=linear", "hydra.run.dir=run")
    assert r.returncode == 0, r.stderr
    assert "learning rate 0.01 x 2 replicas = 0.02" in r.stderr
    assert read_jsonl(tmp_path / "run" / "metrics.jsonl")[0]["lr"] == pytest.approx(0.02)


@pytest.mark.parametrize("args, env, message", [
    (["strategy=gpu"], {}, "strategy.device: GPU 0 does not exist"),
    (["strategy=tpu"], {}, "strategy.tpu: no TPU 'local' could be reached"),
    (["strategy=multi_worker"], {}, "strategy.cluster: multi_worker needs a cluster"),
    (["strategy=multi_worker"], {"TF_CONFIG": "{not json"}, "strategy.cluster: TF_CONFIG is"),
], ids=["gpu", "tpu", "no-cluster", "bad-tf-config"])
def test_unavailable_devices_are_clear_errors(cli, args, env, message):
    r = cli("fit", *BASE, *args, "hydra.run.dir=run", env=env)
    assert r.returncode == 2 and message in r.stderr, r.stderr[-1500:]
    assert "Traceback" not in r.stderr
