"""Datasets: one module per source, registered by name; each returns a `Splits`."""

from __future__ import annotations

from bigtrain.data.spec import DatasetSpec
from bigtrain.registry import Registry

DATASETS: Registry = Registry("dataset")


def build_dataset(cfg):  # -> bigtrain.data.pipeline.Splits
    """Build the configured dataset's splits (imports TensorFlow)."""
    # importing the source modules registers them
    from bigtrain.data import (  # noqa: F401
        augment,
        csv_table,
        digits,
        image_folder,
        synthetic,
        text,
        text_classification,
        tfds_source,
        tfrecord,
    )

    # a schema may name its loader (TFDS: `name` is the TFDS dataset, the loader is tfds)
    splits = DATASETS.get(getattr(type(cfg), "loader", None) or cfg.name)(cfg)
    augment.check_fits(cfg.augment, splits.spec)
    splits.augment = augment.example_fn(cfg.augment, splits.spec)
    splits.augment_batch = augment.batch_fn(cfg.augment, splits.spec)
    splits.shard = cfg.shard
    return splits


__all__ = ["DATASETS", "DatasetSpec", "build_dataset"]
