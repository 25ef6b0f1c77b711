"""On a GPU (`pytest -m gpu`, run by scripts/device_check.sh): training on one GPU and
mirrored over every GPU found, the fused kernels and XLA islands (transformer.py, cnn.py)
against plain TensorFlow numerics on the GPU in fp32, bf16 and fp16, mixed-precision
training, and export and reload of a run trained there. Skipped where TensorFlow sees no GPU.

TensorFlow is imported by the `gpus` fixture, not at collection, so that
`pytest --collect-only -m gpu` (the device check's dry run) is quick.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from helpers import value_and_grads

pytestmark = pytest.mark.gpu

SMOKE = ["debug=smoke", "trainer.progress=none", "logger=[]"]
LM = ["dataset=synthetic", "dataset.task=lm", "dataset.vocab_size=128", "dataset.seq_len=64",
      "dataset.num_examples=1024", "model=transformer", "model.d_model=64",
      "model.num_layers=2", "model.num_heads=4", "trainer.batch_size=16",
      "trainer.max_steps=30", "trainer.eval_every=30", "trainer.log_every=10",
      "trainer.progress=none", "logger=[]", "trainer.seed=0"]


#: set by `scripts/device_check.sh --dry-run`: the kernel tests run on the CPU instead, so
#: their own code (a call with the wrong arguments) is checked where CI runs, not first on a GPU
DRY_RUN = os.environ.get("BIGTRAIN_GPU_DRY_RUN") == "1"


@pytest.fixture(scope="module")
def gpus():
    import tensorflow as tf

    found = tf.config.list_physical_devices("GPU")
    if not found:
        pytest.skip("TensorFlow sees no GPU here: scripts/device_check.sh runs these on one")
    return found


@pytest.fixture(scope="module")
def device() -> str:
    """Where the kernel tests run: the first GPU; in the device check's dry run without a GPU,
    the CPU."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "/GPU:0"
    if DRY_RUN:
        return "/CPU:0"
    pytest.skip("TensorFlow sees no GPU here: scripts/device_check.sh runs these on one")


def _train(args: list[str], run_dir):
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed
    from bigtrain.run.job import train

    return train(to_typed(compose(args)), run_dir)


def _on_gpu(x) -> bool:
    """Whether a tensor or a (Keras) variable lives on a GPU."""
    return "GPU" in getattr(x, "value", x).device.upper()


def _on(x, device: str) -> bool:
    """Whether a tensor lives on `device` ('/GPU:0', '/CPU:0')."""
    return device.strip("/").split(":")[0] in x.device.upper()


def test_a_run_trains_on_one_gpu(gpus, tmp_path):
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed
    from bigtrain.train.fit import build

    args = [*SMOKE, "strategy=gpu"]
    c = build(to_typed(compose(args)), tmp_path / "built")
    assert c.strategy.num_replicas_in_sync == 1 and _on_gpu(c.model.trainable_variables[0])
    summary = _train(args, tmp_path / "run")
    assert summary["status"] == "completed" and summary["steps"] == 6
    assert math.isfinite(summary["final"]["val_loss"])
    assert summary["timing"]["first_step_s"] > 0


def test_mirrored_trains_over_every_gpu_found(gpus, tmp_path):
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed
    from bigtrain.train.fit import build

    args = [*SMOKE, "strategy=mirrored", f"trainer.batch_size={16 * len(gpus)}"]
    c = build(to_typed(compose(args)), tmp_path / "built")
    assert c.strategy.num_replicas_in_sync == len(gpus)
    summary = _train(args, tmp_path / "run")
    assert summary["status"] == "completed" and math.isfinite(summary["final"]["loss"])


# ------------------------------------------------------------------ kernels against plain TF
TOL = {"float32": 1e-4, "bfloat16": 0.05, "float16": 0.01}


