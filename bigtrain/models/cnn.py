"""A small ResNet-style CNN: residual blocks with batch norm; 2-D for images, 1-D for vectors.

Batch norm on images goes through TensorFlow's fused kernel (`FusedBatchNorm`)."""

from __future__ import annotations

import keras
import tensorflow as tf

from bigtrain.core.errors import ConfigError
from bigtrain.models import MODELS
from bigtrain.models.schemas import CNNConfig


@keras.saving.register_keras_serializable("bigtrain")
class FusedBatchNorm(keras.layers.BatchNormalization):
    """Keras's BatchNormalization, computed on channels-last images by TensorFlow's fused
    kernel (FusedBatchNormV3; oneDNN on CPUs): one op forward and one backward instead of a
    dozen. The statistics, the moving averages (of the biased batch variance) and the weights
    are Keras's. Other ranks and dtypes, masks, renorm and synchronized statistics take
    Keras's path."""

    def _fusable(self, inputs, mask) -> bool:
        return (len(inputs.shape) == 4 and self.axis in (-1, 3) and mask is None
                and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16)
                and not self.renorm and not self.synchronized and self.scale and self.center
                and self.epsilon > 1.001e-5)  # TensorFlow raises smaller epsilons to that

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = inputs
        if training and self.trainable:
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(
                x, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
            var = var * (n - 1.0) / tf.maximum(n, 2.0)  # the kernel's is Bessel-corrected
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + var * (1.0 - m))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, self.gamma, self.beta, mean=self.moving_mean,
                variance=self.moving_variance, epsilon=self.epsilon, is_training=False)
        return tf.cast(y, self.compute_dtype)

    def standard_equivalent(self) -> keras.layers.BatchNormalization:
        """Keras's own BatchNormalization with this layer's config (the same weights fit it):
        what `bigtrain export --format keras` writes, so the file loads without bigtrain."""
        return keras.layers.BatchNormalization.from_config(self.get_config())


def _block(x, width: int, stride: int, cfg, conv, name: str):
    """conv-bn-act-conv-bn plus a (projected) shortcut, then the activation."""
    shortcut = x
    y = conv(width, cfg.kernel_size, strides=stride, padding="same", use_bias=False,
             name=f"{name}_conv1")(x)
    y = FusedBatchNorm(momentum=cfg.bn_momentum, name=f"{name}_bn1")(y)
    y = keras.layers.Activation(cfg.activation)(y)
    y = conv(width, cfg.kernel_size, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = FusedBatchNorm(momentum=cfg.bn_momentum, name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != width:
        shortcut = conv(width, 1, strides=stride, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = FusedBatchNorm(momentum=cfg.bn_momentum, name=f"{name}_proj_bn")(shortcut)
    return keras.layers.Activation(cfg.activation)(keras.layers.Add()([y, shortcut]))


@MODELS.register(CNNConfig)
def build_cnn(cfg, spec) -> keras.Model:
    if spec.task == "lm":
        raise ConfigError("model", "model=cnn does not model language (dataset task 'lm'); "
                          "use model=mlp")
    rank = len(spec.input_shape)
    if rank not in (1, 2, 3):
        raise ConfigError("model", f"model=cnn takes vectors or images, got input shape "
                          f"{spec.input_shape}")
    inputs = keras.Input(shape=spec.input_shape, dtype=spec.input_dtype, name="inputs")
    x = inputs
    if spec.input_dtype.startswith("int"):  # token ids: 1-D convolutions over embeddings
        vocab = cfg.vocab_size or spec.input_vocab
        if rank != 1 or vocab <= 0:
            raise ConfigError("model.vocab_size", "set it to the token vocabulary size for "
                              "model=cnn over token sequences")
        x = keras.layers.Embedding(vocab, cfg.widths[0], name="embed")(x)
    elif rank in (1, 2):  # vectors become 1-D signals, (H, W) images get one channel
        x = keras.layers.Reshape((*spec.input_shape, 1))(x)  # add a channel axis
    two_d = len(x.shape) == 4
    conv = keras.layers.Conv2D if two_d else keras.layers.Conv1D
    pool = keras.layers.GlobalAveragePooling2D if two_d else keras.layers.GlobalAveragePooling1D

    x = conv(cfg.widths[0], cfg.kernel_size, padding="same", use_bias=False, name="stem")(x)
    x = FusedBatchNorm(momentum=cfg.bn_momentum, name="stem_bn")(x)
    x = keras.layers.Activation(cfg.activation)(x)
    for s, width in enumerate(cfg.widths):
        for b in range(cfg.blocks_per_stage):
            stride = 2 if (b == 0 and s > 0 and min(x.shape[1:-1]) > 1) else 1
            x = _block(x, width, stride, cfg, conv, name=f"stage{s}_block{b}")
    x = pool(name="pool")(x)
    if cfg.dropout > 0:
        x = keras.layers.Dropout(cfg.dropout)(x)
    outputs = keras.layers.Dense(spec.num_outputs, name="head")(x)
    return keras.Model(inputs, outputs, name="cnn")
