"""User-facing configuration errors: one exception type the CLI turns into exit status 2."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """A user's config is wrong; the message names the key and what is allowed."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


def check(cond: bool, key: str, value: object, allowed: str) -> None:
    """Raise a ConfigError for `key` unless `cond` holds; `allowed` says what would be valid."""
    if not cond:
        raise ConfigError(key, f"{value!r} is not valid; {allowed}")


def check_choice(key: str, value: object, choices: Iterable[object]) -> None:
    choices = list(choices)
    check(value in choices, key, value, "allowed: " + ", ".join(map(str, choices)))
