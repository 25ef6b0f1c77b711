"""Live MFU (model FLOPs utilization): the FLOP/s a run's train steps achieve over the peak of
the devices it trains on.

Achieved FLOP/s = examples/s x training FLOPs per example (bigtrain/models/size.py: the
profiler's count of the forward pass, x3 for forward + backward, as `bigtrain info` shows it).
The peak comes from bigtrain/strategy/peaks.py (a table for GPUs and TPUs, a cached matmul
benchmark for CPUs) or `strategy.peak_flops`. Both are worked out at the first train record,
off the start-up path; each train record then gets `mfu` (a fraction) and `flops_per_sec`.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("bigtrain")

PRECISIONS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


class Mfu:
    """Adds `mfu` and `flops_per_sec` to train records; `describe()` is what summary.json
    records of where the two numbers came from."""

    def __init__(self, model, spec, strategy, peak_flops: float = 0.0):
        self.model, self.spec, self.strategy, self.override = model, spec, strategy, peak_flops
        self.flops_per_example: int | None = None
        self.peak: float | None = None
        self.peak_source = ""
        self.precision = ""
        self._resolved = False

    def _resolve(self) -> None:

        from bigtrain.models.size import forward_flops
        from bigtrain.strategy.peaks import run_peak

        self._resolved = True
        self.precision = PRECISIONS.get(self.model.dtype_policy.compute_dtype,
                                        "fp32")
        try:
            self.flops_per_example = 3 * forward_flops(self.model, tuple(self.spec.input_shape),
                                                       self.spec.input_dtype)
        except Exception as ex:  # a model the profiler cannot freeze: no MFU, training goes on
            log.info("MFU not available: the model's FLOPs could not be counted (%s: %s)",
                     type(ex).__name__, ex)
            return
        self.peak, self.peak_source = run_peak(self.strategy, self.precision, self.override)
        if self.peak is None:
            log.warning("MFU not available: %s", self.peak_source)
            return
        log.info("MFU: %s training FLOPs per example over a peak of %.3g TFLOP/s %s (%s)",
                 f"{self.flops_per_example:,}", self.peak / 1e12, self.precision,
                 self.peak_source)

    def add(self, record: dict[str, Any]) -> None:
        """`mfu` and `flops_per_sec` of a train record with `examples_per_sec`."""
        if not self._resolved:
            self._resolve()
        eps = record.get("examples_per_sec")
        if not eps or not self.flops_per_example:
            return
        achieved = eps * self.flops_per_example
        record["flops_per_sec"] = achieved
        if self.peak:
            record["mfu"] = achieved / self.peak

    def describe(self) -> dict[str, Any] | None:
        if not self._resolved:
            return None
        return {"train_flops_per_example": self.flops_per_example, "peak_flops": self.peak,
                "peak_source": self.peak_source, "precision": self.precision}
