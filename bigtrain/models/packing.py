"""Packed sequences: several examples in one window, told apart by segment ids.

A packed batch carries, beside each token, the example it belongs to (`segments`: 1, 2, ...
in a window, 0 for padding) and its position within that example (`positions`, from 0 at
each example's start). They reach the layers through a scope around the model call, not as a
second model input: the model keeps one input (token ids), so generation, evaluation and every
export call it as before, and a model trained packed serves unpacked.

Inside the scope, bigtrain's transformer attends block-diagonally (a token sees the earlier
tokens of its own example only) and takes positions per example (learned, sinusoidal and
rotary alike). Layers read the scope while they are traced, so a compiled step captures the
batch's tensors; remat keeps what it read for the recomputation.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

_LOCAL = threading.local()


@dataclass(frozen=True)
class Packed:
    segments: object  # [B, T] int32: the example of each token (0: padding)
    positions: object  # [B, T] int32: the token's position within its example


@contextlib.contextmanager
def scope(segments, positions):
    """Layers called inside see `current()`: the batch's segments and positions."""
    previous = getattr(_LOCAL, "packed", None)
    _LOCAL.packed = Packed(segments, positions)
    try:
        yield
    finally:
        _LOCAL.packed = previous


def current() -> Packed | None:
    """The packed batch's segments and positions, or None outside a packed call."""
    return getattr(_LOCAL, "packed", None)


def split(x):
    """A packed batch [B, T, 3] (ids, segments, positions) as its three [B, T] parts."""
    return x[..., 0], x[..., 1], x[..., 2]
