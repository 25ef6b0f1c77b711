"""Structured schemas for every config group, and the typed view of a whole run.

Each option of a group (conf/<group>/<name>.yaml) starts its defaults list with
`/schema/<group>/<name>@_here_`, so Hydra merges the YAML onto its dataclass (defined in
bigtrain/config/<group>.py and listed in SCHEMAS below): unknown keys and wrong types are
rejected while composing. Ranges are checked in `__post_init__`, which runs when the task
converts the composed config to these objects (`to_typed`), before TensorFlow is imported.
A new option is one YAML, one dataclass, one line in SCHEMAS, and one registered builder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bigtrain.config.base import GroupSchema
from bigtrain.config.dataset import (
    CSVConfig,
    DatasetConfig,
    DigitsConfig,
    ImageFolderConfig,
    SyntheticConfig,
    TextClassificationConfig,
    TextConfig,
    TFDSConfig,
    TFRecordConfig,
)
from bigtrain.config.errors import ConfigError
from bigtrain.config.logger import (
    CSVLoggerConfig,
    LoggerConfig,
    MLflowLoggerConfig,
    TensorBoardLoggerConfig,
)
from bigtrain.config.model import CNNConfig, MLPConfig, ModelConfig, RNNConfig, TransformerConfig
from bigtrain.config.optim import (
    AdafactorConfig,
    AdagradConfig,
    AdamConfig,
    AdamWConfig,
    LionConfig,
    MomentumConfig,
    OptimConfig,
    RMSpropConfig,
    ScheduleConfig,
    SGDConfig,
)
from bigtrain.config.strategy import (
    AutoStrategyConfig,
    CPUStrategyConfig,
    GPUStrategyConfig,
    MirroredStrategyConfig,
    MultiWorkerStrategyConfig,
    ParameterServerStrategyConfig,
    StrategyConfig,
    TPUStrategyConfig,
)
from bigtrain.config.trainer import TrainerConfig

# ----------------------------------------------------------------------------- registry
#: (group, option) -> schema. The YAML of option `name` in `group` merges onto this node.
SCHEMAS: dict[tuple[str, str], type] = {
    ("dataset", "digits"): DigitsConfig,
    ("dataset", "synthetic"): SyntheticConfig,
    ("dataset", "text"): TextConfig,
    ("dataset", "text_stdlib"): TextConfig,
    ("dataset", "csv"): CSVConfig,
    ("dataset", "image_folder"): ImageFolderConfig,
    ("dataset", "text_classification"): TextClassificationConfig,
    ("dataset", "tfds"): TFDSConfig,
    ("dataset", "mnist"): TFDSConfig,
    ("dataset", "fashion_mnist"): TFDSConfig,
    ("dataset", "cifar10"): TFDSConfig,
    ("dataset", "imdb_reviews"): TFDSConfig,
    ("dataset", "tfrecord"): TFRecordConfig,
    ("model", "mlp"): MLPConfig,
    ("model", "cnn"): CNNConfig,
    ("model", "transformer"): TransformerConfig,
    ("model", "rnn"): RNNConfig,
    ("optim", "sgd"): SGDConfig,
    ("optim", "momentum"): MomentumConfig,
    ("optim", "adam"): AdamConfig,
    ("optim", "adamw"): AdamWConfig,
    ("optim", "adagrad"): AdagradConfig,
    ("optim", "rmsprop"): RMSpropConfig,
    ("optim", "lion"): LionConfig,
    ("optim", "adafactor"): AdafactorConfig,
    ("logger", "tensorboard"): TensorBoardLoggerConfig,
    ("logger", "csv"): CSVLoggerConfig,
    ("logger", "mlflow"): MLflowLoggerConfig,
    ("strategy", "auto"): AutoStrategyConfig,
    ("strategy", "cpu"): CPUStrategyConfig,
    ("strategy", "mirrored"): MirroredStrategyConfig,
    ("strategy", "gpu"): GPUStrategyConfig,
    ("strategy", "multi_worker"): MultiWorkerStrategyConfig,
    ("strategy", "tpu"): TPUStrategyConfig,
    ("strategy", "parameter_server"): ParameterServerStrategyConfig,
    ("trainer", "default"): TrainerConfig,
}

GROUPS = ("dataset", "model", "optim", "strategy", "trainer")


def register_schemas() -> None:
    """Store every schema under `schema/<group>/<option>` in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for (group, option), node in SCHEMAS.items():
        cs.store(group=f"schema/{group}", name=option, node=node)
    cs.store(group="schema/optim/schedule", name="schedule", node=ScheduleConfig)


