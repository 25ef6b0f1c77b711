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


@STRATEGIES.register("mirrored")
def mirrored_strategy(cfg) -> tf.distribute.Strategy:
    """MirroredStrategy over local GPUs, or over logical CPU devices where there are none."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        chosen = cfg.devices or list(range(len(gpus)))
        bad = [i for i in chosen if i >= len(gpus)]
        if bad:
            raise ConfigError("strategy.devices", f"GPU {bad[0]} does not exist; this machine "
                              f"has {len(gpus)} (0..{len(gpus) - 1})")
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in chosen])
    n = cfg.logical_cpus
    if n < 1:
        raise ConfigError("strategy.logical_cpus", "there is no GPU here; set it to the number "
                          "of logical CPU devices to mirror over (e.g. 2), or use strategy=cpu")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if not current or len(current) != n:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
        except RuntimeError as ex:
            raise ConfigError("strategy.logical_cpus", "TensorFlow was initialized before "
                              "the CPU could be split; the split must come first in the "
                              "process (run bigtrain fit in a fresh process)") from ex
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(n)])


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
