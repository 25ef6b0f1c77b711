"""Images in one sub-directory per class (jpg, png, bmp, gif), decoded and resized by tf.data.

Before training, every file is decoded once (in parallel, by tf.data) so that a corrupt image
is named up front: `dataset.on_bad_record=fail` stops with the file's path, `skip` leaves it
out and reports how many were left out. The splits then keep paths and decode lazily; the
decoded training split is cached in memory when it fits (< 1 GiB).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from bigtrain.core.errors import ConfigError
from bigtrain.data import DATASETS, preprocess
from bigtrain.data.pipeline import Splits, label_statistics, split_for
from bigtrain.data.schemas import ImageFolderConfig
from bigtrain.data.spec import DatasetSpec

log = logging.getLogger("bigtrain")
EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
CACHE_LIMIT = 1 << 30


def list_images(root: Path) -> tuple[list[str], list[int], list[str]]:
    if not root.is_dir():
        raise ConfigError("dataset.path", f"{root} does not exist" if not root.exists()
                          else f"{root} is not a directory")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise ConfigError("dataset.path", f"{root} needs one sub-directory per class (at least "
                          f"2); found {len(classes)}")
    paths, labels = [], []
    for k, c in enumerate(classes):
        files = sorted(str(f) for f in (root / c).rglob("*")
                       if f.is_file() and f.suffix.lower() in EXTENSIONS)
        if not files:
            raise ConfigError("dataset.path", f"class directory {root / c} has no images ("
                              + ", ".join(sorted(EXTENSIONS)) + ")")
        paths += files
        labels += [k] * len(files)
    return paths, labels, classes


def _decoder(size: tuple[int, int], channels: int):
    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels,
                                   expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32) / 255.0, size)
        return tf.ensure_shape(image, (*size, channels))

    return decode


def find_bad(paths: list[str], decode) -> list[str]:
    """Paths that do not decode, found by decoding each once in parallel."""
    ok = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda p: (p, decode(p)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ok = ok.ignore_errors().map(lambda p, _: p)
    good = {p.decode() for p in ok.as_numpy_iterator()}
    return [p for p in paths if p not in good]


@DATASETS.register(ImageFolderConfig)
def build_image_folder(cfg) -> Splits:
    root = Path(cfg.path).expanduser()
    paths, labels, classes = list_images(root)
    size = (int(cfg.image_size[0]), int(cfg.image_size[1]))
    decode = _decoder(size, cfg.channels)
    bad = find_bad(paths, decode)
    if bad and cfg.on_bad_record == "fail":
        raise ConfigError("dataset.path", f"{bad[0]} is not a readable image"
                          + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
                          + "; remove it or set dataset.on_bad_record=skip")
    if bad:
        log.warning("skipped %d image(s) that do not decode, e.g. %s", len(bad), bad[0])
        keep = [i for i, p in enumerate(paths) if p not in set(bad)]
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
    paths_a, labels_a = np.array(paths), np.array(labels, np.int32)
    train, val, test = split_for(len(paths), cfg)
    spec = DatasetSpec(name="image_folder", task="classification",
                       input_shape=(*size, cfg.channels), input_dtype="float32",
                       num_outputs=len(classes), num_train=len(train), num_val=len(val),
                       num_test=len(test), skipped=len(bad),
                       **label_statistics("classification", labels_a[train], len(classes)))

    def ds(idx: np.ndarray, cache: bool) -> tf.data.Dataset:
        d = tf.data.Dataset.from_tensor_slices((paths_a[idx], labels_a[idx]))
        d = d.map(lambda p, y: (decode(p), y), num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=True)
        return d.cache() if cache else d

    fits = len(train) * size[0] * size[1] * cfg.channels * 4 < CACHE_LIMIT
    log.info("image_folder: %d images in %d classes (%s)", len(paths), len(classes),
             ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else ""))
    doc = {"input": preprocess.image(size[0], size[1], cfg.channels), "classes": classes}
    return Splits(spec, ds(train, fits), ds(val, fits), ds(test, fits), seed=cfg.seed,
                  shuffle_buffer=cfg.shuffle_buffer, preprocessing=doc)
