"""Models: one module per architecture, each builder registered with its schema; each builds a
Keras 3 model."""

from __future__ import annotations

from bigtrain.registry import Registry

MODELS: Registry = Registry("model", "bigtrain.models")


def build_model(cfg, spec):  # -> keras.Model
    """Build the configured model for the dataset described by `spec` (imports TensorFlow)."""
    return MODELS.build(cfg, spec)


__all__ = ["MODELS", "build_model"]
