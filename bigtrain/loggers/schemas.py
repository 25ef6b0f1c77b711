"""Schemas of the `logger` group: experiment loggers, any number at once
(`logger=[tensorboard,csv,mlflow,wandb]`); metrics.jsonl is always written besides them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

from bigtrain.core.errors import check
from bigtrain.core.schema import GroupSchema


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
    experiment: str = "bigtrain"  # the MLflow experiment the run is filed under
    run_name: str = ""  # default: the run dir's name
    log_model: bool = False  # export the trained model (.keras) and log it as an artifact

    def validate(self) -> None:
        check(bool(self.tracking_uri), self.key("tracking_uri"), self.tracking_uri,
              "name a tracking URI, e.g. file:./mlruns")
        check(bool(self.experiment), self.key("experiment"), self.experiment,
              "name an experiment")


@dataclass
class WandbLoggerConfig(LoggerConfig):
    """A Weights & Biases run: the flat config, metrics per step, the summary; a resumed run
    continues its W&B run. An empty string leaves a setting to W&B (its WANDB_* variables and
    `wandb online|offline|disabled`). The run's name and group are `run_name` and `run_group`:
    `name` is the logger's own name and `group` the config group's."""

    name: str = "wandb"
    project: str = ""  # default: $WANDB_PROJECT, else bigtrain
    entity: str = ""  # a team or user; default: $WANDB_ENTITY, else the API key's own
    run_name: str = ""  # default: the run dir's name
    run_group: str = ""  # runs shown together, e.g. one sweep; default: $WANDB_RUN_GROUP
    tags: list[str] = field(default_factory=list)  # W&B tags of the run (1-64 characters each)
    mode: str = ""  # online | offline | disabled; default: $WANDB_MODE, `wandb offline`, online
    dir: str = ""  # where W&B writes (<dir>/wandb/); default: $WANDB_DIR, else the run dir

    def validate(self) -> None:
        check(self.mode in ("", "online", "offline", "disabled"), self.key("mode"), self.mode,
              "allowed: online, offline, disabled, or \"\" for W&B's own (WANDB_MODE)")
        for tag in self.tags:
            check(isinstance(tag, str) and 0 < len(tag) <= 64, self.key("tags"), tag,
                  "each tag is a string of 1 to 64 characters")
