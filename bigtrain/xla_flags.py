"""XLA's CPU code generation for bigtrain's compiled islands: 512-bit vectors on AVX-512 CPUs.

XLA compiles for 256-bit vectors on CPUs that have AVX-512 unless told otherwise (a guard
against the clock drop of early AVX-512 Xeons). The elementwise islands of bigtrain's models
(bias + exact GELU, layer norm, softmax: bigtrain.models.transformer) are mostly bound by
vector arithmetic; compiled for 512-bit vectors, the GELU's backward ran 1.3x and its forward
1.1x faster here, layer norm and softmax the same (AMD EPYC with AVX-512;
`python scripts/bench_islands.py` measures both widths side by side). `enable()`
adds `--xla_cpu_prefer_vector_width=512` to XLA_FLAGS on a CPU with AVX-512F, unless
XLA_FLAGS already sets a width: `XLA_FLAGS=--xla_cpu_prefer_vector_width=256` keeps XLA's
default. XLA reads its flags when it compiles for the first time in a process, so this must
run before then (bigtrain's commands call it first, with bigtrain.xla_cache.enable).
"""

from __future__ import annotations

import os

WIDTH_FLAG = "--xla_cpu_prefer_vector_width"


def cpu_has_avx512(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the first CPU that /proc/cpuinfo lists has AVX-512F (False where it cannot
    be read: not Linux, or not x86)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return "avx512f" in line.split(":", 1)[1].split()
    except OSError:
        pass
    return False


def enable(environ=os.environ, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Ask XLA for 512-bit vectors (see the module's docstring); True where the flag was
    added. Idempotent; a width the user set in XLA_FLAGS is left alone."""
    flags = environ.get("XLA_FLAGS", "")
    if WIDTH_FLAG.lstrip("-") in flags or not cpu_has_avx512(cpuinfo):
        return False
    environ["XLA_FLAGS"] = f"{flags.strip()} {WIDTH_FLAG}=512".strip()
    return True
