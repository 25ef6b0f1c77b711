"""bigtrain's kernels under Keras's own layers, for models bigtrain did not write (KerasHub
presets): `fuse(model)` makes the `Dense`, `EinsumDense`, `LayerNormalization`, `Dropout`
and `MultiHeadAttention` layers inside a model compute what they computed before, the way
bigtrain's own Transformer does (bigtrain.models.transformer):

- Dense on rows: an input [B, T, F] is reshaped to [B*T, F] for one 2-D MatMul, so the
  kernel's gradient is one matmul (Keras's batched matmul broadcasts the kernel over B, and
  its gradient makes B products and sums them), and bias + GELU (exact or tanh) is one fused
  pass each way.
- LoRA factored: a layer with adapters computes x W + s (x A) B instead of x (W + s A B), so
  the backward pass never forms the full-size gradient of W + s A B that Keras's merged
  kernel needs (W is frozen: only A and B take gradients).
- Layer norm over the last axis: statistics in float32, one fused pass each way.
- Dropout: drawing the mask, masking and scaling in one fused pass, the gradient in another
  (Keras draws uniform numbers with one op and masks with three more). The seed comes from
  the layer's own seed generator, which advances as Keras's would, so runs are reproducible
  and resume exactly; the masks themselves are not the ones Keras would draw.
- Attention: the scaled, masked softmax and the dropout of its weights in one fused pass
  each way, between the layer's own einsums.

Only the call is replaced, per layer instance, and only where the layer is of exactly that
class in a configuration the kernel covers (no quantization, last-axis norm with centre and
scale, ...): weights, variable paths, the RNG stream of dropout, configs and saved files are
the layers' own, so checkpoints, presets and exports are those of the unfused model.
Outside training (evaluation, export, generation) the results are Keras's to round-off.
"""

from __future__ import annotations

import re
from collections import Counter

import keras
import tensorflow as tf
from keras import ops

from bigtrain.models.kernels import (
    bias_gelu,
    dropout,
    layer_norm,
    masked_softmax,
    masked_softmax_dropout,
)


def _gelu_kind(activation):
    """True for tanh GELU, False for exact GELU, None for any other activation."""
    from keras_hub.src.utils.keras_utils import gelu_approximate

    if activation is keras.activations.gelu:
        return False
    if activation is gelu_approximate:
        return True
    return None


def _rows(x):
    """x [..., F] as rows [N, F] (`_unrows` restores the leading axes), or None if x is not
    a dense tensor of rank >= 2 with a known last axis."""
    if not isinstance(x, tf.Tensor) or x.shape.rank is None or x.shape.rank < 2 \
            or x.shape[-1] is None:
        return None
    return tf.reshape(x, (-1, x.shape[-1]))


def _unrows(y, x):
    out = tf.reshape(y, tf.concat([tf.shape(x)[:-1], tf.shape(y)[-1:]], 0))
    out.set_shape(x.shape[:-1].concatenate(y.shape[-1:]))
    return out


def _lora_scale(layer) -> float:
    return layer.lora_alpha / layer.lora_rank


def _dense_call(layer):
    original = layer.call
    gelu = _gelu_kind(layer.activation)

    def call(inputs, training=None):
        x = tf.convert_to_tensor(inputs) if not isinstance(inputs, tf.SparseTensor) else inputs
        rows = _rows(x)
        if rows is None or layer.quantization_mode is not None:
            return original(inputs, training=training)
        if layer.lora_enabled:
            w = ops.cast(layer._kernel, rows.dtype)
            a = ops.cast(layer.lora_kernel_a, rows.dtype)
            b = ops.cast(layer.lora_kernel_b, rows.dtype)
            h = tf.matmul(rows, w) + _lora_scale(layer) * tf.matmul(tf.matmul(rows, a), b)
        else:
            h = tf.matmul(rows, ops.cast(layer.kernel, rows.dtype))
        if layer.bias is not None and gelu is not None:
            h = bias_gelu(h, ops.cast(layer.bias, h.dtype), approximate=gelu)
        else:
            if layer.bias is not None:
                h = tf.nn.bias_add(h, ops.cast(layer.bias, h.dtype))
            if layer.activation is not None:
                h = layer.activation(h)
        return _unrows(h, x)

    return call


def _einsum_lora(equation: str) -> tuple[str, str] | None:
    """For an EinsumDense equation 'x,k->y' whose kernel's last letter appears in y, the two
    einsums of x A B: 'x,k'->y'' (A's rank letter in place of that letter) and 'y'',rL->y'."""
    m = re.fullmatch(r"([a-z.]+),([a-z]+)->([a-z.]+)", equation.replace(" ", ""))
    if m is None:
        return None
    x, k, y = m.groups()
    last = k[-1]
    if last not in y or last in x:
        return None
    r = next(c for c in "zyxwvutsrqponmlkjihgfedcba" if c not in x + k + y)
    y_r = y.replace(last, r)
    return f"{x},{k[:-1]}{r}->{y_r}", f"{y_r},{r}{last}->{y}"