def _close(tf, a, b, tol):
    np.testing.assert_allclose(np.asarray(tf.cast(a, tf.float32)),
                               np.asarray(tf.cast(b, tf.float32)), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_fused_transformer_kernels_match_plain_tensorflow_on_the_gpu(device, dtype):
    import tensorflow as tf

    from bigtrain.models.kernels import attention_weights, bias_gelu, layer_norm

    tol = TOL[dtype]

    def data(shape, seed, shift=0.0):
        return tf.random.stateless_normal(shape, seed=(seed, 0)) * 2.0 + shift

    with tf.device(device):
        h, b = data((256, 192), 1), data((192,), 2)
        low = [tf.cast(v, dtype) for v in (h, b)]
        y, (dh, db) = value_and_grads(bias_gelu, *low)
        assert y.dtype == dtype and _on(y, device)
        y_ref, (dh_ref, db_ref) = value_and_grads(
            lambda h, b: tf.nn.gelu(h + b, approximate=False), h, b)
        _close(tf, y, y_ref, tol)
        _close(tf, dh, dh_ref, tol)
        _close(tf, db, db_ref, tol * 10)  # a sum over 256 rows

        x = data((8, 64, 96), 3, shift=3.0)
        gamma, beta = 1.0 + 0.1 * data((96,), 4), data((96,), 5)

        def reference(x, gamma, beta):
            mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
            return (x - mean) / tf.sqrt(var + 1e-5) * gamma + beta

        y, grads = value_and_grads(lambda x, g, b: layer_norm(tf.cast(x, dtype), g, b, 1e-5),
                          x, gamma, beta)
        y_ref, grads_ref = value_and_grads(reference, x, gamma, beta)
        assert y.dtype == dtype
        _close(tf, y, y_ref, tol)
        for g, g_ref in zip(grads, grads_ref, strict=True):
            _close(tf, g, g_ref, tol * 10)

        scores = data((2, 4, 32, 32), 6)

        def masked(s):
            s = s * 0.25
            causal = tf.linalg.band_part(tf.ones((32, 32), tf.bool), -1, 0)
            return tf.nn.softmax(tf.where(causal, s, -1e9), axis=-1)

        w, (ds,) = value_and_grads(lambda s: attention_weights(tf.cast(s, dtype), 0.25, True, None),
                          scores)
        w_ref, (ds_ref,) = value_and_grads(masked, scores)
        _close(tf, w, w_ref, tol)
        _close(tf, ds, ds_ref, tol)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_fused_batch_norm_matches_keras_batch_norm_on_the_gpu(device, dtype):
    import keras
    import tensorflow as tf

    from bigtrain.models.cnn import FusedBatchNorm

    with tf.device(device):
        x = tf.cast(tf.random.stateless_normal((16, 8, 8, 12), seed=(7, 0)) + 1.0, dtype)
        outs = []
        for layer in (FusedBatchNorm(momentum=0.9, dtype=keras.DTypePolicy(
                "mixed_float16" if dtype == "float16" else "float32")),
                      keras.layers.BatchNormalization(momentum=0.9, dtype=keras.DTypePolicy(
                          "mixed_float16" if dtype == "float16" else "float32"))):
            layer.build(x.shape)
            y, (dx,) = value_and_grads(lambda x, layer=layer: layer(x, training=True), x)
            outs.append((y, dx, layer.moving_mean.numpy(), layer(x, training=False)))
    for ours, ref in zip(*outs, strict=True):
        _close(tf, ours, ref, TOL[dtype] * 10)


def test_the_xla_compiled_step_trains_like_the_plain_one_on_the_gpu(gpus, tmp_path):
    plain = _train([*LM, "strategy=gpu", "strategy.precision=fp32"], tmp_path / "plain")
    xla = _train([*LM, "strategy=gpu", "strategy.precision=fp32", "strategy.jit_compile=true"],
                 tmp_path / "xla")
    assert xla["final"]["loss"] == pytest.approx(plain["final"]["loss"], rel=5e-3)
    assert xla["final"]["val_loss"] == pytest.approx(plain["final"]["val_loss"], rel=5e-3)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_like_fp32_on_the_gpu(gpus, tmp_path, precision):
    fp32 = _train([*LM, "strategy=gpu", "strategy.precision=fp32"], tmp_path / "fp32")
    mixed = _train([*LM, "strategy=gpu", f"strategy.precision={precision}"], tmp_path / precision)
    assert mixed["status"] == "completed" and mixed["nan_rollbacks"] == 0
    assert mixed["final"]["loss"] == pytest.approx(fp32["final"]["loss"], abs=0.05)
    assert mixed["final"]["val_loss"] == pytest.approx(fp32["final"]["val_loss"], abs=0.05)


def test_a_run_trained_on_the_gpu_exports_and_reloads(gpus, tmp_path):
    from helpers import check_eval_and_exports
    from omegaconf import OmegaConf

    from bigtrain.cli.hydra_glue import compose
    from bigtrain.run import rundir

    args = [*SMOKE, "strategy=gpu", "strategy.precision=fp32", "model=mlp"]
    rundir.write_config(tmp_path, OmegaConf.to_container(compose(args), resolve=True))
    check_eval_and_exports(tmp_path, _train(args, tmp_path), 1e-4)
