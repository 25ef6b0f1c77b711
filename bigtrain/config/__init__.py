"""Config schemas (dataclasses registered in Hydra's ConfigStore) and their validation."""

from bigtrain.config.errors import ConfigError
from bigtrain.config.schema import register_schemas, to_typed

__all__ = ["ConfigError", "register_schemas", "to_typed"]
