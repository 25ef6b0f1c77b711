"""Name -> builder registries: one per config group that builds something."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from bigtrain.config.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[F]):
    """Builders keyed by the `name` field of their config."""

    def __init__(self, group: str):
        self.group = group
        self._builders: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            if name in self._builders:
                raise ValueError(f"{self.group} builder {name!r} registered twice")
            self._builders[name] = fn
            return fn

        return deco

    def get(self, name: str) -> F:
        if name not in self._builders:
            raise ConfigError(f"{self.group}.name", f"no {self.group} named {name!r}. Available: "
                              + ", ".join(self.names()))
        return self._builders[name]

    def names(self) -> list[str]:
        return sorted(self._builders)
