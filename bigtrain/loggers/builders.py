"""The logger builders: TensorBoard, CSV files and MLflow, each a training hook.

Each logs the run's parameters (the resolved config), its metrics per step and, at the end,
its summary. A logger that cannot start (MLflow not installed, a tracking URI that does not
work) is a clear error before the first step, not a crash mid-run.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
from pathlib import Path
from typing import Any

from bigtrain.core.errors import ConfigError
from bigtrain.core.files import atomic_write_text
from bigtrain.core.hooks import Hook
from bigtrain.loggers import LOGGERS
from bigtrain.loggers.schemas import (
    CSVLoggerConfig,
    MLflowLoggerConfig,
    TensorBoardLoggerConfig,
)

log = logging.getLogger("bigtrain")


_SCALARS = (bool, int, float, str, type(None))


def flat_config(config) -> dict[str, Any]:
    """The typed config as flat `group.key -> value`, values kept as numbers, booleans and
    strings (W&B filters and sorts runs by them); a list of scalars stays a list."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        elif isinstance(node, _SCALARS):
            out[prefix[:-1]] = node
        elif isinstance(node, list | tuple) and all(isinstance(v, _SCALARS) for v in node):
            out[prefix[:-1]] = list(node)
        else:
            out[prefix[:-1]] = str(node)

    walk(dataclasses.asdict(config), "")
    return out


def flat_params(config) -> dict[str, str]:
    """The typed config as flat `group.key -> value` strings (loggers' parameters)."""
    return {key: str(value) for key, value in flat_config(config).items()}


