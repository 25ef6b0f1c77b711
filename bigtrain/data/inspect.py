"""Looking at a dataset without training: examples as text, an image grid, pipeline speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def describe_example(x: np.ndarray, spec) -> str:
    if spec.task == "lm" or x.dtype.kind in "iu":
        ids = x.reshape(-1)[:48]
        if spec.num_outputs == 256:
            return repr(bytes(int(i) for i in ids).decode("utf-8", errors="replace"))
        return " ".join(str(int(i)) for i in ids) + (" ..." if x.size > 48 else "")
    flat = x.reshape(-1)
    shown = " ".join(f"{v:.2f}" for v in flat[:8])
    return f"[{shown}{' ...' if flat.size > 8 else ''}] mean {flat.mean():.3f}"


def trained_runs(x: np.ndarray, y: np.ndarray, decode) -> list[tuple[str, bool]]:
    """An instruction example (inputs `x`, targets `y` with -1 where no loss is taken) as
    runs of (text, trained), up to its last trained token: token i > 0 is trained when
    target i - 1 is. `decode` turns a list of ids into text."""
    x, y = np.asarray(x).reshape(-1), np.asarray(y).reshape(-1)
    trained_at = np.flatnonzero(y >= 0)
    if not len(trained_at):
        return [(decode(x.tolist()), False)]
    end = int(trained_at[-1]) + 1
    ids = x[:end].tolist() + [int(y[end - 1])]
    flags = [False] + [bool(v >= 0) for v in y[:end]]
    runs: list[tuple[str, bool]] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or flags[i] != flags[start]:
            runs.append((decode(ids[start:i]), flags[start]))
            start = i
    return runs


def class_names(splits) -> list[str] | None:
    """The class names of a classification dataset in label order, as its builder recorded
    them (`splits.preprocessing["classes"]`); None where there are none."""
    doc = getattr(splits, "preprocessing", None) or {}
    names = doc.get("classes") if isinstance(doc, dict) else None
    return [str(n) for n in names] if names else None


def class_label(y: np.ndarray, names: list[str] | None) -> str:
    """A class id as its name (the id itself where no name is known)."""
    k = int(np.asarray(y).reshape(-1)[0])
    return names[k] if names and 0 <= k < len(names) else str(k)


def describe_target(y: np.ndarray, spec, names: list[str] | None) -> str:
    """A target as people read it: the class name (and its id), else the value."""
    if spec.task == "lm" and spec.masked:
        trained = np.asarray(y).reshape(-1)
        return f"{int((trained >= 0).sum())} of {trained.size} targets trained"
    if spec.task == "lm":
        return describe_example(y, spec)
    if spec.task == "classification" and names and np.size(y) == 1:
        return f"{class_label(y, names)} ({int(np.asarray(y).reshape(-1)[0])})"
    return str(np.asarray(y).tolist())


def image_grid(images: np.ndarray, path: Path, titles: list[str] | None = None,
               columns: int = 8) -> Path:
    """Tile up to 64 images (any value range, shown min..max) into one PNG, each titled with
    its entry of `titles` (its class). The PNG's text chunk `bigtrain` lists the titles."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    imgs = np.asarray(images[:64], np.float32)
    if imgs.ndim == 3:
        imgs = imgs[..., None]
    lo, hi = float(imgs.min()), float(imgs.max())
    imgs = (imgs - lo) / (hi - lo) if hi > lo else imgs * 0
    titles = list(titles[: len(imgs)]) if titles is not None else None
    n = len(imgs)
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.35 * cols, 1.5 * rows if titles else
                                                  1.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(imgs):
        ax = axes.flat[i]
        if img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(img, vmin=0, vmax=1, interpolation="nearest")
        if titles:
            ax.set_title(titles[i], fontsize=8, pad=2)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=100, metadata={"bigtrain": json.dumps({"titles": titles or []})})
    plt.close(fig)
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
