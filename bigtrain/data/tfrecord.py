"""Sharded TFRecord files of tf.train.Example records, streamed by tf.data.

Before training, one pass counts each file's records (a truncated or damaged file is named)
and parses every record against the configured feature spec in parallel, so a record that
does not match is found up front and named by file and record number: `on_bad_record=fail`
stops there, `skip` leaves it out, counts it and reports it (also in summary.json).

The files are then read as one stream in sorted order; record `i` of that stream belongs to
the split chosen for it by the seeded index split, so the splits are fixed without holding
the data in memory. The training split is cached when its decoded size fits (< 1 GiB).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from bigtrain.core.errors import ConfigError
from bigtrain.data import DATASETS, preprocess
from bigtrain.data.pipeline import Splits, split_arrays
from bigtrain.data.schemas import TFRecordConfig
from bigtrain.data.spec import DatasetSpec
from bigtrain.data.text import find_files

log = logging.getLogger("bigtrain")
CACHE_LIMIT = 1 << 30
DTYPES = {"float32": tf.float32, "int64": tf.int64, "image": tf.string}


def parser(cfg):
    """record -> (x, y) following the config's feature spec; raises on a mismatch."""
    in_shape = [] if cfg.input_dtype == "image" else list(cfg.input_shape)
    features = {
        cfg.input: tf.io.FixedLenFeature(in_shape, DTYPES[cfg.input_dtype]),
        cfg.label: tf.io.FixedLenFeature(list(cfg.label_shape), DTYPES[cfg.label_dtype]),
    }
    if cfg.input == cfg.label:
        raise ConfigError("dataset.label", f"{cfg.label!r} is also the input feature")

    def parse(record):
        ex = tf.io.parse_single_example(record, features)
        x, y = ex[cfg.input], ex[cfg.label]
        if cfg.input_dtype == "image":
            h, w, c = cfg.input_shape
            x = tf.io.decode_image(x, channels=c, expand_animations=False)
            x = tf.ensure_shape(tf.cast(x, tf.float32) / 255.0, (h, w, c))
        elif cfg.input_dtype == "int64":
            x = tf.cast(x, tf.int32)
        if cfg.label_dtype == "int64":
            y = tf.cast(y, tf.int32)
        return x, y

    return parse


def _count(path: Path, cfg, on_bad: str) -> int | None:
    """Records in one file; None (skip) or an error if the file is damaged or not TFRecord."""
    ds = tf.data.TFRecordDataset(str(path), compression_type=cfg.compression)
    try:
        return int(ds.reduce(np.int64(0), lambda n, _: n + 1))
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as ex:
        what = (f"{path} is not a readable TFRecord file"
                + (f" with {cfg.compression} compression" if cfg.compression else "")
                + f" ({ex.message.splitlines()[0][:120]})")
        if on_bad == "skip":
            log.warning("skipped %s", what)
            return None
        raise ConfigError("dataset.path", what + "; set dataset.on_bad_record=skip to leave "
                          "it out") from None


def _scan(path: Path, n: int, cfg, parse) -> tuple[np.ndarray, np.ndarray]:
    """(good, labels): which of the file's n records parse, and the label of each good one."""
    ds = tf.data.TFRecordDataset(str(path), compression_type=cfg.compression).enumerate()
    ds = ds.map(lambda i, r: (i, parse(r)[1]), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True).ignore_errors()
    good = np.zeros(n, bool)
    labels = np.zeros((n, *cfg.label_shape), np.float64)
    for idx, y in ds.batch(4096).as_numpy_iterator():
        good[idx] = True
        labels[idx] = y
    return good, labels


