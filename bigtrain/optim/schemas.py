"""Schemas of the `optim` group and its nested `optim/schedule` group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

from bigtrain.core.errors import check, check_choice
from bigtrain.core.schema import GroupSchema, positive, unit_interval
from bigtrain.optim.schedule_kinds import SCHEDULES


@dataclass
class ScheduleConfig(GroupSchema):
    """One schema for every schedule kind (`optim/schedule=<name>`); kinds ignore what they
    do not use."""

    group: ClassVar[str] = "optim.schedule"
    option: ClassVar[str] = "schedule"  # one schema for every kind
    name: str = "constant"  # a kind registered in bigtrain/optim/schedule_kinds.py
    warmup: float = 0.0  # steps if >= 1, else a fraction of the run's total steps
    min_lr_ratio: float = 0.0  # cosine and linear end at lr * min_lr_ratio
    decay_rate: float = 0.5  # step and exponential: multiply by this every decay_steps
    decay_steps: int = 1000  # step and exponential: steps between decays

    def validate(self) -> None:
        check_choice(self.key("name"), self.name, SCHEDULES.names())
        check(self.warmup >= 0, self.key("warmup"), self.warmup,
              "must be >= 0 (steps if >= 1, else a fraction of training)")
        check(0 <= self.min_lr_ratio <= 1, self.key("min_lr_ratio"), self.min_lr_ratio,
              "must be in [0, 1]")
        check(0 < self.decay_rate <= 1, self.key("decay_rate"), self.decay_rate,
              "must be in (0, 1]")
        positive(self, "decay_steps")
        if self.name == "inverse_sqrt":
            check(self.warmup > 0, self.key("warmup"), self.warmup,
                  "inverse_sqrt needs a warmup > 0 (its decay starts after it)")


@dataclass
class OptimConfig(GroupSchema):
    group: ClassVar[str] = "optim"
    name: str = MISSING
    lr: float = 1e-3  # the learning rate (the peak, under a schedule)
    weight_decay: float = 0.0  # decoupled; never applied to biases and normalization weights
    ema: float = 0.0  # > 0: keep an exponential moving average of the weights and evaluate it
    # none: lr as written, whatever the replica count | linear: lr x replicas in sync
    lr_scaling: str = "none"
    # how lr changes over the run (optim/schedule=...)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def validate(self) -> None:
        positive(self, "lr")
        check(self.weight_decay >= 0, self.key("weight_decay"), self.weight_decay, "must be >= 0")
        check(0 <= self.ema < 1, self.key("ema"), self.ema, "must be in [0, 1); 0 turns it off")
        check_choice(self.key("lr_scaling"), self.lr_scaling, ["none", "linear"])


@dataclass
class SGDConfig(OptimConfig):
    name: str = "sgd"
    lr: float = 0.05  # the learning rate (the peak, under a schedule)
    momentum: float = 0.0  # 0: plain gradient steps
    nesterov: bool = False  # Nesterov's look-ahead momentum

    def validate(self) -> None:
        super().validate()
        unit_interval(self, "momentum")


@dataclass
class MomentumConfig(SGDConfig):
    name: str = "momentum"
    momentum: float = 0.9  # the velocity kept from step to step


@dataclass
class AdamConfig(OptimConfig):
    name: str = "adam"
    beta_1: float = 0.9  # decay of the first-moment (mean) estimate
    beta_2: float = 0.999  # decay of the second-moment (variance) estimate
    epsilon: float = 1e-7  # added to the denominator for numerical stability

    def validate(self) -> None:
        super().validate()
        unit_interval(self, "beta_1")
        unit_interval(self, "beta_2")
        positive(self, "epsilon")


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = 0.01


@dataclass
class AdagradConfig(OptimConfig):
    name: str = "adagrad"
    lr: float = 0.05  # the learning rate (the peak, under a schedule)
    initial_accumulator_value: float = 0.1  # the squared-gradient sum each weight starts at
    epsilon: float = 1e-7  # added to the denominator for numerical stability

    def validate(self) -> None:
        super().validate()
        positive(self, "epsilon")
        check(self.initial_accumulator_value >= 0, self.key("initial_accumulator_value"),
              self.initial_accumulator_value, "must be >= 0")


@dataclass
class RMSpropConfig(OptimConfig):
    name: str = "rmsprop"
    rho: float = 0.9  # decay of the moving average of squared gradients
    momentum: float = 0.0  # 0: plain gradient steps
    epsilon: float = 1e-7  # added to the denominator for numerical stability
    centered: bool = False  # normalize by the gradient's variance, not its second moment

    def validate(self) -> None:
        super().validate()
        unit_interval(self, "rho")
        unit_interval(self, "momentum")
        positive(self, "epsilon")


@dataclass
class LionConfig(OptimConfig):
    name: str = "lion"
    lr: float = 1e-4  # the learning rate (the peak, under a schedule)
    beta_1: float = 0.9  # decay of the first-moment (mean) estimate
    beta_2: float = 0.99  # decay of the second-moment (variance) estimate

    def validate(self) -> None:
        super().validate()
        unit_interval(self, "beta_1")
        unit_interval(self, "beta_2")


@dataclass
class AdafactorConfig(OptimConfig):
    name: str = "adafactor"
    beta_2_decay: float = -0.8  # the second moment's decay rate, as a power of the step
    epsilon_1: float = 1e-30  # added to the squared gradient
    epsilon_2: float = 1e-3  # the least scale of an update, relative to the weight
    clip_threshold: float = 1.0  # clip each update's root mean square to this

    def validate(self) -> None:
        super().validate()
        check(self.beta_2_decay < 0, self.key("beta_2_decay"), self.beta_2_decay, "must be < 0")
        positive(self, "epsilon_1", "epsilon_2", "clip_threshold")
