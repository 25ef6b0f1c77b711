"""One registry per config group: its options' schemas and the builders that use them.

A group lives in one package (`bigtrain/models/` for `model`, ...). Its `schemas.py` holds one
dataclass per option, importable without TensorFlow; an option's name is its schema's `name`
default (or its `option` class attribute where `name` is a user's value, as for TFDS). Its
other modules hold the builders, each registered with `@REGISTRY.register(Schema)`; they are
imported, and TensorFlow with them, only when something is built. Hydra's ConfigStore entries,
`bigtrain ls` and the errors that list options all read the registries.

Adding an option to a group: one YAML in `conf/<group>/`, its schema in the group's
`schemas.py`, and one builder decorated with `@REGISTRY.register(ThatSchema)`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from omegaconf import MISSING

from bigtrain.core.errors import ConfigError


def option_of(schema: type) -> str | None:
    """The option a schema class stands for: its `option` class attribute, else the default
    of its own `name` field; None for a group's base class (`name` left to the option)."""
    explicit = schema.__dict__.get("option")
    if explicit:
        return explicit
    name = schema.__dict__.get("name")
    return name if isinstance(name, str) and name != MISSING else None


class Registry:
    """The options of one config group (`group`, as its keys are spelled: `optim.schedule`),
    defined in the package `package`."""

    def __init__(self, group: str, package: str, builds: bool = True,
                 schemas_module: str | None = None):
        self.group = group
        self.package = package
        self.builds = builds  # False: a group of settings only (trainer)
        #: where the schemas are: `<package>.schemas` unless given
        self.schemas_module = schemas_module or f"{package}.schemas"
        self._builders: dict[type, Callable[..., Any]] = {}
        self._schemas: dict[str, type] | None = None
        self._loaded = False

    # ---------------------------------------------------------------- schemas (no TensorFlow)
    def schemas(self) -> dict[str, type]:
        """{option: schema} from the group's schemas module."""
        return self._collect().get(self.group, {})

    def all_schemas(self) -> dict[str, dict[str, type]]:
        """{group: {option: schema}} for this group and its sub-groups (`optim.schedule`)."""
        return self._collect()

    def _collect(self) -> dict[str, dict[str, type]]:
        if self._schemas is None:
            module = importlib.import_module(self.schemas_module)
            found: dict[str, dict[str, type]] = {}
            for value in vars(module).values():
                group = getattr(value, "group", None)
                if not (isinstance(value, type) and value.__module__ == module.__name__
                        and isinstance(group, str)
                        and (group == self.group or group.startswith(self.group + "."))):
                    continue
                option = option_of(value)
                if option is None:
                    continue
                options = found.setdefault(group, {})
                if option in options:
                    raise ValueError(f"{group} option {option!r} defined twice")
                options[option] = value
            self._schemas = {g: dict(sorted(o.items())) for g, o in found.items()}
        return self._schemas

    def names(self) -> list[str]:
        return list(self.schemas())

    def schema(self, option: str, key: str | None = None) -> type:
        """The schema of `option`; an unknown option is a ConfigError listing the others."""
        schemas = self.schemas()
        if option not in schemas:
            raise ConfigError(key or f"{self.group}.name", f"no {self.group} option {option!r}. "
                              "Available: " + ", ".join(schemas))
        return schemas[option]

    # ---------------------------------------------------------------- builders (TensorFlow)
    def register(self, schema: type) -> Callable[[Callable], Callable]:
        """Decorate the builder of `schema`'s option (subclasses without a builder of their
        own use it too: `MomentumConfig` is built by SGD's builder)."""
        def deco(fn: Callable) -> Callable:
            if schema in self._builders:
                raise ValueError(f"{self.group} builder for {schema.__name__} registered twice")
            self._builders[schema] = fn
            return fn

        return deco

    def _load_builders(self) -> None:
        if self._loaded:
            return
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name != "schemas" and not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        self._loaded = True

    def builder(self, cfg: Any) -> Callable[..., Any]:
        """The builder for config object `cfg` (by its schema class, nearest first)."""
        self._load_builders()
        for klass in type(cfg).__mro__:
            if klass in self._builders:
                return self._builders[klass]
        raise ConfigError(f"{self.group}.name", f"{self.group} option "
                          f"{getattr(cfg, 'name', type(cfg).__name__)!r} has no builder. "
                          "Available: " + ", ".join(self.names()))

    def builders(self) -> dict[type, Callable[..., Any]]:
        self._load_builders()
        return dict(self._builders)

    def build(self, cfg: Any, *args: Any, **kwargs: Any) -> Any:
        return self.builder(cfg)(cfg, *args, **kwargs)


class Choices:
    """Named functions for one key whose options share a schema: the kinds of
    `optim.schedule.name`. The schema checks the key against `names()`; the code that runs the
    option calls `get(name)`. Modules that register into one import no TensorFlow."""

    def __init__(self, key: str):
        self.key = key
        self._functions: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable], Callable]:
        def deco(fn: Callable) -> Callable:
            if name in self._functions:
                raise ValueError(f"{self.key} {name!r} registered twice")
            self._functions[name] = fn
            return fn

        return deco

    def names(self) -> list[str]:
        return list(self._functions)

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._functions:
            raise ConfigError(self.key, f"no {self.key} {name!r}. Available: "
                              + ", ".join(self._functions))
        return self._functions[name]
