"""Datasets: one module per source, each builder registered with its schema; each returns a
`Splits`."""

from __future__ import annotations

from bigtrain.data.spec import DatasetSpec
from bigtrain.registry import Registry

DATASETS: Registry = Registry("dataset", "bigtrain.data")


def build_dataset(cfg):  # -> bigtrain.data.pipeline.Splits
    """Build the configured dataset's splits (imports TensorFlow); `splits.preprocessing`
    is then the run's preprocessing.json document (bigtrain/data/preprocess.py)."""
    from bigtrain.data import augment, preprocess

    splits = DATASETS.build(cfg)
    splits.preprocessing = preprocess.document(splits.spec, splits.preprocessing, cfg)
    augment.check_fits(cfg.augment, splits.spec)
    splits.augment = augment.example_fn(cfg.augment, splits.spec)
    splits.augment_batch = augment.batch_fn(cfg.augment, splits.spec)
    splits.shard = cfg.shard
    return splits


__all__ = ["DATASETS", "DatasetSpec", "build_dataset"]
