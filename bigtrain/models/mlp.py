"""A multi-layer perceptron over the flattened input; per token for language models."""

from __future__ import annotations

import keras

from bigtrain.models import MODELS
from bigtrain.models.schemas import MLPConfig


def _norm(cfg) -> keras.layers.Layer | None:
    if cfg.norm == "batch":
        return keras.layers.BatchNormalization(momentum=cfg.bn_momentum)
    return keras.layers.LayerNormalization() if cfg.norm == "layer" else None


@MODELS.register(MLPConfig)
def build_mlp(cfg, spec) -> keras.Model:
    inputs = keras.Input(shape=spec.input_shape, dtype=spec.input_dtype, name="inputs")
    if spec.task == "lm":
        # token-wise: an embedding and dense layers at each position (a bigram model)
        x = keras.layers.Embedding(spec.num_outputs, cfg.hidden[0] if cfg.hidden else 64)(inputs)
    else:
        x = keras.layers.Flatten()(inputs)
    for i, width in enumerate(cfg.hidden):
        x = keras.layers.Dense(width, name=f"dense_{i}")(x)
        norm = _norm(cfg)
        if norm is not None:
            x = norm(x)
        x = keras.layers.Activation(cfg.activation)(x)
        if cfg.dropout > 0:
            x = keras.layers.Dropout(cfg.dropout)(x)
    outputs = keras.layers.Dense(spec.num_outputs, name="head")(x)
    return keras.Model(inputs, outputs, name="mlp")