@DATASETS.register(TFRecordConfig)
def build_tfrecord(cfg) -> Splits:
    files = find_files(cfg.path)
    parse = parser(cfg)
    kept, good_parts, label_parts = [], [], []
    for f in files:
        n = _count(f, cfg, cfg.on_bad_record)
        if n is None:
            continue
        good, labels = _scan(f, n, cfg, parse)
        if cfg.task == "classification" and cfg.num_classes and good.any():
            high = np.flatnonzero(good & (labels.reshape(n, -1).max(axis=1) >= cfg.num_classes))
            if high.size and cfg.on_bad_record == "fail":
                raise ConfigError("dataset.num_classes", f"{f}, record {high[0]}: label "
                                  f"{labels[high[0]]} is not below {cfg.num_classes}")
            good[high] = False
        if not good.all() and cfg.on_bad_record == "fail":
            bad = int(np.flatnonzero(~good)[0])
            raise ConfigError("dataset.path", f"{f}, record {bad}: does not match the feature "
                              f"spec ({cfg.input}: {cfg.input_dtype} {list(cfg.input_shape)}, "
                              f"{cfg.label}: {cfg.label_dtype} {list(cfg.label_shape)})"
                              + _first_error(f, bad, cfg, parse)
                              + "; fix the spec or set dataset.on_bad_record=skip")
        kept.append(f)
        good_parts.append(good)
        label_parts.append(labels)
    if not kept or not sum(g.sum() for g in good_parts):
        raise ConfigError("dataset.path", f"no readable records in {cfg.path}")
    good = np.concatenate(good_parts)
    labels = np.concatenate(label_parts)
    skipped = int((~good).sum()) + sum(1 for f in files if f not in kept)
    if skipped:
        log.warning("tfrecord: skipped %d record(s) or file(s) that do not match the spec",
                    skipped)

    # the seeded split of the good records, as one split id per record of the stream
    good_idx = np.flatnonzero(good)
    train, val, test = split_arrays(len(good_idx), cfg.val_fraction, cfg.test_fraction,
                                    cfg.seed, cfg.fraction)
    assign = np.full(len(good), 3, np.int32)  # 3: not used (bad, or left out by fraction)
    for k, part in enumerate((train, val, test)):
        assign[good_idx[part]] = k

    if cfg.task == "regression":
        num_outputs = int(np.prod(cfg.label_shape)) if cfg.label_shape else 1
    else:
        num_outputs = cfg.num_classes or int(labels[good].max()) + 1
        if cfg.task == "classification":
            num_outputs = max(2, num_outputs)
    shape = tuple(cfg.input_shape)
    input_dtype = "int32" if cfg.input_dtype == "int64" else "float32"
    spec = DatasetSpec(name="tfrecord", task=cfg.task, input_shape=shape,
                       input_dtype=input_dtype, num_outputs=num_outputs,
                       num_train=len(train), num_val=len(val), num_test=len(test),
                       input_vocab=num_outputs if input_dtype == "int32" else 0,
                       skipped=skipped)
    table = tf.constant(assign)
    names = [str(f) for f in kept]

    def split(k: int, cache: bool) -> tf.data.Dataset:
        ds = tf.data.TFRecordDataset(names, compression_type=cfg.compression).enumerate()
        ds = ds.filter(lambda i, _: tf.gather(table, i) == k)
        ds = ds.map(lambda _, r: parse(r), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
        return ds.cache() if cache else ds

    fits = len(train) * math.prod(shape or (1,)) * 4 < CACHE_LIMIT
    log.info("tfrecord: %d records in %d file(s)", int(good.sum()), len(kept))
    return Splits(spec, split(0, fits), split(1, fits), split(2, fits), seed=cfg.seed,
                  shuffle_buffer=cfg.shuffle_buffer, preprocessing=_describe(cfg, spec))


def _describe(cfg, spec: DatasetSpec) -> dict:
    """Raw inputs of a TFRecord-trained model: an encoded image, the input feature's values
    as numeric columns (`<input>_<i>`, flattened), or the token ids of a language model."""
    if cfg.task == "lm":
        return {"input": preprocess.lm_ids(int(math.prod(spec.input_shape or (1,))),
                                           spec.num_outputs)}
    if cfg.input_dtype == "image":
        return {"input": preprocess.image(*spec.input_shape),
                "classes": preprocess.index_classes(spec.num_outputs)}
    n = int(math.prod(spec.input_shape)) if spec.input_shape else 1
    names = [cfg.input] if not spec.input_shape else [f"{cfg.input}_{i}" for i in range(n)]
    return {"input": preprocess.identity_table(names, spec.input_shape, spec.input_dtype,
                                               label=cfg.label),
            "classes": preprocess.index_classes(spec.num_outputs),
            "targets": [cfg.label] if spec.num_outputs == 1 else
            [f"{cfg.label}_{i}" for i in range(spec.num_outputs)]}


def _first_error(path: Path, index: int, cfg, parse) -> str:
    """TensorFlow's own words for why record `index` of `path` does not parse."""
    record = next(iter(tf.data.TFRecordDataset(str(path), compression_type=cfg.compression)
                       .skip(index).take(1)))
    try:
        parse(record)
    except (tf.errors.InvalidArgumentError, ValueError) as ex:
        text = getattr(ex, "message", str(ex)).strip().splitlines()
        return f": {text[0][:160]}" if text else ""
    return ""
