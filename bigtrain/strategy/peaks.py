"""The peak FLOP/s a run's devices could reach: what MFU (model FLOPs utilization) divides by.

GPUs and TPUs: vendors' dense (no sparsity) figures per device and precision, below. CPUs: a
short matmul benchmark in this process (so under its thread settings), measured once per CPU,
thread count and precision, and cached in `$XDG_CACHE_HOME/bigtrain/peak_flops.json`
(`~/.cache/...`): the first run on a machine pays ~1 s, later runs read the file.
`strategy.peak_flops` overrides both. No TensorFlow at import.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("bigtrain")

#: dense peak FLOP/s of one device by precision; `fp32` is TF32 on tensor cores where
#: TensorFlow uses it for float32 matmuls by default (Ampere and later). Matched by
#: substring of the device's name, first match wins (so "H100 PCIe" before "H100").
GPU_PEAKS: list[tuple[str, dict[str, float]]] = [
    ("H200", {"bf16": 989e12, "fp16": 989e12, "fp32": 495e12}),
    ("H100 PCIe", {"bf16": 756e12, "fp16": 756e12, "fp32": 378e12}),
    ("H100 NVL", {"bf16": 835e12, "fp16": 835e12, "fp32": 418e12}),
    ("H100", {"bf16": 989e12, "fp16": 989e12, "fp32": 495e12}),
    ("A100", {"bf16": 312e12, "fp16": 312e12, "fp32": 156e12}),
    ("L40S", {"bf16": 362e12, "fp16": 362e12, "fp32": 183e12}),
    ("L4", {"bf16": 121e12, "fp16": 121e12, "fp32": 60e12}),
    ("A10", {"bf16": 125e12, "fp16": 125e12, "fp32": 62.5e12}),
    ("V100", {"fp16": 125e12, "fp32": 15.7e12}),
    ("T4", {"fp16": 65e12, "fp32": 8.1e12}),
]

#: per TPU chip (bf16; fp32 matmuls run as bf16 passes), by the TPU VM's accelerator type
#: prefix ($TPU_ACCELERATOR_TYPE, e.g. v4-8, v5litepod-8); v2 and v3 chips are two replicas
TPU_PEAKS: list[tuple[str, float, int]] = [  # (prefix, FLOP/s per chip, replicas per chip)
    ("v6e", 918e12, 1), ("v5p", 459e12, 1), ("v5litepod", 197e12, 1), ("v5e", 197e12, 1),
    ("v4", 275e12, 1), ("v3", 123e12, 2), ("v2", 45e12, 2),
]


def gpu_peak(name: str, precision: str) -> float | None:
    """The table's peak for a GPU named `name` at `precision`, or None if not listed."""
    for key, peaks in GPU_PEAKS:
        if key.lower() in name.lower():
            return peaks.get(precision)
    return None


def tpu_peak(accelerator_type: str) -> float | None:
    """Peak FLOP/s of one TPU replica for an accelerator type such as v4-8."""
    for prefix, chip, replicas in TPU_PEAKS:
        if accelerator_type.lower().startswith(prefix):
            return chip / replicas
    return None


def cache_path() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "bigtrain" / "peak_flops.json"


def _threads() -> int:
    import tensorflow as tf

    n = tf.config.threading.get_intra_op_parallelism_threads()
    return n if n > 0 else len(os.sched_getaffinity(0))


def cpu_key(precision: str) -> str:
    """What a cached CPU peak is valid for: the CPU, its features, threads and precision."""
    from bigtrain.strategy.devices import cpu_flags, cpu_name

    return f"{cpu_name()} [{','.join(sorted(cpu_flags()))}] threads={_threads()} {precision}"


DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def measure_cpu_peak(precision: str, size: int = 1024, reps: int = 8, tries: int = 3) -> float:
    """FLOP/s of a chain of square matmuls at `precision`, best of `tries` (as
    scripts/bench.py measures it; the ceiling for dense layers)."""
    import tensorflow as tf

    dtype = DTYPES[precision]
    a = tf.cast(tf.random.stateless_normal((size, size), seed=(0, 0)), dtype)

    @tf.function
    def chain(x):
        for _ in range(reps):
            x = tf.matmul(x, a) * tf.cast(1e-3, dtype)
        return x

    with tf.device("/cpu:0"):
        chain(a).numpy()  # trace and warm up
        best = float("inf")
        for _ in range(tries):
            tic = time.perf_counter()
            chain(a).numpy()
            best = min(best, time.perf_counter() - tic)
    return 2 * size**3 * reps / best


def cpu_peak(precision: str) -> tuple[float, str]:
    """This CPU's peak at `precision` and where it came from: the cache, else measured now
    (and cached). A cache that cannot be read or written only costs a measurement."""
    path, key = cache_path(), cpu_key(precision)
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    entry = cached.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("flops"), int | float) \
            and entry["flops"] > 0:
        return float(entry["flops"]), f"measured matmul peak, cached in {path}"
    flops = measure_cpu_peak(precision)
    cached[key] = {"flops": flops, "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
                   "load": list(os.getloadavg())}
    try:
        from bigtrain.core.files import atomic_write_text

        atomic_write_text(path, json.dumps(cached, indent=1) + "\n")
    except OSError as ex:
        log.debug("could not cache the CPU peak in %s: %s", path, ex)
    log.info("CPU matmul peak %s: %.0f GFLOP/s (measured once; cached in %s)", precision,
             flops / 1e9, path)
    return flops, f"measured matmul peak ({path})"


def _cpu_hosts(strategy) -> int:
    """Distinct hosts of a multi-worker run (workers on one machine share its CPU)."""
    try:
        workers = strategy.cluster_resolver.cluster_spec().as_dict().get("worker", [])
    except (AttributeError, ValueError):
        return 1
    return max(1, len({str(w).rsplit(":", 1)[0] for w in workers}))


def run_peak(strategy, precision: str, override: float = 0.0) -> tuple[float | None, str]:
    """Peak FLOP/s of all the devices `strategy` trains on at `precision`, and its source;
    (None, why) where it is not known. `override`: strategy.peak_flops, per device."""
    import tensorflow as tf

    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy: this process's default device
        devices = ()
    replicas = strategy.num_replicas_in_sync
    kind = tf.config.list_physical_devices("GPU") and any("GPU" in d.upper() for d in devices)
    if any("TPU" in d.upper() for d in devices):
        per = override or tpu_peak(os.environ.get("TPU_ACCELERATOR_TYPE", ""))
        if not per:
            return None, "TPU type unknown ($TPU_ACCELERATOR_TYPE); set strategy.peak_flops"
        return per * replicas, "strategy.peak_flops" if override else "table (TPU)"
    if kind:
        if override:
            return override * replicas, "strategy.peak_flops"
        gpus = tf.config.list_physical_devices("GPU")
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        per = gpu_peak(name, precision)
        if per is None:
            return None, f"no peak known for {name or 'this GPU'} at {precision}; set " \
                         "strategy.peak_flops"
        return per * replicas, f"table ({name})"
    hosts = _cpu_hosts(strategy)  # logical CPU devices of one host share its peak
    if override:
        return override * hosts, "strategy.peak_flops"
    per, source = cpu_peak(precision)
    return per * hosts, source
