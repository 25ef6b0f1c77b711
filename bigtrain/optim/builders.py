"""The optimizer builders: Keras 3 optimizers from their configs.

Weight decay is decoupled (Keras's `weight_decay`) and skips biases and normalization weights
(every variable of rank <= 1); `optim.ema > 0` keeps a moving average of the weights that
evaluation uses. Adam and AdamW update each variable with TensorFlow's fused `ApplyAdam`
kernel (one op instead of about ten; the same formula as Keras's).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bigtrain.optim import OPTIMIZERS
from bigtrain.optim.schemas import (
    AdafactorConfig,
    AdagradConfig,
    AdamConfig,
    AdamWConfig,
    LionConfig,
    RMSpropConfig,
    SGDConfig,
)


class _FusedAdamUpdate:
    """Keras's Adam step as one `ResourceApplyAdam` per variable: m += (g - m)(1 - b1),
    v += (g^2 - v)(1 - b2), var -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps), the
    formula of `keras.optimizers.Adam.update_step`, in one pass over memory. AMSGrad and
    variables that are not TensorFlow resource variables take Keras's own step."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or not hasattr(variable, "handle"):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.value.handle, v=v.value.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


@keras.saving.register_keras_serializable("bigtrain")
class FusedAdam(_FusedAdamUpdate, keras.optimizers.Adam):
    pass


@keras.saving.register_keras_serializable("bigtrain")
class FusedAdamW(_FusedAdamUpdate, keras.optimizers.AdamW):
    pass


def _common(cfg) -> dict:
    out = {}
    if cfg.weight_decay > 0:
        out["weight_decay"] = cfg.weight_decay
    if cfg.ema > 0:
        out.update(use_ema=True, ema_momentum=cfg.ema)
    return out


@OPTIMIZERS.register(SGDConfig)  # and MomentumConfig, its subclass
def build_sgd(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(learning_rate=lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                **_common(cfg))


@OPTIMIZERS.register(AdamConfig)
def build_adam(cfg, lr) -> keras.optimizers.Optimizer:
    return FusedAdam(learning_rate=lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                     epsilon=cfg.epsilon, **_common(cfg))


@OPTIMIZERS.register(AdamWConfig)
def build_adamw(cfg, lr) -> keras.optimizers.Optimizer:
    common = _common(cfg)
    common.setdefault("weight_decay", 0.0)
    return FusedAdamW(learning_rate=lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                      epsilon=cfg.epsilon, **common)


@OPTIMIZERS.register(AdagradConfig)
def build_adagrad(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adagrad(learning_rate=lr, epsilon=cfg.epsilon,
                                    initial_accumulator_value=cfg.initial_accumulator_value,
                                    **_common(cfg))


@OPTIMIZERS.register(RMSpropConfig)
def build_rmsprop(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.RMSprop(learning_rate=lr, rho=cfg.rho, momentum=cfg.momentum,
                                    epsilon=cfg.epsilon, centered=cfg.centered, **_common(cfg))


@OPTIMIZERS.register(LionConfig)
def build_lion(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.Lion(learning_rate=lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                 **_common(cfg))


@OPTIMIZERS.register(AdafactorConfig)
def build_adafactor(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adafactor(learning_rate=lr, beta_2_decay=cfg.beta_2_decay,
                                      epsilon_1=cfg.epsilon_1, epsilon_2=cfg.epsilon_2,
                                      clip_threshold=cfg.clip_threshold, **_common(cfg))


def exclude_from_decay(optimizer, model) -> None:
    """Biases, normalization scales and offsets (rank <= 1) are never decayed."""
    if getattr(optimizer, "weight_decay", None):
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
