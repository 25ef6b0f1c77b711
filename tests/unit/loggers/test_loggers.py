"""Experiment loggers: logger=[tensorboard,csv,mlflow]; metrics.jsonl is always written."""

from __future__ import annotations

import csv

import pytest
from helpers import read_json, read_jsonl

pytestmark = pytest.mark.slow

BASE = ["fit", "debug=smoke", "model=mlp", "trainer.progress=none"]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_logger_writes_params_and_metrics_and_survives_a_resume(cli, tmp_path):
    r = cli(*BASE, "logger=[csv]", "hydra.run.dir=run")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "run"
    assert not (run / "tb").exists()  # only the loggers asked for
    params = {row["key"]: row["value"] for row in rows(run / "params.csv")}
    assert params["model.name"] == "mlp" and params["trainer.max_steps"] == "6"
    train = rows(run / "metrics_train.csv")
    jsonl = [x for x in read_jsonl(run / "metrics.jsonl") if "loss" in x]
    assert [int(x["step"]) for x in train] == [x["step"] for x in jsonl] == [2, 4, 6]
    assert float(train[-1]["loss"]) == pytest.approx(jsonl[-1]["loss"])
    assert [int(x["step"]) for x in rows(run / "metrics_val.csv")] == [3, 6]
    # a longer run resumed from step 6: rows of steps up to 6 kept once, new ones appended
    more = cli(*BASE, "logger=[csv]", "trainer.max_steps=10", "hydra.run.dir=run")
    assert more.returncode == 0, more.stderr
    assert [int(x["step"]) for x in rows(run / "metrics_train.csv")] == [2, 4, 6, 8, 10]


def test_mlflow_logger_records_a_run_in_a_local_file_store(cli, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    store = tmp_path / "mlruns"
    r = cli(*BASE, "logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri=file:{store}",
            "logger.mlflow.experiment=digits", "logger.mlflow.log_model=true",
            "hydra.run.dir=run")
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "run"
    assert (run / "tb").is_dir()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"file:{store}")
    exp = client.get_experiment_by_name("digits")
    (found,) = client.search_runs([exp.experiment_id])
    assert found.info.run_id == (run / "mlflow_run_id").read_text().strip()
    assert found.info.status == "FINISHED"
    assert found.data.params["optim.name"] == "adam"
    history = client.get_metric_history(found.info.run_id, "loss")
    assert [m.step for m in history] == [2, 4, 6]
    summary = read_json(run / "summary.json")
    assert found.data.metrics["final_val_loss"] == pytest.approx(summary["final"]["val_loss"])
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"config.yaml", "summary.json", "model"} <= artifacts


def test_a_logger_that_cannot_start_is_a_clear_error_before_training(cli, tmp_path):
    r = cli(*BASE, "logger=[mlflow]", "logger.mlflow.tracking_uri=nosuchscheme://x",
            "hydra.run.dir=run")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "logger.mlflow.tracking_uri" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or not read_jsonl(
        tmp_path / "run" / "metrics.jsonl")
    bad = cli(*BASE, "logger=[tensorboard,wandb]", "hydra.run.dir=run2")
    assert bad.returncode == 2 and "logger" in bad.stderr and "wandb" in bad.stderr


def _tb_scalars(directory) -> dict[str, list[tuple[int, float]]]:
    import tensorflow as tf

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name == "scalars":
                    value = float(tf.make_ndarray(v.tensor))
                    out.setdefault(v.tag, []).append((event.step, value))
    return out


def test_test_metrics_reach_metrics_jsonl_tensorboard_and_every_logger(cli, tmp_path,
                                                                      monkeypatch):
    pytest.importorskip("mlflow")
    store = tmp_path / "mlruns"
    r = cli(*BASE, "logger=[tensorboard,csv,mlflow]", f"logger.mlflow.tracking_uri=file:{store}",
            "hydra.run.dir=run")
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "run"
    test_accuracy = read_json(run / "summary.json")["final"]["test_accuracy"]
    (record,) = [x for x in read_jsonl(run / "metrics.jsonl") if "test_accuracy" in x]
    assert record["step"] == 6 and record["test_accuracy"] == pytest.approx(test_accuracy)
    tb = _tb_scalars(run / "tb" / "test")
    assert tb["accuracy"] == [(6, pytest.approx(test_accuracy, abs=1e-6))]
    assert "loss" in tb and "accuracy" in _tb_scalars(run / "tb" / "val")
    (row,) = rows(run / "metrics_test.csv")
    assert float(row["test_accuracy"]) == pytest.approx(test_accuracy)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"file:{store}")
    (found,) = client.search_runs([client.get_experiment_by_name("bigtrain").experiment_id])
    history = client.get_metric_history(found.info.run_id, "test_accuracy")
    assert [(m.step, m.value) for m in history] == [(6, pytest.approx(test_accuracy))]
