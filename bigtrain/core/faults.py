"""Fault injection for the reliability tests: kill this process at a named point.

`BIGTRAIN_FAULTS="sigkill@step=7,sigkill@eval=2"` kills the run with SIGKILL (no clean-up, like
a power cut) when the loop reaches that point: `step=N` after step N, `eval=N` during the N-th
evaluation, `checkpoint=N` while the checkpoint of step N is being written. Unset: no effect.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def _points() -> set[str]:
    spec = os.environ.get("BIGTRAIN_FAULTS", "")
    return {p.strip().removeprefix("sigkill@") for p in spec.split(",") if p.strip()}


def at(kind: str, value: int | None = None) -> None:
    """Die here if a fault is configured for this point (`value`: the step, else a counter)."""
    points = _points()
    if not points:
        return
    if value is None:
        _counts[kind] = value = _counts.get(kind, 0) + 1
    if f"{kind}={value}" in points:
        os.kill(os.getpid(), signal.SIGKILL)
