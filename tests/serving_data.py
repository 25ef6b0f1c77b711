"""Raw data the preprocessing, predict and export tests train on and predict for: a table
with string labels, a categorical column and missing values; folders of PNG/JPEG images of
several sizes; labelled texts. Each maker writes a training set and a held-out set."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

TABLE_HEADER = ["size", "weight", "colour", "note", "kind"]
COLOURS = ["red", "green", "blue"]


def _table_rows(rng: np.random.Generator, n: int, unseen: bool = False) -> list[list[str]]:
    rows = []
    for i in range(n):
        size = rng.normal(10, 3)
        colour = COLOURS[i % 3]
        weight = rng.normal(50, 10) + (15 if colour == "red" else 0)
        score = (size - 10) / 3 + (weight - 55) / 10
        kind = "big" if score > 0.4 else "small" if score < -0.4 else "medium"
        cells = [f"{size:.3f}", f"{weight:.2f}", colour, f"n{i % 4}", kind]
        if i % 13 == 0:
            cells[0] = ["", "NA", "?"][i % 3]  # missing values
        if i % 17 == 0:
            cells[2] = ""
        if unseen and i % 7 == 0:
            cells[2] = "purple"  # a category the training split never saw
        rows.append(cells)
    return rows


def write_table(root: Path, n_train: int = 400, n_heldout: int = 60) -> tuple[Path, Path]:
    """train.csv and heldout.csv (with the label column `kind`)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, n, unseen in (("train.csv", n_train, False), ("heldout.csv", n_heldout, True)):
        with open(root / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(TABLE_HEADER)
            w.writerows(_table_rows(rng, n, unseen))
        paths.append(root / name)
    return paths[0], paths[1]


def write_images(root: Path, per_class: int = 24, heldout: int = 8) -> tuple[Path, Path]:
    """train/ and heldout/, each with dark/ and light/ class folders of PNGs and JPEGs of
    several sizes (the model resizes them)."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    for split, n in (("train", per_class), ("heldout", heldout)):
        for name, level in (("dark", 60), ("light", 190)):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = [(12, 12), (10, 14), (16, 9)][i % 3]
                img = np.clip(rng.normal(level, 35, size=(h, w, 3)), 0, 255).astype(np.uint8)
                if i % 4 == 3:
                    (d / f"{i}.jpg").write_bytes(tf.io.encode_jpeg(img).numpy())
                else:
                    (d / f"{i}.png").write_bytes(tf.io.encode_png(img).numpy())
    return root / "train", root / "heldout"


def _text(rng: np.random.Generator, label: str) -> str:
    letters = "abcdefghijklm" if label == "first" else "nopqrstuvwxyz"
    words = ["".join(rng.choice(list(letters), size=rng.integers(2, 7)))
             for _ in range(rng.integers(3, 9))]
    return " ".join(words)


def write_texts(root: Path, n_train: int = 240, n_heldout: int = 40) -> tuple[Path, Path]:
    """train.csv and heldout.csv with columns text, label (first/second half of the
    alphabet), some texts non-ASCII."""
    rng = np.random.default_rng(2)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, n in (("train.csv", n_train), ("heldout.csv", n_heldout)):
        with open(root / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            for i in range(n):
                label = ["first", "second"][i % 2]
                text = _text(rng, label) + (" é" if i % 5 == 0 else "")
                w.writerow([text, label])
        paths.append(root / name)
    return paths[0], paths[1]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
