"""The transformer's fused kernels (XLA islands with hand-written gradients) against plain
TensorFlow ops differentiated by autodiff."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import value_and_grads

from bigtrain.models.kernels import attention_weights, bias_gelu, layer_norm


def _close(a, b, tol):
    np.testing.assert_allclose(np.asarray(tf.cast(a, tf.float32)),
                               np.asarray(tf.cast(b, tf.float32)), rtol=tol, atol=tol)


def _data(shape, seed):
    return tf.random.stateless_normal(shape, seed=(seed, 0)) * 2.0


def test_bias_gelu_matches_exact_gelu_and_its_autodiff_gradient():
    h, b = _data((64, 48), 1), _data((48,), 2)
    y, (dh, db) = value_and_grads(bias_gelu, h, b)
    y_ref, (dh_ref, db_ref) = value_and_grads(
        lambda h, b: tf.nn.gelu(h + b, approximate=False), h, b)
    _close(y, y_ref, 1e-5)
    _close(dh, dh_ref, 1e-5)
    _close(db, db_ref, 1e-4)


def test_layer_norm_matches_the_textbook_formula_and_its_autodiff_gradient():
    x = _data((4, 16, 32), 3) + 3.0
    gamma, beta = 1.0 + 0.1 * _data((32,), 4), _data((32,), 5)

    def reference(x, gamma, beta):
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) / tf.sqrt(var + 1e-5) * gamma + beta

    y, grads = value_and_grads(lambda x, g, b: layer_norm(x, g, b, 1e-5), x, gamma, beta)
    y_ref, grads_ref = value_and_grads(reference, x, gamma, beta)
    _close(y, y_ref, 1e-5)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        _close(g, g_ref, 1e-4)


@pytest.mark.parametrize("causal,padded", [(True, False), (False, True), (True, True),
                                           (False, False)])
def test_attention_weights_match_a_masked_softmax_and_its_autodiff_gradient(causal, padded):
    scores = _data((2, 3, 8, 8), 6)
    pad = tf.constant([[True] * 8, [True] * 5 + [False] * 3]) if padded else None
    scale = 0.25

    def reference(s):
        s = s * scale
        t = s.shape[-1]
        if causal:
            s = tf.where(tf.linalg.band_part(tf.ones((t, t), tf.bool), -1, 0), s, -1e9)
        if pad is not None:
            s = tf.where(pad[:, None, None, :], s, -1e9)
        return tf.nn.softmax(s, axis=-1)

    w, (ds,) = value_and_grads(lambda s: attention_weights(s, scale, causal, pad), scores)
    w_ref, (ds_ref,) = value_and_grads(reference, scores)
    _close(w, w_ref, 1e-6)
    _close(ds, ds_ref, 1e-5)
    if causal:  # nothing flows to or from the future
        assert float(tf.reduce_max(w[..., 0, 1:])) == 0.0


def test_fused_kernels_keep_the_input_dtype_and_stay_close_in_bf16():
    h, b = _data((64, 48), 7), _data((48,), 8)
    y16 = bias_gelu(tf.cast(h, tf.bfloat16), tf.cast(b, tf.bfloat16))
    assert y16.dtype == tf.bfloat16
    _close(y16, tf.nn.gelu(h + b, approximate=False), 0.05)
    x = _data((8, 32), 9)
    ones, zeros = tf.ones((32,)), tf.zeros((32,))
    y = layer_norm(tf.cast(x, tf.bfloat16), ones, zeros, 1e-5)
    assert y.dtype == tf.bfloat16
    _close(y, layer_norm(x, ones, zeros, 1e-5), 0.05)


def test_fused_batch_norm_matches_keras_batch_norm():
    import keras

    from bigtrain.models.cnn import FusedBatchNorm

    x = _data((8, 5, 5, 6), 10) + 1.0
    layers = [FusedBatchNorm(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)]
    outs = []
    for layer in layers:
        layer.build(x.shape)
        layer.gamma.assign(1.0 + 0.1 * _data((6,), 11))
        layer.beta.assign(_data((6,), 12))
        y, grads = value_and_grads(lambda x, layer=layer: layer(x, training=True), x)
        layer(x * 0.5 + 2.0, training=True)  # a second update of the moving statistics
        outs.append((y, grads[0], layer.moving_mean.numpy(), layer.moving_variance.numpy(),
                     layer(x, training=False)))
    for ours, ref in zip(*outs, strict=True):
        _close(ours, ref, 1e-4)
    assert not np.allclose(outs[0][3], 1.0)  # the moving variance moved


def test_row_sums_are_matrix_vector_products_on_cpus_only(monkeypatch):
    from bigtrain.models import kernels as T

    x = _data((6, 128, 256), 6)
    assert T._row_sums_as_matvec()  # this machine: no GPU, no TPU
    lowered = T._layer_norm_fwd.experimental_get_compiler_ir(
        x, tf.ones((256,)), tf.zeros((256,)), tf.constant(1e-5))(stage="hlo")
    assert " dot(" in lowered  # the statistics' sums went through a matrix-vector product
    on_cpu = [T._layer_norm_fwd.python_function(x, 1.5, 0.5, 1e-5),
              *T._layer_norm_bwd.python_function(x, 1.5, 1e-5, x[::-1]),
              T._softmax32(x, x > 0, 0.125, -1e9), T._softmax_grad32(x, x[::-1], 0.125)]
    T._row_sums_as_matvec.cache_clear()
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: ["/device:GPU:0"] if kind == "GPU" else [])
    try:
        assert not T._row_sums_as_matvec()  # where a GPU is: XLA's reduce
        reduced = [T._layer_norm_fwd.python_function(x, 1.5, 0.5, 1e-5),
                   *T._layer_norm_bwd.python_function(x, 1.5, 1e-5, x[::-1]),
                   T._softmax32(x, x > 0, 0.125, -1e9), T._softmax_grad32(x, x[::-1], 0.125)]
    finally:
        T._row_sums_as_matvec.cache_clear()
    for a, b in zip(on_cpu, reduced, strict=True):
        _close(a, b, 2e-5)
