"""The optimizer builders: Keras 3 optimizers from their configs.

Weight decay is decoupled (Keras's `weight_decay`) and skips biases and normalization weights
(every variable of rank <= 1); `optim.ema > 0` keeps a moving average of the weights that
evaluation uses.
"""

from __future__ import annotations

import keras

from bigtrain.optim import OPTIMIZERS


def _common(cfg) -> dict:
    out = {}
    if cfg.weight_decay > 0:
        out["weight_decay"] = cfg.weight_decay
    if cfg.ema > 0:
        out.update(use_ema=True, ema_momentum=cfg.ema)
    return out


@OPTIMIZERS.register("sgd")
@OPTIMIZERS.register("momentum")
def build_sgd(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(learning_rate=lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                **_common(cfg))


@OPTIMIZERS.register("adam")
def build_adam(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                 epsilon=cfg.epsilon, **_common(cfg))


@OPTIMIZERS.register("adamw")
def build_adamw(cfg, lr) -> keras.optimizers.Optimizer:
    common = _common(cfg)
    common.setdefault("weight_decay", 0.0)
    return keras.optimizers.AdamW(learning_rate=lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                  epsilon=cfg.epsilon, **common)


@OPTIMIZERS.register("adagrad")
def build_adagrad(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adagrad(learning_rate=lr, epsilon=cfg.epsilon,
                                    initial_accumulator_value=cfg.initial_accumulator_value,
                                    **_common(cfg))


@OPTIMIZERS.register("rmsprop")
def build_rmsprop(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.RMSprop(learning_rate=lr, rho=cfg.rho, momentum=cfg.momentum,
                                    epsilon=cfg.epsilon, centered=cfg.centered, **_common(cfg))


@OPTIMIZERS.register("lion")
def build_lion(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.Lion(learning_rate=lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                 **_common(cfg))


@OPTIMIZERS.register("adafactor")
def build_adafactor(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adafactor(learning_rate=lr, beta_2_decay=cfg.beta_2_decay,
                                      epsilon_1=cfg.epsilon_1, epsilon_2=cfg.epsilon_2,
                                      clip_threshold=cfg.clip_threshold, **_common(cfg))


def exclude_from_decay(optimizer, model) -> None:
    """Biases, normalization scales and offsets (rank <= 1) are never decayed."""
    if getattr(optimizer, "weight_decay", None):
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
