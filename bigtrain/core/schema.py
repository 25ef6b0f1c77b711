"""The base of every group schema: keys named in errors, checks run in `__post_init__`."""

from __future__ import annotations

from typing import ClassVar

from bigtrain.core.errors import check


class GroupSchema:
    """Base for group schemas: `group` prefixes keys in error messages."""

    group: ClassVar[str] = ""

    def key(self, name: str) -> str:
        return f"{self.group}.{name}"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:  # overridden per schema
        pass


def positive(obj: GroupSchema, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        check(v > 0, obj.key(n), v, "must be > 0")


def unit_interval(obj: GroupSchema, name: str, low_open: bool = False) -> None:
    v = getattr(obj, name)
    ok = (0 < v <= 1) if low_open else (0 <= v < 1)
    check(ok, obj.key(name), v, "must be in (0, 1]" if low_open else "must be in [0, 1)")
