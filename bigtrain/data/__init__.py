"""Datasets: one module per source, each builder registered with its schema; each returns a
`Splits`."""

from __future__ import annotations

from bigtrain.core.registry import Registry
from bigtrain.data.spec import DatasetSpec

DATASETS: Registry = Registry("dataset", "bigtrain.data")


def takes_tokenizer(cfg) -> bool:
    """Whether the configured dataset's builder tokenizes text (takes a `tokenizer`)."""
    import inspect

    return "tokenizer" in inspect.signature(DATASETS.builder(cfg)).parameters


def build_dataset(cfg, tokenizer=None):  # -> bigtrain.data.pipeline.Splits
    """Build the configured dataset's splits (imports TensorFlow); `splits.preprocessing`
    is then the run's preprocessing.json document (bigtrain/data/preprocess.py).
    `tokenizer` (bigtrain.data.tokenizers.Tokenizer: a pretrained model's, a resumed run's)
    replaces the one a text dataset would learn or choose; other datasets refuse it."""
    from bigtrain.data import augment, preprocess

    if tokenizer is None:
        splits = DATASETS.build(cfg)
    elif takes_tokenizer(cfg):
        splits = DATASETS.build(cfg, tokenizer=tokenizer)
    else:
        from bigtrain.core.errors import ConfigError

        raise ConfigError("dataset", f"dataset={cfg.name} has no text to tokenize; a tokenizer "
                          "is for the text datasets (text, text_stdlib, text_classification)")
    splits.preprocessing = preprocess.document(splits.spec, splits.preprocessing, cfg)
    augment.check_applies(cfg.augment, splits.spec)
    splits.augment = augment.example_fn(cfg.augment, splits.spec)
    splits.augment_batch = augment.batch_fn(cfg.augment, splits.spec)
    splits.shard = cfg.shard
    return splits


__all__ = ["DATASETS", "DatasetSpec", "build_dataset"]
