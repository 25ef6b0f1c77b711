"""Looking at a dataset without training: examples as text, an image grid, pipeline speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf


def describe_example(x: np.ndarray, spec) -> str:
    if spec.task == "lm" or x.dtype.kind in "iu":
        ids = x.reshape(-1)[:48]
        if spec.num_outputs == 256:
            return repr(bytes(int(i) for i in ids).decode("utf-8", errors="replace"))
        return " ".join(str(int(i)) for i in ids) + (" ..." if x.size > 48 else "")
    flat = x.reshape(-1)
    shown = " ".join(f"{v:.2f}" for v in flat[:8])
    return f"[{shown}{' ...' if flat.size > 8 else ''}] mean {flat.mean():.3f}"


def image_grid(images: np.ndarray, path: Path, columns: int = 8) -> Path:
    """Tile up to 64 images (values in [0, 1]) into one PNG."""
    imgs = np.asarray(images[:64], np.float32)
    if imgs.ndim == 3:
        imgs = imgs[..., None]
    lo, hi = float(imgs.min()), float(imgs.max())
    imgs = (imgs - lo) / (hi - lo) if hi > lo else imgs * 0
    n, h, w, c = imgs.shape
    rows = -(-n // columns)
    grid = np.ones((rows * (h + 1) + 1, columns * (w + 1) + 1, c), np.float32)
    for i, img in enumerate(imgs):
        r, k = divmod(i, columns)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + k * (w + 1):1 + k * (w + 1) + w] = img
    scale = max(1, 256 // max(grid.shape[:2]))
    grid = np.kron(grid, np.ones((scale, scale, 1), np.float32))
    path.write_bytes(tf.io.encode_png((grid * 255).astype(np.uint8)).numpy())
    return path


def pipeline_examples_per_sec(splits, batch_size: int, batches: int = 50) -> float:
    """Examples/s of the training pipeline alone (shuffle, batch, prefetch, decode)."""
    ds = splits.train_batches(batch_size, 0).repeat()
    it = iter(ds)
    for _ in range(3):
        next(it)
    tic = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - tic)
