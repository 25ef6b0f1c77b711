"""Schemas of the `strategy` group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

from bigtrain.core.errors import ConfigError, check, check_choice
from bigtrain.core.schema import GroupSchema

#: auto: bf16 where the hardware has it natively, else fp32 (bigtrain.strategy.devices)
PRECISIONS = ["auto", "fp32", "bf16", "fp16"]


@dataclass
class StrategyConfig(GroupSchema):
    group: ClassVar[str] = "strategy"
    name: str = MISSING
    precision: str = "auto"  # auto: bf16 where the hardware has it natively, else fp32
    jit_compile: bool = False  # compile the train step with XLA
    # FLOP/s one device (a GPU, a TPU replica, a host's CPUs) peaks at in the run's precision,
    # for MFU; 0: a table for known GPUs and TPUs, a cached matmul benchmark for CPUs
    peak_flops: float = 0.0

    def validate(self) -> None:
        check_choice(self.key("precision"), self.precision, PRECISIONS)
        check(self.peak_flops >= 0, self.key("peak_flops"), self.peak_flops,
              "must be >= 0 FLOP/s (e.g. 312e12; 0: known or measured)")


@dataclass
class AutoStrategyConfig(StrategyConfig):
    name: str = "auto"


@dataclass
class CPUStrategyConfig(StrategyConfig):
    name: str = "cpu"


@dataclass
class MirroredStrategyConfig(StrategyConfig):
    """All (or the listed) local GPUs; on a machine without GPUs, `logical_cpus` splits the
    CPU into that many devices (for testing the distributed path)."""

    name: str = "mirrored"
    devices: list[int] = field(default_factory=list)  # GPU indices; empty = all
    logical_cpus: int = 0  # > 0 and no GPU: mirror over this many logical CPU devices

    def validate(self) -> None:
        super().validate()
        check(self.logical_cpus >= 0, self.key("logical_cpus"), self.logical_cpus,
              "must be >= 0")


@dataclass
class GPUStrategyConfig(StrategyConfig):
    """One GPU (OneDeviceStrategy)."""

    name: str = "gpu"
    device: int = 0  # the GPU's index

    def validate(self) -> None:
        super().validate()
        check(self.device >= 0, self.key("device"), self.device, "must be >= 0")


@dataclass
class MultiWorkerStrategyConfig(StrategyConfig):
    """MultiWorkerMirroredStrategy over the hosts of a cluster. The cluster comes from
    TF_CONFIG (`bigtrain launch` writes it) or from SLURM's environment (srun)."""

    name: str = "multi_worker"
    cluster: str = "auto"  # auto (TF_CONFIG, else SLURM) | tf_config | slurm
    communication: str = "auto"  # auto | ring | nccl: the collective implementation
    port_base: int = 8888  # SLURM: first port of the workers' gRPC servers
    gpus_per_task: int = 0  # SLURM: GPUs each task sees (0: let SLURM say)

    def validate(self) -> None:
        super().validate()
        check_choice(self.key("cluster"), self.cluster, ["auto", "tf_config", "slurm"])
        check_choice(self.key("communication"), self.communication, ["auto", "ring", "nccl"])
        check(1024 <= self.port_base < 65000, self.key("port_base"), self.port_base,
              "must be a port in [1024, 65000)")
        check(self.gpus_per_task >= 0, self.key("gpus_per_task"), self.gpus_per_task,
              "must be >= 0")


@dataclass
class TPUStrategyConfig(StrategyConfig):
    """TPUStrategy through a TPUClusterResolver."""

    name: str = "tpu"
    tpu: str = ""  # the TPU's name or grpc:// address; "" or local: the TPU VM's own TPU


@dataclass
class ParameterServerStrategyConfig(StrategyConfig):
    """Refused with a reason: Keras 3 does not train under ParameterServerStrategy."""

    name: str = "parameter_server"

    def validate(self) -> None:
        raise ConfigError("strategy", "parameter_server is not supported: Keras 3 models do "
                          "not train under tf.distribute.ParameterServerStrategy. Use "
                          "strategy=multi_worker (synchronous data parallel over hosts)")
