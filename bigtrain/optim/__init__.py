"""Optimizers, each builder registered with its schema; each builds a Keras 3 optimizer.
Learning-rate schedules are the `optim.schedule` sub-group (`schedules.py`)."""

from __future__ import annotations

from bigtrain.core.registry import Registry

OPTIMIZERS: Registry = Registry("optim", "bigtrain.optim")


def build_optimizer(cfg, learning_rate=None):  # -> keras.optimizers.Optimizer
    """Build the configured optimizer (imports TensorFlow); `learning_rate` defaults to
    `cfg.lr`. Gradient clipping happens in the train step, not here."""
    return OPTIMIZERS.build(cfg, cfg.lr if learning_rate is None else learning_rate)


__all__ = ["OPTIMIZERS", "build_optimizer"]
