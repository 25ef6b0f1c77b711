"""The elementwise kernels of bigtrain's Transformer, each a small XLA-compiled island with a
hand-written gradient: bias + GELU (exact GELU through `erf`), layer norm, the scaled and masked
softmax, dropout and softmax + dropout. Float32 math inside, the compute dtype (e.g. bf16) in
and out, one pass over memory each way; matmuls stay with oneDNN. Shared by the Transformer's
layers (transformer.py) and by what fuses a KerasHub backbone (fuse.py)."""

from __future__ import annotations

import functools
import math

import tensorflow as tf

NEG_INF = -1e9


def _fused(fn):
    """An elementwise island compiled by XLA: one pass over memory instead of one per op.
    Only elementwise work and row reductions go in; matmuls stay with oneDNN (XLA runs bf16
    matmuls in fp32 on CPUs)."""
    return tf.function(fn, jit_compile=True, autograph=False)


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


_TANH_C = math.sqrt(2.0 / math.pi)


def _gelu_parts(h, b, approximate: bool):
    """z = h + b in float32, GELU's Gaussian CDF at z, and that CDF's derivative times z (so
    that GELU'(z) = cdf + z_dcdf)."""
    z = tf.cast(h, tf.float32) + tf.cast(b, tf.float32)
    if approximate:  # tanh form, as tf.nn.gelu(approximate=True) and GPT-2
        t = tf.tanh(_TANH_C * (z + 0.044715 * z * z * z))
        return z, 0.5 + 0.5 * t, 0.5 * z * (1.0 - t * t) * _TANH_C * (1.0 + 0.134145 * z * z)
    return z, 0.5 + 0.5 * tf.math.erf(z * _SQRT_HALF), z * tf.exp(-0.5 * z * z) * _INV_SQRT_2PI


@_fused
def _bias_gelu_fwd(h, b, approximate):
    z, cdf, _ = _gelu_parts(h, b, approximate)
    return tf.cast(z * cdf, h.dtype)


@_fused
def _bias_gelu_bwd(h, b, dy, approximate):
    _, cdf, z_dcdf = _gelu_parts(h, b, approximate)
    dz = tf.cast(dy, tf.float32) * (cdf + z_dcdf)
    rows = list(range(h.shape.rank - 1))
    return tf.cast(dz, h.dtype), tf.cast(tf.reduce_sum(dz, axis=rows), b.dtype)


def bias_gelu(hidden, bias, approximate: bool = False):
    """GELU of `hidden + bias` (hidden: [..., F], bias: [F]), exact through erf (not erfc,
    4-25x slower here) or in tanh form with `approximate`, in float32 whatever the dtype of
    `hidden`, with a hand-written gradient; forward and backward are one fused pass each, the
    bias gradient included."""

    @tf.custom_gradient
    def _gelu(h, b):
        return _bias_gelu_fwd(h, b, approximate), \
            lambda dy: _bias_gelu_bwd(h, b, dy, approximate)

    return _gelu(hidden, bias)


