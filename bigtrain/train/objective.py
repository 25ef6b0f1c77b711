"""Loss and metrics per task, as sums that add up exactly across steps, replicas and workers.

Each step returns a small vector of sums (loss, count, correct, ...); the loop adds vectors and
`finalize` turns a total into metrics. Nothing depends on Keras metric state under a strategy.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


class Objective:
    """Cross-entropy for classification and language models; MSE for regression."""

    def __init__(self, task: str):
        self.task = task
        self.stat_names = ["loss_sum", "count", "correct" if task != "regression" else "abs_err"]

    def per_example_loss(self, y: tf.Tensor, out: tf.Tensor) -> tf.Tensor:
        out = tf.cast(out, tf.float32)
        if self.task == "regression":
            y = tf.cast(tf.reshape(y, tf.shape(out)), tf.float32)
            return tf.reduce_mean(tf.square(out - y), axis=-1)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32),
                                                              logits=out)

    def stats(self, y: tf.Tensor, out: tf.Tensor, per_example: tf.Tensor) -> tf.Tensor:
        out = tf.cast(out, tf.float32)
        count = tf.cast(tf.size(per_example), tf.float32)
        if self.task == "regression":
            y = tf.cast(tf.reshape(y, tf.shape(out)), tf.float32)
            third = tf.reduce_sum(tf.reduce_mean(tf.abs(out - y), axis=-1))
        else:
            pred = tf.argmax(out, axis=-1, output_type=tf.int32)
            third = tf.reduce_sum(tf.cast(tf.equal(pred, tf.cast(y, tf.int32)), tf.float32))
        return tf.stack([tf.reduce_sum(per_example), count, third])

    def finalize(self, totals: np.ndarray, prefix: str = "") -> dict[str, float]:
        loss_sum, count, third = (float(v) for v in totals)
        if count == 0:
            return {}
        loss = loss_sum / count
        out = {f"{prefix}loss": loss}
        if self.task == "regression":
            out[f"{prefix}mae"] = third / count
        else:
            out[f"{prefix}accuracy"] = third / count
        if self.task == "lm":
            out[f"{prefix}perplexity"] = math.exp(min(loss, 50.0))
        return out
