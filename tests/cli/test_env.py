"""`bigtrain env` and the device facts it reports."""

from __future__ import annotations

import json
import os

from bigtrain.strategy import devices


def test_env_reports_versions_devices_features_and_precisions(cli):
    r = cli("env", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    import tensorflow as tf

    assert report["versions"]["tensorflow"] == tf.__version__
    assert report["machine"]["cpu features"] == sorted(devices.cpu_flags())
    gpus = tf.config.list_physical_devices("GPU")
    assert len(report["devices"]["gpus"]) == len(gpus)
    assert report["devices"]["strategy=auto"] == devices.auto_strategy_choice(len(gpus))
    assert set(report["precision"]) == {"fp32", "bf16", "fp16"}
    assert report["machine"]["XLA_FLAGS"] == (os.environ.get("XLA_FLAGS") or "not set")
    table = cli("env")
    assert table.returncode == 0 and "strategy=auto" in table.stdout


def test_precision_support_follows_the_hardware():
    cpu_old = devices.precision_support([], {"avx2", "fma"})
    assert cpu_old["bf16"].startswith("emulated")
    cpu_new = devices.precision_support([], {"avx2", "avx512_bf16"})
    assert cpu_new["bf16"].startswith("native")
    ampere = devices.precision_support([("A100", (8, 0))], set())
    volta = devices.precision_support([("V100", (7, 0))], set())
    assert ampere["bf16"] == "native" and volta["bf16"].startswith("emulated")
    assert volta["fp16"] == "native (tensor cores)"
    assert devices.auto_strategy_choice(2) == "MirroredStrategy over 2 GPUs"


def test_env_shows_the_users_xla_flags(monkeypatch):
    from bigtrain.cli.env import collect

    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_prefer_vector_width=512")
    assert collect()["machine"]["XLA_FLAGS"] == "--xla_cpu_prefer_vector_width=512"
