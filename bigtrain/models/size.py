"""How big a model is: parameters, bytes per precision, FLOPs per example, activation memory.

FLOPs come from TensorFlow's graph profiler on the frozen forward pass of one example (a
multiply-add counts 2); a training step is estimated at 3x the forward pass (backward ~ 2x).
Activation memory sums every top-level layer's output at the configured batch in the compute
dtype: what the forward pass keeps for the backward pass. A composite layer (a transformer
block) counts only its output, not its internals (the attention matrix, the MLP's hidden
activations), so for such models the figure is a lower bound.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: str
    params: int
    activations: int  # elements per example


@dataclass
class ModelSize:
    trainable: int
    non_trainable: int
    flops_forward: int  # per example
    activation_elements: int  # per example
    layers: list[LayerRow] = field(default_factory=list)

    @property
    def flops_train_step(self) -> int:
        return 3 * self.flops_forward

    def megabytes(self, precision: str) -> float:
        return (self.trainable + self.non_trainable) * BYTES[precision] / 2**20

    def activation_megabytes(self, batch: int, precision: str) -> float:
        return self.activation_elements * batch * BYTES[precision] / 2**20


def _count(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


def forward_flops(model, input_shape: tuple[int, ...], dtype: str) -> int:
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec((1, *input_shape), dtype))
    graph = convert_variables_to_constants_v2(concrete).graph
    opts = (tf.compat.v1.profiler.ProfileOptionBuilder(
        tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build())
    tf_log = logging.getLogger("tensorflow")
    level = tf_log.level
    tf_log.setLevel(logging.ERROR)  # the v1 profiler warns about its own deprecated helpers
    try:
        info = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(),
                                             cmd="op", options=opts)
    finally:
        tf_log.setLevel(level)
    return int(info.total_float_ops)


def _output_elements(layer) -> tuple[str, int]:
    try:
        outputs = tf.nest.flatten(layer.output)
    except (AttributeError, ValueError, RuntimeError):  # shared layers have several outputs
        return "(shared)", 0
    shapes = [tuple(o.shape) for o in outputs]
    elements = sum(int(np.prod([d for d in s[1:] if d is not None])) for s in shapes)
    shown = ", ".join(str(tuple(s[1:])) for s in shapes)
    return shown, elements


def measure(model, input_shape: tuple[int, ...], dtype: str) -> ModelSize:
    rows = []
    for layer in model.layers:
        shape, elements = _output_elements(layer)
        if type(layer).__name__ == "InputLayer":
            elements = 0
        rows.append(LayerRow(layer.name, type(layer).__name__, shape,
                             _count(layer.weights), elements))
    return ModelSize(trainable=_count(model.trainable_weights),
                     non_trainable=_count(model.non_trainable_weights),
                     flops_forward=forward_flops(model, input_shape, dtype),
                     activation_elements=sum(r.activations for r in rows), layers=rows)
