"""The strategy builders: a tf.distribute strategy from its config."""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from bigtrain.config.errors import ConfigError
from bigtrain.strategy import STRATEGIES

log = logging.getLogger("bigtrain")


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


@STRATEGIES.register("gpu")
def gpu_strategy(cfg) -> tf.distribute.Strategy:
    gpus = tf.config.list_physical_devices("GPU")
    if cfg.device >= len(gpus):
        raise ConfigError("strategy.device", f"GPU {cfg.device} does not exist; this machine "
                          + (f"has {len(gpus)} (0..{len(gpus) - 1})" if gpus else
                             "has no GPU that TensorFlow can use (see bigtrain env); use "
                             "strategy=cpu or strategy=auto"))
    return tf.distribute.OneDeviceStrategy(f"/gpu:{cfg.device}")


def cluster_resolver(cfg):
    """The cluster of a multi_worker run: TF_CONFIG, or SLURM's environment."""
    use_tf_config = cfg.cluster == "tf_config" or (cfg.cluster == "auto"
                                                  and os.environ.get("TF_CONFIG"))
    if use_tf_config:
        raw = os.environ.get("TF_CONFIG", "")
        try:
            spec = json.loads(raw)
            workers = spec["cluster"].get("worker", []) + spec["cluster"].get("chief", [])
            spec["task"]["type"], int(spec["task"]["index"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError("strategy.cluster", "TF_CONFIG is missing or not valid JSON of "
                              'the form {"cluster": {"worker": ["host:port", ...]}, "task": '
                              '{"type": "worker", "index": 0}}') from None
        if not workers:
            raise ConfigError("strategy.cluster", "TF_CONFIG names no workers")
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if cfg.cluster == "slurm" or "SLURM_JOB_ID" in os.environ:
        if "SLURM_PROCID" not in os.environ:
            raise ConfigError("strategy.cluster", "SLURM's task variables are not set: start "
                              "each worker with srun (one task per worker)")
        return tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=cfg.port_base, gpus_per_task=cfg.gpus_per_task or None)
    raise ConfigError("strategy.cluster", "multi_worker needs a cluster: set TF_CONFIG in "
                      "each worker (`bigtrain launch` does it on one machine) or start "
                      "the workers with srun under SLURM")


@STRATEGIES.register("multi_worker")
def multi_worker_strategy(cfg) -> tf.distribute.Strategy:
    resolver = cluster_resolver(cfg)
    impl = {"auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
            "ring": tf.distribute.experimental.CommunicationImplementation.RING,
            "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL}
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=impl[cfg.communication])
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver,
                                                     communication_options=options)


@STRATEGIES.register("tpu")
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
