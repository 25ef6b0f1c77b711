"""The learning rate an optimizer reads every step: a base value or schedule, times a scale.

The scale is a variable saved in checkpoints, so the NaN guard can halve the learning rate on a
rollback and a resumed run keeps the halved value.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class ScaledLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, base, scale: float = 1.0):
        self.base = base
        self.scale = tf.Variable(float(scale), dtype=tf.float32, trainable=False, name="lr_scale")

    def __call__(self, step):
        base = self.base(step) if callable(self.base) else self.base
        return tf.cast(base, tf.float32) * self.scale

    def get_config(self) -> dict:
        base = self.base
        if isinstance(base, keras.optimizers.schedules.LearningRateSchedule):
            base = keras.optimizers.schedules.serialize(base)
        return {"base": base, "scale": float(self.scale.numpy())}
