"""Strategy resolution: which tf.distribute strategy a run trains under."""

from __future__ import annotations

import logging

import tensorflow as tf

from bigtrain.config.errors import ConfigError
from bigtrain.registry import Registry

log = logging.getLogger("bigtrain")
STRATEGIES: Registry = Registry("strategy")


@STRATEGIES.register("cpu")
def cpu_strategy(cfg) -> tf.distribute.Strategy:
    return tf.distribute.OneDeviceStrategy("/cpu:0")


@STRATEGIES.register("auto")
def auto_strategy(cfg) -> tf.distribute.Strategy:
    """All local GPUs if several, the GPU if one, else the CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([g.name for g in gpus])
    if len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def build_strategy(cfg) -> tf.distribute.Strategy:
    strategy = STRATEGIES.get(cfg.name)(cfg)
    log.info("strategy %s: %s over %d replica(s)", cfg.name, type(strategy).__name__,
             strategy.num_replicas_in_sync)
    return strategy


def per_replica_batch(global_batch: int, strategy: tf.distribute.Strategy) -> int:
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ConfigError("trainer.batch_size", f"{global_batch} is not divisible by the "
                          f"{replicas} replicas; use a multiple of {replicas}")
    return global_batch // replicas
