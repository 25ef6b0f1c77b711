"""What this machine offers for training: CPU features, accelerators, native precisions.

The CPU part reads /proc/cpuinfo (Linux) and needs no TensorFlow; the device part asks
TensorFlow. `bigtrain env` prints both; strategy and precision choices read them.
"""

from __future__ import annotations

import platform
from pathlib import Path

#: CPU flags that matter for training speed, as /proc/cpuinfo spells them
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile", "amx_bf16", "amx_fp16")


def cpu_flags() -> set[str]:
    """The training-relevant flags of this CPU (empty where /proc/cpuinfo is not there)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split()) & set(CPU_FLAGS)
    return set()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_native_bf16(flags: set[str] | None = None) -> bool:
    """bf16 dot products in hardware (AVX512-BF16 or AMX-BF16), which oneDNN uses."""
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def gpu_capabilities() -> list[tuple[str, tuple[int, int] | None]]:
    """(name, compute capability) of each GPU TensorFlow sees (imports TensorFlow)."""
    import tensorflow as tf

    out = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        out.append((details.get("device_name", gpu.name), details.get("compute_capability")))
    return out


def precision_support(gpus: list[tuple[str, tuple[int, int] | None]],
                      flags: set[str]) -> dict[str, str]:
    """Each precision on this machine's default device: native, emulated (works, slower
    than fp32), or the reason it is not advised."""
    if gpus:
        cc = min((c for _, c in gpus if c), default=None)
        bf16 = "native" if cc and cc >= (8, 0) else "emulated (needs compute capability 8.0)"
        fp16 = "native (tensor cores)" if cc and cc >= (7, 0) else "native, no tensor cores"
        return {"fp32": "native", "bf16": bf16, "fp16": fp16}
    bf16 = ("native (" + ", ".join(sorted(flags & {"avx512_bf16", "amx_bf16"})) + ")"
            if cpu_native_bf16(flags) else "emulated (no AVX512-BF16/AMX on this CPU)")
    return {"fp32": "native", "bf16": bf16,
            "fp16": "emulated on CPUs (slower than fp32)" + (
                "" if "avx512_fp16" not in flags else "; AVX512-FP16 present")}


def auto_devices(gpus: list[str]) -> list[str]:
    """The devices `strategy=auto` trains on, given the GPUs' device names: every GPU
    (mirrored when there are several), else the CPU. The strategy builder and `bigtrain env`
    both ask this."""
    return list(gpus) if gpus else ["/cpu:0"]


def auto_strategy_choice(n_gpus: int) -> str:
    """What `strategy=auto` resolves to with this many GPUs, in words."""
    chosen = auto_devices([f"/gpu:{i}" for i in range(n_gpus)])
    if len(chosen) > 1:
        return f"MirroredStrategy over {len(chosen)} GPUs"
    return f"OneDeviceStrategy on {chosen[0]}"


def auto_precision(strategy_name: str, gpus=None, flags=None, recurrent: bool = False
                   ) -> tuple[str, str]:
    """What `strategy.precision=auto` picks, and why (a few words for the log): bf16 where
    the hardware computes it natively (TPUs, GPUs of compute capability 8.0 or more, CPUs with
    AVX512-BF16 or AMX), fp32 elsewhere, since emulated bf16 is slower than fp32 and fp16
    needs tensor cores to pay off. Recurrent models on a CPU train in fp32 even where bf16 is
    native: their steps are many small matmuls and casts, and bf16 measured 0.74-0.82x of
    fp32 there (`scripts/bench_precision.py`)."""
    if strategy_name == "tpu":
        return "bf16", "TPU"
    if strategy_name != "cpu":
        gpus = gpu_capabilities() if gpus is None else gpus
        if gpus:
            if all(c and tuple(c) >= (8, 0) for _, c in gpus):
                return "bf16", "GPU compute capability 8.0+"
            return "fp32", "a GPU below compute capability 8.0"
    if not cpu_native_bf16(flags):
        return "fp32", "no native bf16 on this CPU"
    if recurrent:
        return "fp32", "recurrent layers train faster in fp32 on a CPU"
    return "bf16", "native bf16 on this CPU"


def resolve_precision(precision: str, strategy_name: str, gpus=None, flags=None,
                      recurrent: bool = False) -> str:
    """The precision a run trains in: `strategy.precision` itself, or what `auto` picks
    (`auto_precision`)."""
    if precision != "auto":
        return precision
    return auto_precision(strategy_name, gpus, flags, recurrent)[0]
