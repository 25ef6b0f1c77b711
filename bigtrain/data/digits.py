"""scikit-learn's bundled 8x8 digits: 1,797 images, 10 classes, no download."""

from __future__ import annotations

import numpy as np

from bigtrain.data import DATASETS, preprocess
from bigtrain.data.pipeline import Splits, from_arrays
from bigtrain.data.schemas import DigitsConfig


@DATASETS.register(DigitsConfig)
def build_digits(cfg) -> Splits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)  # (n, 8, 8), values 0..16
    if cfg.normalize:
        x = x / 16.0
    y = bunch.target.astype(np.int32)
    # raw inputs: scikit-learn's 64 pixel values (0..16) of each image, row by row
    names = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    scale = 16.0 if cfg.normalize else 1.0
    doc = {"input": preprocess.table([preprocess.numeric(n, 0.0, scale) for n in names],
                                     (8, 8), label="target"),
           "classes": preprocess.index_classes(10)}
    return from_arrays("digits", "classification", x, y, num_outputs=10, cfg=cfg,
                       preprocessing=doc)
