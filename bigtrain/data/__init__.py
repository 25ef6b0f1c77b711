"""Datasets: one module per source, registered by name; each returns a `Splits`."""

from __future__ import annotations

from bigtrain.data.spec import DatasetSpec
from bigtrain.registry import Registry

DATASETS: Registry = Registry("dataset")


def build_dataset(cfg):  # -> bigtrain.data.pipeline.Splits
    """Build the configured dataset's splits (imports TensorFlow)."""
    # importing the source modules registers them
    from bigtrain.data import (  # noqa: F401
        csv_table,
        digits,
        image_folder,
        synthetic,
        text,
        text_classification,
        tfds_source,
    )

    # a schema may name its loader (TFDS: `name` is the TFDS dataset, the loader is tfds)
    return DATASETS.get(getattr(type(cfg), "loader", None) or cfg.name)(cfg)


__all__ = ["DATASETS", "DatasetSpec", "build_dataset"]
