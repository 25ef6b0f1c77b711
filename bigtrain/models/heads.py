"""Layers that finish a model's output for its task."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="bigtrain")
class TargetScale(keras.layers.Layer):
    """`outputs * std + mean` with the training split's statistics of each regression target:
    constants of the model, not weights (nothing to train, nothing in the optimizer)."""

    def __init__(self, mean, std, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]

    def call(self, outputs):
        outputs = keras.ops.cast(outputs, "float32")
        return outputs * keras.ops.convert_to_tensor(self.std) + keras.ops.convert_to_tensor(
            self.mean)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "std": self.std}
