"""LSTM or GRU stacks: images are read row by row, vectors one feature per step, token ids
through an embedding. Language models are causal, so they cannot be bidirectional."""

from __future__ import annotations

import keras

from bigtrain.core.errors import ConfigError
from bigtrain.models import MODELS
from bigtrain.models.schemas import RNNConfig


@MODELS.register(RNNConfig)
def build_rnn(cfg, spec) -> keras.Model:
    causal = spec.task == "lm"
    if causal and cfg.bidirectional:
        raise ConfigError("model.bidirectional", "a language model must not see future "
                          "tokens; use model.bidirectional=false")
    inputs = keras.Input(shape=spec.input_shape, dtype=spec.input_dtype, name="inputs")
    shape = spec.input_shape
    if spec.input_dtype.startswith("int"):
        vocab = spec.num_outputs if causal else (cfg.vocab_size or spec.input_vocab)
        if vocab <= 0:
            raise ConfigError("model.vocab_size", "set it to the token vocabulary size for "
                              "classification over tokens")
        x = keras.layers.Embedding(vocab, cfg.units, mask_zero=not causal, name="embed")(inputs)
    elif len(shape) == 1:
        x = keras.layers.Reshape((shape[0], 1))(inputs)
    elif len(shape) == 2:
        x = inputs  # rows are the time steps
    else:
        x = keras.layers.Reshape((shape[0], shape[1] * shape[2]))(inputs)
    cell = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cfg.cell]
    for i in range(cfg.num_layers):
        last = i == cfg.num_layers - 1
        layer = cell(cfg.units, return_sequences=causal or not last, name=f"{cfg.cell}_{i}")
        if cfg.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi_{cfg.cell}_{i}")
        x = layer(x)
        if cfg.dropout > 0:
            x = keras.layers.Dropout(cfg.dropout)(x)
    outputs = keras.layers.Dense(spec.num_outputs, dtype="float32", name="head")(x)
    return keras.Model(inputs, outputs, name="rnn")
