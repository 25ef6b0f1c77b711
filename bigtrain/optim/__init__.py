"""Optimizers, registered by name; each builds a Keras 3 optimizer from its config."""

from __future__ import annotations

from bigtrain.registry import Registry

OPTIMIZERS: Registry = Registry("optim")


def build_optimizer(cfg, learning_rate=None):  # -> keras.optimizers.Optimizer
    """Build the configured optimizer (imports TensorFlow); `learning_rate` defaults to
    `cfg.lr`. Gradient clipping happens in the train step, not here."""
    from bigtrain.optim import builders  # noqa: F401  (registers the builders)

    return OPTIMIZERS.get(cfg.name)(cfg, cfg.lr if learning_rate is None else learning_rate)


__all__ = ["OPTIMIZERS", "build_optimizer"]