def _einsum_dense_call(layer):
    original = layer.call
    lora = _einsum_lora(layer.equation)

    def call(inputs, training=None):
        if not (layer.lora_enabled and lora is not None and layer.quantization_mode is None):
            return original(inputs, training=training)
        x = tf.convert_to_tensor(inputs)
        w = ops.cast(layer._kernel, x.dtype)
        a = ops.cast(layer.lora_kernel_a, x.dtype)
        b = ops.cast(layer.lora_kernel_b, x.dtype)
        y = ops.einsum(layer.equation, x, w) + _lora_scale(layer) * ops.einsum(
            lora[1], ops.einsum(lora[0], x, a), b)
        if layer.bias is not None:
            y = y + ops.cast(layer.bias, y.dtype)
        if layer.activation is not None:
            y = layer.activation(y)
        return y

    return call


def _layer_norm_call(layer):
    original = layer.call

    def call(inputs):
        x = tf.convert_to_tensor(inputs)
        rank = x.shape.rank
        plain = (layer.center and layer.scale and not layer.rms_scaling and rank is not None
                 and [a % rank for a in layer.axis] == [rank - 1])
        if not plain:
            return original(inputs)
        y = layer_norm(x, ops.cast(layer.gamma, "float32"), ops.cast(layer.beta, "float32"),
                       float(layer.epsilon))
        return ops.cast(y, layer.compute_dtype)

    return call


def _seed(dropout_layer):
    """The next seed of a Keras Dropout layer's generator, as Keras's own dropout draws it."""
    from keras.src.backend.tensorflow.random import _cast_seed

    return _cast_seed(dropout_layer.seed_generator.next())


def _dropout_call(layer):
    original = layer.call

    def call(inputs, training=False):
        if not training or layer.noise_shape is not None or not 0.0 < layer.rate < 1.0:
            return original(inputs, training=training)
        return dropout(tf.convert_to_tensor(inputs), _seed(layer), float(layer.rate))

    return call


def _attention_call(layer):
    original = layer._compute_attention

    def compute(query, key, value, attention_mask=None, training=None,
                return_attention_scores=False, use_causal_mask=False):
        if len(layer._attention_axes) != 1 or len(query.shape) != 4:
            return original(query, key, value, attention_mask=attention_mask,
                            training=training, return_attention_scores=return_attention_scores,
                            use_causal_mask=use_causal_mask)
        if use_causal_mask:
            causal = layer._compute_causal_mask(query, value)
            attention_mask = causal if attention_mask is None else ops.logical_and(
                ops.cast(attention_mask, "bool"), causal)
        mask = tf.constant(True) if attention_mask is None else \
            ops.expand_dims(ops.cast(attention_mask, "bool"), axis=-3)  # [B, 1, T, S]
        scores = ops.einsum(layer._dot_product_equation, key, query)  # [B, N, T, S]
        scale = float(layer._inverse_sqrt_key_dim)
        rate = float(layer._dropout)
        if training and 0.0 < rate < 1.0:
            kept, weights = masked_softmax_dropout(scores, mask, scale,
                                                   _seed(layer._dropout_layer), rate)
        else:
            weights = masked_softmax(scores, mask, scale)
            kept = layer._dropout_layer(weights, training=training) if rate else weights
        out = ops.einsum(layer._combine_equation, kept, value)
        return out, (weights if return_attention_scores else None)

    return compute


def _set(layer, name: str, fn) -> None:
    # object.__setattr__: a plain instance attribute, out of Keras's attribute tracking
    object.__setattr__(layer, name, fn)


def fuse(model) -> dict[str, int]:
    """Swap the calls of the layers in `model` that bigtrain's kernels cover (see the module
    docstring); return how many layers of each kind now run them. Calling it twice changes
    nothing more."""
    mha = keras.layers.MultiHeadAttention
    counts: Counter = Counter()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if getattr(layer, "_bigtrain_fused", False):
            continue
        kind = type(layer)
        if kind is keras.layers.Dense:
            _set(layer, "call", _dense_call(layer))
            counts["dense"] += 1
        elif kind is keras.layers.EinsumDense:
            if layer.lora_enabled and _einsum_lora(layer.equation) is not None:
                _set(layer, "call", _einsum_dense_call(layer))
                counts["einsum_dense_lora"] += 1
            else:
                continue
        elif kind is keras.layers.LayerNormalization:
            _set(layer, "call", _layer_norm_call(layer))
            counts["layer_norm"] += 1
        elif kind is keras.layers.Dropout:
            _set(layer, "call", _dropout_call(layer))
            counts["dropout"] += 1
        elif isinstance(layer, mha) and kind._compute_attention is mha._compute_attention:
            _set(layer, "_compute_attention", _attention_call(layer))
            counts["attention"] += 1
        else:
            continue
        _set(layer, "_bigtrain_fused", True)
    return dict(counts)
