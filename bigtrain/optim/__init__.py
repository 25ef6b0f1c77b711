"""Optimizers, registered by name; each builds a Keras 3 optimizer from its config."""

from __future__ import annotations

from bigtrain.registry import Registry

OPTIMIZERS: Registry = Registry("optim")


def build_optimizer(cfg):  # -> keras.optimizers.Optimizer
    """Build the configured optimizer (imports TensorFlow). Clipping happens in the train step."""
    from bigtrain.optim import builders  # noqa: F401  (registers the builders)

    return OPTIMIZERS.get(cfg.name)(cfg)


__all__ = ["OPTIMIZERS", "build_optimizer"]
