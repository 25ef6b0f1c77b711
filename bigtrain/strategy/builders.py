"""The strategy builders: a tf.distribute strategy from its config."""

from __future__ import annotations

import logging
import os

import tensorflow as tf

from bigtrain.core.errors import ConfigError
from bigtrain.strategy import STRATEGIES, cluster
from bigtrain.strategy.devices import auto_devices
from bigtrain.strategy.schemas import (
    AutoStrategyConfig,
    CPUStrategyConfig,
    GPUStrategyConfig,
    MirroredStrategyConfig,
    MultiWorkerStrategyConfig,
    TPUStrategyConfig,
)

log = logging.getLogger("bigtrain")


@STRATEGIES.register(CPUStrategyConfig)
def cpu_strategy(cfg) -> tf.distribute.Strategy:
    return tf.distribute.OneDeviceStrategy("/cpu:0")


@STRATEGIES.register(AutoStrategyConfig)
def auto_strategy(cfg) -> tf.distribute.Strategy:
    """All local GPUs if several, the GPU if one, else the CPU (`devices.auto_devices`)."""
    chosen = auto_devices([g.name for g in tf.config.list_logical_devices("GPU")])
    if len(chosen) > 1:
        return tf.distribute.MirroredStrategy(chosen)
    return tf.distribute.OneDeviceStrategy(chosen[0])


@STRATEGIES.register(MirroredStrategyConfig)
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


@STRATEGIES.register(GPUStrategyConfig)
def gpu_strategy(cfg) -> tf.distribute.Strategy:
    gpus = tf.config.list_physical_devices("GPU")
    if cfg.device >= len(gpus):
        raise ConfigError("strategy.device", f"GPU {cfg.device} does not exist; this machine "
                          + (f"has {len(gpus)} (0..{len(gpus) - 1})" if gpus else
                             "has no GPU that TensorFlow can use (see bigtrain env); use "
                             "strategy=cpu or strategy=auto"))
    return tf.distribute.OneDeviceStrategy(f"/gpu:{cfg.device}")


def cluster_resolver(cfg):
    """The cluster of a multi_worker run: TF_CONFIG, or SLURM's environment (the same
    reading as `cluster.role`, which decides who the chief is)."""
    where = cluster.source(cfg.cluster)
    if where == "tf_config":
        try:
            cluster.tf_config()
        except ValueError as ex:
            raise ConfigError("strategy.cluster", str(ex)) from None
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if where == "slurm":
        if "SLURM_PROCID" not in os.environ:
            raise ConfigError("strategy.cluster", "SLURM's task variables are not set: start "
                              "each worker with srun (one task per worker)")
        return tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=cfg.port_base, gpus_per_task=cfg.gpus_per_task or None)
    raise ConfigError("strategy.cluster", "multi_worker needs a cluster: set TF_CONFIG in "
                      "each worker (`bigtrain launch` does it on one machine) or start "
                      "the workers with srun under SLURM")


@STRATEGIES.register(MultiWorkerStrategyConfig)
def multi_worker_strategy(cfg) -> tf.distribute.Strategy:
    resolver = cluster_resolver(cfg)
    impl = {"auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
            "ring": tf.distribute.experimental.CommunicationImplementation.RING,
            "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL}
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=impl[cfg.communication])
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver,
                                                     communication_options=options)


@STRATEGIES.register(TPUStrategyConfig)
def tpu_strategy(cfg) -> tf.distribute.Strategy:
    name = "local" if cfg.tpu in ("", "local") else cfg.tpu
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as ex:
        first = (getattr(ex, "message", None) or str(ex)).strip().splitlines()
        raise ConfigError("strategy.tpu", f"no TPU {name!r} could be reached ("
                          + (first[0][:160] if first else type(ex).__name__)
                          + "); run on a TPU VM (strategy.tpu=local) or name a TPU") from None
    return tf.distribute.TPUStrategy(resolver)


def build_strategy(cfg) -> tf.distribute.Strategy:
    strategy = STRATEGIES.build(cfg)
    log.info("strategy %s: %s over %d replica(s)", cfg.name, type(strategy).__name__,
             strategy.num_replicas_in_sync)
    return strategy


def per_replica_batch(global_batch: int, strategy: tf.distribute.Strategy) -> int:
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ConfigError("trainer.batch_size", f"{global_batch} is not divisible by the "
                          f"{replicas} replicas; use a multiple of {replicas}")
    return global_batch // replicas