@functools.cache
def _row_sums_as_matvec() -> bool:
    """Whether this process sums rows as matrix-vector products (`_row_sum`): only where it
    has no GPU or TPU. A GPU's XLA may multiply float32 in TF32 and a TPU's in bf16 passes,
    which would round what layer norm's statistics are computed from; their reduce emitters
    are fast anyway."""
    return not (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def _row_sum(x32, scale: float = 1.0):
    """`scale` times the sum of float32 x over its last axis (keepdims). On CPUs as a product
    with a vector of `scale`s: XLA reduces a row of the minor axis in one scalar chain there,
    and runs the matrix-vector product vectorised: forward + backward, layer norm's islands
    on [4096, 256] 1.5-1.6x faster, the softmax's on [32, 4, 128, 128] 1.2-1.4x, on an AMD
    EPYC (scripts/bench_islands.py)."""
    if not _row_sums_as_matvec():
        return tf.reduce_sum(x32, axis=-1, keepdims=True) * scale
    d = x32.shape[-1]
    rows = tf.reshape(x32, (-1, d))
    out = tf.matmul(rows, tf.fill((d, 1), tf.constant(scale, tf.float32)))
    return tf.reshape(out, tf.concat([tf.shape(x32)[:-1], [1]], 0))


def _row_mean(x32):
    return _row_sum(x32, 1.0 / x32.shape[-1])


def _moments(x32, epsilon):
    centered = x32 - _row_mean(x32)
    rstd = tf.math.rsqrt(_row_mean(tf.square(centered)) + epsilon)
    return centered * rstd, rstd


@_fused
def _layer_norm_fwd(x, gamma, beta, epsilon):
    xhat, _ = _moments(tf.cast(x, tf.float32), epsilon)
    return tf.cast(xhat * gamma + beta, x.dtype)


@_fused
def _layer_norm_bwd(x, gamma, epsilon, dy):
    xhat, rstd = _moments(tf.cast(x, tf.float32), epsilon)
    dy32 = tf.cast(dy, tf.float32)
    rows = list(range(x.shape.rank - 1))
    g = dy32 * gamma
    dx = rstd * (g - _row_mean(g) - xhat * _row_mean(g * xhat))
    return (tf.cast(dx, x.dtype), tf.reduce_sum(dy32 * xhat, axis=rows),
            tf.reduce_sum(dy32, axis=rows))


def layer_norm(x, gamma, beta, epsilon: float):
    """Layer norm over the last axis, statistics in float32, output in the dtype of x; a
    hand-written gradient that recomputes the statistics, one fused pass each way."""
    eps = tf.constant(epsilon, tf.float32)

    @tf.custom_gradient
    def _ln(x, gamma, beta):
        return _layer_norm_fwd(x, gamma, beta, eps), \
            lambda dy: _layer_norm_bwd(x, gamma, eps, dy)

    return _ln(x, gamma, beta)


def _softmax32(scores, mask, scale, masked):
    """softmax(scale * scores) in float32, `masked` before it where `mask` is False."""
    z = tf.where(mask, tf.cast(scores, tf.float32) * scale, masked)
    e = tf.exp(z - tf.reduce_max(z, axis=-1, keepdims=True))
    return e / _row_sum(e)


def _softmax_grad32(w, d, scale):
    """The scores' gradient (float32) of softmax(scale * scores) = w for the weights' d."""
    return scale * w * (d - _row_sum(d * w))


@_fused
def _softmax_fwd(scores, mask, scale, masked):
    return tf.cast(_softmax32(scores, mask, scale, masked), scores.dtype)


@_fused
def _softmax_bwd(weights, dw, scale):
    return tf.cast(_softmax_grad32(tf.cast(weights, tf.float32), tf.cast(dw, tf.float32),
                                   scale), dw.dtype)


def masked_softmax(scores, mask, scale: float):
    """softmax(scale * scores) over the last axis where `mask` (bool, broadcastable to the
    scores) is True, -1e9 before the softmax where it is False; float32 inside, output in the
    dtype of the scores; one fused pass each way."""
    scale_t = tf.constant(scale, tf.float32)

    @tf.custom_gradient
    def _weights(scores):
        w = _softmax_fwd(scores, mask, scale_t, tf.constant(NEG_INF, tf.float32))
        return w, lambda dw: _softmax_bwd(w, dw, scale_t)

    return _weights(scores)


def _keep_mask(shape, seed, rate):
    """Which elements dropout keeps: uniform draws >= rate from the counter-based ThreeFry
    generator (XLA's default Philox runs over 100x slower on CPUs)."""
    return tf.random.stateless_uniform(shape, seed, dtype=tf.float32, alg="threefry") >= rate


def _kept32(keep, x, rate):
    """x in float32 where `keep`, scaled by 1 / (1 - rate); 0 elsewhere."""
    return tf.where(keep, tf.cast(x, tf.float32) * (1.0 / (1.0 - rate)), 0.0)


@_fused
def _dropout_fwd(x, seed, rate):
    keep = _keep_mask(tf.shape(x), seed, rate)
    return tf.cast(_kept32(keep, x, rate), x.dtype), keep


@_fused
def _dropout_bwd(dy, keep, rate):
    return tf.cast(_kept32(keep, dy, rate), dy.dtype)


def dropout(x, seed, rate: float):
    """Inverted dropout of x (each element zeroed with probability `rate`, the rest scaled
    by 1 / (1 - rate)), its mask drawn from `seed` (int32 [2]): drawing, masking and scaling
    in one fused pass, the mask kept (one byte per element) for the gradient."""
    if rate <= 0.0:
        return x

    @tf.custom_gradient
    def _drop(x):
        y, keep = _dropout_fwd(x, seed, rate)
        return y, lambda dy: _dropout_bwd(dy, keep, rate)

    return _drop(x)


@_fused
def _softmax_dropout_fwd(scores, mask, scale, masked, seed, rate):
    w = _softmax32(scores, mask, scale, masked)
    keep = _keep_mask(tf.shape(w), seed, rate)
    return tf.cast(_kept32(keep, w, rate), scores.dtype), tf.cast(w, scores.dtype), keep


@_fused
def _softmax_dropout_bwd(weights, keep, dy, scale, rate):
    return tf.cast(_softmax_grad32(tf.cast(weights, tf.float32), _kept32(keep, dy, rate),
                                   scale), dy.dtype)


def masked_softmax_dropout(scores, mask, scale: float, seed, rate: float):
    """`masked_softmax` followed by `dropout` of its weights, in one fused pass each way;
    returns (dropped weights, weights). The gradient flows through the dropped weights only:
    the weights are returned for inspection (`return_attention_scores`)."""
    scale_t = tf.constant(scale, tf.float32)
    neg = tf.constant(NEG_INF, tf.float32)
    out = {}

    @tf.custom_gradient
    def _weights(scores):
        dropped, w, keep = _softmax_dropout_fwd(scores, mask, scale_t, neg, seed, rate)
        out["weights"] = w
        return dropped, lambda dy: _softmax_dropout_bwd(w, keep, dy, scale_t, rate)

    dropped = _weights(scores)
    return dropped, out["weights"]


def attention_weights(scores, scale: float, causal: bool, pad_mask=None, segments=None):
    """softmax(scale * scores) over the last axis, with future positions (`causal`), padded
    keys (`pad_mask` [B, T] True where real) and, in a packed batch, the keys of other
    examples (`segments` [B, T]: a query sees keys of its own segment only) masked out (see
    `masked_softmax`). Every query keeps at least itself, so no row is empty."""
    t = scores.shape[-1]
    mask = tf.constant(True)
    if causal:
        mask = tf.linalg.band_part(tf.ones((t, t), tf.bool), -1, 0)
    if pad_mask is not None:
        mask = tf.logical_and(mask, pad_mask[:, None, None, :])
    if segments is not None:
        mask = tf.logical_and(mask, tf.equal(segments[:, None, :, None],
                                             segments[:, None, None, :]))
    return masked_softmax(scores, mask, scale)
