"""Models: one module per architecture, registered by name; each builds a Keras 3 model."""

from __future__ import annotations

from bigtrain.registry import Registry

MODELS: Registry = Registry("model")


def build_model(cfg, spec):  # -> keras.Model
    """Build the configured model for the dataset described by `spec` (imports TensorFlow)."""
    from bigtrain.models import cnn, mlp, rnn, transformer  # noqa: F401  (registers the builders)

    return MODELS.get(cfg.name)(cfg, spec)


__all__ = ["MODELS", "build_model"]