@dataclass
class FitConfig:
    """The typed view of one run: what the task and builders read."""

    dataset: DatasetConfig
    model: ModelConfig
    optim: OptimConfig
    strategy: StrategyConfig
    trainer: TrainerConfig
    # experiment loggers by name (a group that takes several options: logger=[a,b])
    logger: dict[str, LoggerConfig] = field(default_factory=dict)


def to_typed(cfg: DictConfig) -> FitConfig:
    """Turn a composed config into schema objects, running every range check.

    Raises ConfigError naming the first bad key.
    """
    parts: dict[str, Any] = {}
    for group in GROUPS:
        if group not in cfg:
            raise ConfigError(group, f"missing config group; choose one with `{group}=<option>` "
                              f"(see `bigtrain ls {group}`)")
        node = cfg[group]
        try:
            obj = OmegaConf.to_object(node)
        except ConfigError:
            raise
        except Exception as e:  # missing values, failed interpolations
            raise ConfigError(group, _omegaconf_message(e)) from e
        if not isinstance(obj, GroupSchema):
            raise ConfigError(group, "this group's config has no schema; its YAML must start with "
                              f"`defaults: [/schema/{group}/<option>@_here_, _self_]`")
        allowed = field_names(type(obj))
        unknown = [k for k in node.keys() if k not in allowed]
        if unknown:
            raise ConfigError(f"{group}.{unknown[0]}",
                              "unknown key. Allowed keys: " + ", ".join(allowed))
        parts[group] = obj
    parts["logger"] = _loggers(cfg.get("logger"))
    allowed_top = (*GROUPS, "logger")
    unknown = [k for k in cfg.keys() if k not in allowed_top]
    if unknown:
        raise ConfigError(str(unknown[0]), "unknown top-level key. Allowed: "
                          + ", ".join(allowed_top))
    return FitConfig(**parts)


def _loggers(node) -> dict[str, LoggerConfig]:
    """The chosen loggers, each checked against its schema."""
    out: dict[str, LoggerConfig] = {}
    for name in (node.keys() if node is not None else []):
        sub = node[name]
        try:
            obj = OmegaConf.to_object(sub)
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(f"logger.{name}", _omegaconf_message(e)) from e
        if not isinstance(obj, LoggerConfig) or obj.name != name:
            known = sorted(o for g, o in SCHEMAS if g == "logger")
            raise ConfigError(f"logger.{name}", "not a logger; choose from " + ", ".join(known)
                              + " with logger=[...]")
        unknown = [k for k in sub.keys() if k not in field_names(type(obj))]
        if unknown:
            raise ConfigError(f"logger.{name}.{unknown[0]}", "unknown key. Allowed keys: "
                              + ", ".join(field_names(type(obj))))
        out[name] = obj
    return out


def from_resolved(resolved: dict[str, Any]) -> FitConfig:
    """The typed config of a finished run, from its resolved config.yaml."""
    node = {}
    for group in GROUPS:
        part = dict(resolved.get(group) or {})
        option = part.get("name", "default")
        schema = SCHEMAS.get((group, option))
        if schema is None and group == "dataset" and "data_dir" in part:
            schema = TFDSConfig  # its `name` is the TFDS dataset's
        if schema is None:
            raise ConfigError(group, f"this bigtrain does not know {group} option {option!r}")
        node[group] = OmegaConf.merge(OmegaConf.structured(schema), part)
    for name, part in (resolved.get("logger") or {}).items():
        schema = SCHEMAS.get(("logger", name))
        if schema is not None:
            node.setdefault("logger", {})[name] = OmegaConf.merge(OmegaConf.structured(schema),
                                                                  part)
    return to_typed(OmegaConf.create(node))


def _omegaconf_message(e: Exception) -> str:
    msg = getattr(e, "msg", None) or str(e)
    key = getattr(e, "full_key", None)
    first = msg.splitlines()[0] if msg else type(e).__name__
    return f"{first} (key: {key})" if key else first


def field_names(schema: type) -> list[str]:
    return [f.name for f in fields(schema)]
