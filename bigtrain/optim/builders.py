"""The optimizer builders. Weight decay is Keras's decoupled decay where set."""

from __future__ import annotations

import keras

from bigtrain.optim import OPTIMIZERS


def _decay(cfg) -> dict:
    return {"weight_decay": cfg.weight_decay} if cfg.weight_decay > 0 else {}


@OPTIMIZERS.register("sgd")
def build_sgd(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(learning_rate=lr, momentum=cfg.momentum,
                                nesterov=cfg.nesterov, **_decay(cfg))


@OPTIMIZERS.register("adam")
def build_adam(cfg, lr) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                 epsilon=cfg.epsilon, **_decay(cfg))
