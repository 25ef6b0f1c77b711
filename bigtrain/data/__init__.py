"""Datasets: one module per source, registered by name; each returns a `Splits`."""

from __future__ import annotations

from bigtrain.data.spec import DatasetSpec
from bigtrain.registry import Registry

DATASETS: Registry = Registry("dataset")


def build_dataset(cfg):  # -> bigtrain.data.pipeline.Splits
    """Build the configured dataset's splits (imports TensorFlow)."""
    # importing the source modules registers them
    from bigtrain.data import csv_table, digits, image_folder, synthetic, text  # noqa: F401

    return DATASETS.get(cfg.name)(cfg)


__all__ = ["DATASETS", "DatasetSpec", "build_dataset"]
