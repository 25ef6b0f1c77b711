"""Generated data with structure a model can learn, for smoke tests and benchmarks."""

from __future__ import annotations

import numpy as np

from bigtrain.data import DATASETS, preprocess
from bigtrain.data.pipeline import Splits, from_arrays
from bigtrain.data.schemas import SyntheticConfig


def _classification(cfg, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centers = rng.normal(size=(cfg.num_classes, cfg.num_features)).astype(np.float32)
    y = rng.integers(0, cfg.num_classes, size=cfg.num_examples).astype(np.int32)
    x = centers[y] + cfg.noise * 4 * rng.normal(size=(cfg.num_examples, cfg.num_features))
    return x.astype(np.float32), y


def _regression(cfg, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(cfg.num_examples, cfg.num_features)).astype(np.float32)
    w = rng.normal(size=(cfg.num_features, 1)).astype(np.float32) / np.sqrt(cfg.num_features)
    y = np.tanh(x @ w) + cfg.noise * rng.normal(size=(cfg.num_examples, 1))
    return x, y.astype(np.float32)


def _lm(cfg, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Token sequences from a sparse random Markov chain: the next token is predictable."""
    v = cfg.vocab_size
    successors = rng.integers(0, v, size=(v, 4))
    seq = np.empty((cfg.num_examples, cfg.seq_len + 1), dtype=np.int32)
    seq[:, 0] = rng.integers(0, v, size=cfg.num_examples)
    for t in range(1, cfg.seq_len + 1):
        pick = rng.integers(0, 4, size=cfg.num_examples)
        nxt = successors[seq[:, t - 1], pick]
        noisy = rng.random(cfg.num_examples) < cfg.noise
        seq[:, t] = np.where(noisy, rng.integers(0, v, size=cfg.num_examples), nxt)
    return seq[:, :-1], seq[:, 1:]


@DATASETS.register(SyntheticConfig)
def build_synthetic(cfg) -> Splits:
    rng = np.random.default_rng(cfg.seed + 12_345)
    make = {"classification": _classification, "regression": _regression, "lm": _lm}[cfg.task]
    x, y = make(cfg, rng)
    outputs = {"classification": cfg.num_classes, "regression": 1, "lm": cfg.vocab_size}
    if cfg.task == "lm":
        doc = {"input": preprocess.lm_ids(cfg.seq_len, cfg.vocab_size)}
    else:
        names = [f"x{i}" for i in range(cfg.num_features)]
        doc = {"input": preprocess.identity_table(names, (cfg.num_features,), label="y"),
               "classes": preprocess.index_classes(cfg.num_classes),
               "targets": ["y"]}
    return from_arrays("synthetic", cfg.task, x, y, num_outputs=outputs[cfg.task], cfg=cfg,
                       preprocessing=doc)
