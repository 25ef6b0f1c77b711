"""The typed view of a whole run, and the glue from the group registries to Hydra.

Each option of a group (conf/<group>/<name>.yaml) starts its defaults list with
`/schema/<group>/<option>@_here_`, so Hydra merges the YAML onto its dataclass (defined in the
group's `schemas.py` and found by the group's registry, see bigtrain/core/registry.py): unknown
keys and wrong types are rejected while composing. Ranges are checked in `__post_init__`,
which runs when the task converts the composed config to these objects (`to_typed`), before
TensorFlow is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bigtrain.config.trainer import TRAINERS, TrainerConfig
from bigtrain.core.errors import ConfigError
from bigtrain.core.registry import Registry
from bigtrain.core.schema import GroupSchema
from bigtrain.data import DATASETS
from bigtrain.data.schemas import DatasetConfig
from bigtrain.loggers import LOGGERS
from bigtrain.loggers.schemas import LoggerConfig
from bigtrain.models import MODELS
from bigtrain.models.schemas import ModelConfig
from bigtrain.optim import OPTIMIZERS
from bigtrain.optim.schemas import OptimConfig
from bigtrain.strategy import STRATEGIES
from bigtrain.strategy.schemas import StrategyConfig

#: every config group with a schema, by the group's name
REGISTRIES: dict[str, Registry] = {r.group: r for r in (DATASETS, MODELS, OPTIMIZERS,
                                                          STRATEGIES, TRAINERS, LOGGERS)}
#: the groups every run has exactly one option of (`logger` takes a list)
GROUPS = ("dataset", "model", "optim", "strategy", "trainer")


def register_schemas() -> None:
    """Store every registered schema under `schema/<group>/<option>` in Hydra's ConfigStore
    (sub-groups as `schema/optim/schedule/<option>`; idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for registry in REGISTRIES.values():
        for group, options in registry.all_schemas().items():
            for option, node in options.items():
                cs.store(group="schema/" + group.replace(".", "/"), name=option, node=node)


def option_schemas() -> dict[tuple[str, str], type]:
    """(group, option) -> schema for every YAML option shipped in conf/<group>/, read from the
    `/schema/<group>/<schema option>@_here_` line that starts its defaults list (so
    `dataset=mnist` is the tfds schema)."""
    from bigtrain.config.catalog import schema_options

    out: dict[tuple[str, str], type] = {}
    for (group, option), schema_option in schema_options().items():
        registry = REGISTRIES.get(group.split("/")[0])
        schemas = registry.all_schemas().get(group.replace("/", "."), {}) if registry else {}
        if schema_option in schemas:
            out[(group, option)] = schemas[schema_option]
    return out


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
        except OmegaConfBaseException as e:  # missing values, failed interpolations, types
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
        except OmegaConfBaseException as e:  # missing values, failed interpolations, types
            raise ConfigError(f"logger.{name}", _omegaconf_message(e)) from e
        if not isinstance(obj, LoggerConfig):
            raise ConfigError(f"logger.{name}", "not a logger; choose from "
                              + ", ".join(LOGGERS.names()) + " with logger=[...]")
        if obj.name != name:
            raise ConfigError(f"logger.{name}.name", f"{obj.name!r} cannot be set: it names "
                              f"the logger ({name}). Its keys: "
                              + ", ".join(k for k in field_names(type(obj)) if k != "name"))
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
        node[group] = OmegaConf.merge(OmegaConf.structured(schema_of(group, part)), part)
    for name, part in (resolved.get("logger") or {}).items():
        if name in LOGGERS.schemas():
            node.setdefault("logger", {})[name] = OmegaConf.merge(
                OmegaConf.structured(LOGGERS.schemas()[name]), part)
    return to_typed(OmegaConf.create(node))


def schema_of(group: str, part: dict[str, Any]) -> type:
    """The schema of a resolved group node: the option its `name` names, else the one schema
    whose keys are exactly the node's (`dataset.name` of a TFDS dataset is TFDS's name)."""
    schemas = REGISTRIES[group].schemas()
    option = part.get("name", "default")
    if option in schemas:
        return schemas[option]
    keys = set(part)
    matches = [s for s in schemas.values() if set(field_names(s)) == keys]
    if len(matches) == 1:
        return matches[0]
    raise ConfigError(group, f"this bigtrain does not know {group} option {option!r}")


def _omegaconf_message(e: Exception) -> str:
    msg = getattr(e, "msg", None) or str(e)
    key = getattr(e, "full_key", None)
    first = msg.splitlines()[0] if msg else type(e).__name__
    return f"{first} (key: {key})" if key else first


def field_names(schema: type) -> list[str]:
    return [f.name for f in fields(schema)]
