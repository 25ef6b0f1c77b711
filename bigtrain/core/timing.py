"""Where a run's wall time went: summary.json's `timing` block. No TensorFlow here.

    startup_s + first_step_s + steps_s + eval_s + checkpoint_s + other_s = total_s

`startup_s` runs from the command's start (the first job of a `bigtrain` command: when the
process imported bigtrain; a later job of a sweep, or a run started from Python: its own
start) to the first compiled call; `first_step_s` is that call (tracing and compiling
included), `steps_s` the other calls, `eval_s` every evaluation (validation and test),
`checkpoint_s` the saves, and `other_s` the rest (logging, hooks, data iterators, the
summary). `end_s` is how long the run took after its last training step, whatever it did
there: a stall at the end shows in it, and in `other_s`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_command_start: float | None = None

PARTS = ("eval", "checkpoint")


def command_started(at: float) -> None:
    """The `bigtrain` command began at `at` (time.time()); its first job times from there."""
    global _command_start
    _command_start = at


def job_origin(job_start: float) -> float:
    """Where a job's start-up is timed from: the command's start for its first job, else the
    job's own start."""
    global _command_start
    origin = job_start if _command_start is None else min(_command_start, job_start)
    _command_start = None
    return origin


class Timing:
    """Seconds per part of one run, as the loop and the summary report them."""

    def __init__(self, origin: float | None = None):
        self.origin = time.time() if origin is None else origin
        self.first_step_at: float | None = None  # when the first compiled call began
        self.last_step_end: float | None = None
        self.first_step = 0.0
        self.steps = 0.0
        self.parts = dict.fromkeys(PARTS, 0.0)

    def step(self, seconds: float) -> None:
        """A compiled call of `seconds` just ended."""
        now = time.time()
        if self.first_step_at is None:
            self.first_step_at, self.first_step = now - seconds, seconds
        else:
            self.steps += seconds
        self.last_step_end = now

    @contextmanager
    def timed(self, part: str | None) -> Iterator[None]:
        """Count the block's seconds in `part` (eval, checkpoint; None: in other_s)."""
        tic = time.perf_counter()
        try:
            yield
        finally:
            if part is not None:
                self.parts[part] += time.perf_counter() - tic

    def block(self) -> dict[str, Any]:
        """The `timing` block, now: the parts add up to `total_s` (other_s is the rest)."""
        now = time.time()
        started = self.first_step_at if self.first_step_at is not None else now
        parts = {"startup_s": started - self.origin, "first_step_s": self.first_step,
                 "steps_s": self.steps, **{f"{p}_s": s for p, s in self.parts.items()}}
        parts = {k: round(v, 3) for k, v in parts.items()}
        total = round(now - self.origin, 3)
        end = now - self.last_step_end if self.last_step_end is not None else 0.0
        return {**parts, "other_s": round(total - sum(parts.values()), 3), "total_s": total,
                "end_s": round(end, 3)}
