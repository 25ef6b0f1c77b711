"""TensorFlow Datasets: any TFDS name with an image or text feature and an integer label.

Downloaded and prepared on first use into `dataset.data_dir`. The validation split is cut from
the end of TFDS's train split (`train[:90%]` / `train[90%:]` for val_fraction 0.1); the test
split is TFDS's own `test` when it has one. Images become float32 in [0, 1]; text becomes
UTF-8 bytes shifted by one (0 is padding) and padded or cut to `dataset.max_len`.
Tests use `tensorflow_datasets.testing.mock_data`: no network.
"""

from __future__ import annotations

import logging
import os

import tensorflow as tf

from bigtrain.core.errors import ConfigError
from bigtrain.data import DATASETS, preprocess
from bigtrain.data.pipeline import Splits
from bigtrain.data.schemas import TFDSConfig
from bigtrain.data.spec import DatasetSpec

log = logging.getLogger("bigtrain")


def _test_split(builder):
    """TFDS's own `test` split, or None for a dataset without one (TFDS says which splits it
    has when it reads one: 'Unknown split')."""
    try:
        return builder.as_dataset(split="test")
    except ValueError as ex:
        if "split" not in str(ex).lower():
            raise
        return None


def _features(info, name: str) -> tuple[str, str]:
    feats = info.features
    keys = list(feats.keys()) if hasattr(feats, "keys") else []
    x_key = next((k for k in ("image", "text", "sentence", "review") if k in keys), None)
    y_key = "label" if "label" in keys else None
    if x_key is None or y_key is None:
        raise ConfigError("dataset.name", f"TFDS dataset {name!r} has features {keys}; bigtrain "
                          "reads an image or text feature with an integer 'label'")
    return x_key, y_key


def _count(ds: tf.data.Dataset) -> int:
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(0, lambda c, _: c + 1))


@DATASETS.register(TFDSConfig)
def build_tfds(cfg) -> Splits:
    import tensorflow_datasets as tfds

    data_dir = os.path.expanduser(cfg.data_dir)
    val_pct = int(round(cfg.val_fraction * 100))
    train_spec = f"train[:{100 - val_pct}%]" if val_pct else "train"
    try:
        builder = tfds.builder(cfg.name, data_dir=data_dir)
    except Exception as ex:  # unknown names, broken registrations
        raise ConfigError("dataset.name", f"TFDS has no dataset {cfg.name!r} "
                          f"({str(ex).splitlines()[0][:200]})") from ex
    if cfg.download:
        builder.download_and_prepare()
    info = builder.info
    x_key, y_key = _features(info, cfg.name)
    splits = {"train": builder.as_dataset(split=train_spec),
              "val": builder.as_dataset(split=f"train[{100 - val_pct}%:]") if val_pct else None,
              "test": _test_split(builder)}
    is_image = x_key == "image"
    if is_image:
        shape = tuple(info.features[x_key].shape)

        def convert(ex):
            return tf.cast(ex[x_key], tf.float32) / 255.0, tf.cast(ex[y_key], tf.int32)
        input_shape, dtype = shape, "float32"
    else:
        max_len = cfg.max_len

        def convert(ex):
            raw = tf.io.decode_raw(ex[x_key], tf.uint8)[:max_len]
            ids = tf.cast(raw, tf.int32) + 1
            ids = tf.pad(ids, [[0, max_len - tf.shape(ids)[0]]])
            return tf.ensure_shape(ids, (max_len,)), tf.cast(ex[y_key], tf.int32)
        input_shape, dtype = (max_len,), "int32"
    ready = {}
    for k, ds in splits.items():
        if ds is None:
            ready[k] = None
            continue
        ready[k] = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE).cache()
    train = ready["train"]
    if cfg.fraction < 1:
        keep = max(1, int(_count(train) * cfg.fraction))
        train = train.take(keep)
    empty = train.take(0)
    val, test = ready["val"] or empty, ready["test"] or empty
    spec = DatasetSpec(name=cfg.name, task="classification", input_shape=input_shape,
                       input_dtype=dtype, num_outputs=int(info.features[y_key].num_classes),
                       num_train=_count(train), num_val=_count(val), num_test=_count(test),
                       input_vocab=0 if is_image else 257)
    if spec.num_train == 0:
        raise ConfigError("dataset.name", f"TFDS dataset {cfg.name!r} has an empty train split")
    log.info("tfds %s: %s -> %s", cfg.name, x_key, input_shape)
    names = list(getattr(info.features[y_key], "names", None) or [])
    doc = {"input": preprocess.image(*input_shape) if is_image and len(input_shape) == 3
           else preprocess.text(cfg.max_len) if not is_image else None,
           "classes": names or preprocess.index_classes(spec.num_outputs)}
    return Splits(spec, train, val, test, seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer,
                  preprocessing=doc)
