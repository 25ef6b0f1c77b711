"""Config: the typed view of a run (`schema`), error formatting (`errors`), the shipped
catalog (`catalog`). The groups' own schemas live in their packages (bigtrain/registry.py)."""

from bigtrain.config.errors import ConfigError


def __getattr__(name: str):
    # to_typed and register_schemas read every group's registry, and each registry imports
    # this package's errors: loaded on first use, so the import order cannot loop
    if name in ("register_schemas", "to_typed"):
        from bigtrain.config import schema

        return getattr(schema, name)
    raise AttributeError(name)


__all__ = ["ConfigError", "register_schemas", "to_typed"]