def _plugin(name: str):
    """Summary metadata for TensorBoard's plugin `name`, as tensorboard.summary writes it (the
    plugin data at version 0 serializes empty)."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=name))


class TensorBoard(Hook):
    """Scalars under <run_dir>/tb: train/, val/ and test/ runs; the parameters as a text
    table. Written with tf.summary.write and the plugins' metadata, which is what
    tf.summary.scalar and text do, without importing tensorboard.summary for them (0.2 s
    before the first step)."""

    def __init__(self, run_dir: Path, config=None):
        import tensorflow as tf

        self._tf = tf
        self._scalar, text = _plugin("scalars"), _plugin("text")
        self._writers = {s: tf.summary.create_file_writer(str(run_dir / "tb" / s))
                         for s in ("train", "val", "test")}
        if config is not None:
            rows = "\n".join(f"| {k} | {v} |" for k, v in flat_params(config).items())
            with self._writers["train"].as_default(step=0):
                tf.summary.write("config", tf.constant("| key | value |\n|---|---|\n" + rows),
                                 metadata=text)

    def _scalars(self, writer, step: int, values: dict[str, float]) -> None:
        tf = self._tf
        with writer.as_default(step=step):
            for k, v in values.items():
                tf.summary.write(k, tf.constant(v, tf.float32), metadata=self._scalar)

    def on_log(self, state, record: dict[str, Any]) -> None:
        self._scalars(self._writers["train"], record["step"],
                      {k: v for k, v in record.items()
                       if k not in ("step", "epoch", "time") and isinstance(v, float)})

    def _split(self, split: str, record: dict[str, Any]) -> None:
        self._scalars(self._writers[split], record["step"],
                      {k[len(split) + 1:]: v for k, v in record.items()
                       if k.startswith(f"{split}_") and isinstance(v, float)})

    def on_eval(self, state, record: dict[str, Any], improved: bool) -> None:
        self._split("val", record)

    def on_test(self, state, record: dict[str, Any]) -> None:
        self._split("test", record)

    def close(self) -> None:
        for w in self._writers.values():
            w.flush()
            w.close()


class CSVLogger(Hook):
    """metrics_train.csv, metrics_val.csv and metrics_test.csv (columns from the first record
    of each), and params.csv. On a resume the files are rewritten without the steps trained
    again."""

    def __init__(self, run_dir: Path, config):
        self.dir = Path(run_dir)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["key", "value"])
        w.writerows(flat_params(config).items())
        atomic_write_text(self.dir / "params.csv", buf.getvalue())
        self._files: dict[str, tuple[Any, csv.DictWriter]] = {}
        self._start = 0

    def on_train_begin(self, state) -> None:
        self._start = state.step  # > 0 when resumed: later rows are trained again

    def _writer(self, split: str, record: dict[str, Any]) -> csv.DictWriter:
        if split not in self._files:
            path = self.dir / f"metrics_{split}.csv"
            kept: list[dict[str, str]] = []
            fields = list(record)
            if path.exists():  # a resumed run: keep the rows of steps not trained again
                with open(path, newline="") as f:
                    reader = csv.DictReader(f)
                    fields = list(reader.fieldnames or fields)
                    kept = [r for r in reader if _int(r.get("step")) <= self._start]
            f = open(path, "w", newline="")  # noqa: SIM115 (closed in close())
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(kept)
            self._files[split] = (f, w)
        return self._files[split][1]

    def _write(self, split: str, state, record: dict[str, Any]) -> None:
        w = self._writer(split, record)
        w.writerow(record)
        self._files[split][0].flush()

    def on_log(self, state, record: dict[str, Any]) -> None:
        self._write("train", state, record)

    def on_eval(self, state, record: dict[str, Any], improved: bool) -> None:
        self._write("val", state, record)

    def on_test(self, state, record: dict[str, Any]) -> None:
        self._write("test", state, record)

    def close(self) -> None:
        for f, _ in self._files.values():
            f.close()
        self._files.clear()


class MLflowLogger(Hook):
    """One MLflow run per bigtrain run (a resumed run continues its MLflow run)."""

    def __init__(self, run_dir: Path, config, cfg):
        try:
            import mlflow
        except ImportError:
            raise ConfigError("logger.mlflow", "needs MLflow: pip install 'bigtrain[mlflow]' "
                              "(or mlflow-skinny)") from None
        self.mlflow, self.run_dir, self.cfg = mlflow, Path(run_dir), cfg
        if cfg.tracking_uri.startswith("file:"):
            # MLflow 3 keeps its file store behind an opt-in; a file URI asks for it
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            mlflow.set_tracking_uri(cfg.tracking_uri)
            experiment = mlflow.set_experiment(cfg.experiment)
        except Exception as ex:  # MLflow raises many kinds for a bad URI or server
            first = str(ex).strip().splitlines()
            raise ConfigError("logger.mlflow.tracking_uri", f"{cfg.tracking_uri!r} does not "
                              "work: " + (first[0][:200] if first else type(ex).__name__)) from None
        id_file = self.run_dir / "mlflow_run_id"
        run_id = id_file.read_text().strip() if id_file.exists() else None
        self.run = mlflow.start_run(run_id=run_id, experiment_id=experiment.experiment_id,
                                    run_name=cfg.run_name or self.run_dir.name)
        if run_id is None:
            atomic_write_text(id_file, self.run.info.run_id + "\n")
            params = flat_params(config)
            items = list(params.items())
            for i in range(0, len(items), 100):  # MLflow takes at most 100 params per call
                mlflow.log_params({k: v[:500] for k, v in items[i:i + 100]})
        self._status = "FAILED"

    def _metrics(self, record: dict[str, Any]) -> None:
        values = {k: float(v) for k, v in record.items()
                  if k not in ("step", "epoch") and isinstance(v, int | float)}
        self.mlflow.log_metrics(values, step=int(record["step"]))

    def on_log(self, state, record: dict[str, Any]) -> None:
        self._metrics(record)

    def on_eval(self, state, record: dict[str, Any], improved: bool) -> None:
        self._metrics(record)

    def on_test(self, state, record: dict[str, Any]) -> None:
        self._metrics(record)

    def on_summary(self, summary: dict[str, Any], model=None) -> None:
        final = {f"final_{k}": float(v) for k, v in summary.get("final", {}).items()
                 if isinstance(v, int | float)}
        self.mlflow.log_metrics(final, step=int(summary.get("steps", 0)))
        for name in ("config.yaml", "summary.json"):
            if (self.run_dir / name).exists():
                self.mlflow.log_artifact(str(self.run_dir / name))
        if self.cfg.log_model and model is not None:
            path = self.run_dir / "export" / "model.keras"
            path.parent.mkdir(parents=True, exist_ok=True)
            model.save(path)
            self.mlflow.log_artifact(str(path), artifact_path="model")
        self._status = "FINISHED"

    def close(self) -> None:
        if self.mlflow.active_run() is not None:
            self.mlflow.end_run(status=self._status)


@LOGGERS.register(TensorBoardLoggerConfig)
def build_tensorboard(cfg, run_dir: Path, config) -> Hook:
    return TensorBoard(run_dir, config)


@LOGGERS.register(CSVLoggerConfig)
def build_csv(cfg, run_dir: Path, config) -> Hook:
    return CSVLogger(run_dir, config)


@LOGGERS.register(MLflowLoggerConfig)
def build_mlflow(cfg, run_dir: Path, config) -> Hook:
    return MLflowLogger(run_dir, config, cfg)


def _int(v: Any) -> int:
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return 1 << 62

