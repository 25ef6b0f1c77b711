"""How big a model is: parameters, bytes per precision, FLOPs per example, and the memory a
training step needs.

FLOPs come from TensorFlow's graph profiler on the frozen forward pass of one example (a
multiply-add counts 2); a training step is estimated at 3x the forward pass (backward ~ 2x).
Activation memory sums what the forward pass keeps for the backward pass: each top-level
layer's output, except that a layer which knows its internals (a transformer block:
attention weights, the MLP's hidden activations; see `saved_elements`) counts those instead,
plus the largest working set one layer's gradient needs and the float32 outputs the loss
keeps. The step's memory adds float32 weights (and their 16-bit copies), float32 gradients
and the optimizer's slots: an estimate of the peak, not a lower bound (the runtime itself,
~0.5 GB of host memory for TensorFlow, is not counted).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
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
    activation_elements: int  # per example, kept for the backward pass, compute dtype
    layers: list[LayerRow] = field(default_factory=list)
    activation_fp32_elements: int = 0  # per example, kept, float32 whatever the precision
    working_elements: tuple[int, int] = (0, 0)  # per example, (compute, float32), once

    @property
    def flops_train_step(self) -> int:
        return 3 * self.flops_forward

    def megabytes(self, precision: str) -> float:
        return (self.trainable + self.non_trainable) * BYTES[precision] / 2**20

    def activation_megabytes(self, batch: int, precision: str) -> float:
        return self.activation_bytes(batch, precision) / 2**20

    def activation_bytes(self, batch: int, precision: str) -> int:
        work, work32 = self.working_elements
        return batch * (BYTES[precision] * (self.activation_elements + work)
                        + 4 * (self.activation_fp32_elements + work32))

    def memory(self, batch: int, precision: str, slots: float) -> MemoryEstimate:
        """The peak of a training step at `batch` examples per replica (per micro-batch),
        with `slots` float32 optimizer values per trainable parameter."""
        copies = self.trainable * BYTES[precision] if BYTES[precision] != 4 else 0
        return MemoryEstimate(precision, 4 * (self.trainable + self.non_trainable) + copies,
                              4 * self.trainable, int(4 * self.trainable * slots),
                              self.activation_bytes(batch, precision))


@dataclass
class MemoryEstimate:
    """Bytes a training step holds at its peak, by what holds them."""

    precision: str
    weights: int  # float32 variables, plus the 16-bit copies a mixed-precision step casts
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations


def optimizer_slots(optim) -> float:
    """float32 values Keras's optimizer keeps per parameter (an `optim` config): Adam's two
    moments, momentum's velocity, ...; EMA adds a copy of the weights. Adafactor's factored
    rows and columns are small beside its full velocity."""
    name = optim.name
    slots = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2, "adagrad": 1, "rmsprop": 1,
             "lion": 1, "adafactor": 1}.get(name, 2)
    if name == "sgd" and getattr(optim, "momentum", 0) > 0:
        slots = 1
    if name == "rmsprop":
        slots += (getattr(optim, "momentum", 0) > 0) + bool(getattr(optim, "centered", False))
    return slots + (1 if getattr(optim, "ema", 0) > 0 else 0)


def device_memory(gpu: bool) -> tuple[str, int] | None:
    """(what, bytes) a run can use: the first GPU's memory (from nvidia-smi) or the host's
    available memory (/proc/meminfo); None where it is not known."""
    if gpu:
        smi = shutil.which("nvidia-smi")
        if not smi:
            return None
        try:
            out = subprocess.run([smi, "--query-gpu=memory.total", "--format=csv,noheader,"
                                  "nounits"], capture_output=True, text=True, timeout=10)
            return "GPU memory", int(out.stdout.split()[0]) * 2**20
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            return None
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return "available host memory", int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            return "host memory", os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None


def fits(estimate: MemoryEstimate, available: tuple[str, int] | None) -> str | None:
    """A warning when the estimated peak exceeds the device's memory, else None."""
    if available is None or estimate.total <= available[1]:
        return None
    what, limit = available
    return (f"this run may not fit: a training step needs about {gib(estimate.total)} "
            f"({estimate.precision}: weights {gib(estimate.weights)}, gradients "
            f"{gib(estimate.gradients)}, optimizer {gib(estimate.optimizer)}, activations "
            f"{gib(estimate.activations)}), {what} is {gib(limit)}; lower "
            "trainer.batch_size, raise trainer.grad_accum, set model.remat=true or "
            "strategy.precision=bf16")


def gib(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:.2f} GiB" if num_bytes >= 2**30 else f"{num_bytes / 2**20:.1f} MiB"


def _count(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


def forward_flops(model, input_shape: tuple[int, ...], dtype: str) -> int:
    """The profiler's count over the traced graph, whose tensors keep their static shapes (a
    frozen copy loses them after function calls such as custom gradients, and the profiler
    then skips the matmuls behind them: the transformer's count fell to a quarter)."""
    def forward(x):  # a def, not a lambda: AutoGraph cannot read a lambda's source here
        return model(x, training=False)

    spec = tf.TensorSpec((1, *input_shape), dtype)
    graph = tf.function(forward).get_concrete_function(spec).graph
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


def activations(model) -> tuple[list[LayerRow], int, int, tuple[int, int]]:
    """Per-layer rows and the per-example elements a training step keeps: (rows, compute
    dtype, float32, working set once). Layers with `saved_elements(tokens)` (transformer
    blocks) count their internals; the model's outputs count twice in float32 (the logits
    and the loss's softmax of them)."""
    rows, kept, kept32, work = [], 0, 0, (0, 0)
    for layer in model.layers:
        shape, elements = _output_elements(layer)
        if type(layer).__name__ == "InputLayer":
            elements = 0
        inside = getattr(layer, "saved_elements", None)
        if inside is not None:
            (elements, fp32), working = inside(int(layer.output.shape[1]))
            kept32 += fp32
            if sum(working) > sum(work):
                work = working
        rows.append(LayerRow(layer.name, type(layer).__name__, shape,
                             _count(layer.weights), elements))
        kept += elements
    outputs = sum(int(np.prod([d for d in o.shape[1:] if d is not None]))
                  for o in tf.nest.flatten(model.outputs))
    return rows, kept, kept32 + 2 * outputs, work


def measure(model, input_shape: tuple[int, ...], dtype: str, flops: bool = True) -> ModelSize:
    """The model's size; `flops=False` skips the graph profiler (for a quick memory check)."""
    rows, kept, kept32, work = activations(model)
    return ModelSize(trainable=_count(model.trainable_weights),
                     non_trainable=_count(model.non_trainable_weights),
                     flops_forward=forward_flops(model, input_shape, dtype) if flops else 0,
                     activation_elements=kept, layers=rows, activation_fp32_elements=kept32,
                     working_elements=work)


def memory_warning(model, batch: int, precision: str, optim, gpu: bool) -> str | None:
    """The warning `fits` gives for this model's training step on this machine, or None."""
    size = measure(model, (), "float32", flops=False)
    return fits(size.memory(batch, precision, optimizer_slots(optim)), device_memory(gpu))
