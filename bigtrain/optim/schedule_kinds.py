"""The kinds of learning-rate schedule (`optim/schedule=<name>`): each a factor of the base
rate at one step, registered by name. No TensorFlow here: the schema checks names against
this registry, and `schedules.Schedule` calls a kind with TensorFlow's ops as `ops`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bigtrain.core.registry import Choices

SCHEDULES = Choices("optim.schedule.name")


@dataclass
class At:
    """Where the run is, as the kinds see it (tensors inside the compiled step)."""

    step: Any  # the 0-based optimizer step
    after: Any  # steps since warmup ended (0 during warmup)
    progress: Any  # fraction of the post-warmup span done, in [0, 1]
    warmup_steps: int
    min_lr_ratio: float
    decay_rate: float
    decay_steps: int


@SCHEDULES.register("constant")
def constant(at: At, ops):
    return ops.constant(1.0)


@SCHEDULES.register("step")
def step(at: At, ops):
    """Multiply by decay_rate every decay_steps."""
    return ops.pow(at.decay_rate, ops.floor(at.after / at.decay_steps))


@SCHEDULES.register("exponential")
def exponential(at: At, ops):
    return ops.pow(at.decay_rate, at.after / at.decay_steps)


@SCHEDULES.register("cosine")
@SCHEDULES.register("warmup_cosine")
def cosine(at: At, ops):
    """From 1 to min_lr_ratio along half a cosine."""
    m = at.min_lr_ratio
    return m + (1.0 - m) * 0.5 * (1.0 + ops.cos(math.pi * at.progress))


@SCHEDULES.register("linear")
def linear(at: At, ops):
    return 1.0 - (1.0 - at.min_lr_ratio) * at.progress


@SCHEDULES.register("inverse_sqrt")
def inverse_sqrt(at: At, ops):
    """sqrt(warmup / step) after the warmup (the Transformer paper's decay)."""
    w = max(float(at.warmup_steps), 1.0)
    return ops.sqrt(w / ops.maximum(at.step + 1.0, w))
