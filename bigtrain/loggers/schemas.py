"""Schemas of the `logger` group: experiment loggers, any number at once
(`logger=[tensorboard,csv,mlflow]`); metrics.jsonl is always written besides them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from omegaconf import MISSING

from bigtrain.config.base import GroupSchema
from bigtrain.config.errors import check


@dataclass
class LoggerConfig(GroupSchema):
    group: ClassVar[str] = "logger"
    name: str = MISSING

    def key(self, name: str) -> str:
        return f"logger.{self.name}.{name}"


@dataclass
class TensorBoardLoggerConfig(LoggerConfig):
    """Scalars under <run dir>/tb/{train,val}, and the resolved config as a text table."""

    name: str = "tensorboard"


@dataclass
class CSVLoggerConfig(LoggerConfig):
    """metrics_train.csv, metrics_val.csv, metrics_test.csv, and params.csv (the resolved
    config)."""

    name: str = "csv"


@dataclass
class MLflowLoggerConfig(LoggerConfig):
    """An MLflow run: parameters, metrics per step, and the run's files as artifacts."""

    name: str = "mlflow"
    tracking_uri: str = "file:./mlruns"  # file:<dir>, sqlite:///<file>, or http(s)://server
    experiment: str = "bigtrain"
    run_name: str = ""  # default: the run dir's name
    log_model: bool = False  # export the trained model (.keras) and log it as an artifact

    def validate(self) -> None:
        check(bool(self.tracking_uri), self.key("tracking_uri"), self.tracking_uri,
              "name a tracking URI, e.g. file:./mlruns")
        check(bool(self.experiment), self.key("experiment"), self.experiment,
              "name an experiment")
