"""Schemas of the `strategy` group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

from bigtrain.config.base import GroupSchema
from bigtrain.config.errors import check, check_choice

PRECISIONS = ["fp32", "bf16", "fp16"]


@dataclass
class StrategyConfig(GroupSchema):
    group: ClassVar[str] = "strategy"
    name: str = MISSING
    precision: str = "fp32"
    jit_compile: bool = False

    def validate(self) -> None:
        check_choice(self.key("precision"), self.precision, PRECISIONS)


@dataclass
class AutoStrategyConfig(StrategyConfig):
    name: str = "auto"


@dataclass
class CPUStrategyConfig(StrategyConfig):
    name: str = "cpu"


@dataclass
class MirroredStrategyConfig(StrategyConfig):
    """All (or the listed) local GPUs; on a machine without GPUs, `logical_cpus` splits the
    CPU into that many devices (for testing the distributed path)."""

    name: str = "mirrored"
    devices: list[int] = field(default_factory=list)  # GPU indices; empty = all
    logical_cpus: int = 0  # > 0 and no GPU: mirror over this many logical CPU devices

    def validate(self) -> None:
        super().validate()
        check(self.logical_cpus >= 0, self.key("logical_cpus"), self.logical_cpus,
              "must be >= 0")
