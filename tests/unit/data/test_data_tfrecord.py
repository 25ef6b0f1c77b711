"""The tfrecord source on TFRecord shards the test writes, and its bad-data cases."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers import read_json

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.data import build_dataset  # noqa: E402


def _example(x: np.ndarray, y: int, image: bool = False) -> bytes:
    if image:
        xf = tf.train.Feature(bytes_list=tf.train.BytesList(value=[x]))
    else:
        xf = tf.train.Feature(float_list=tf.train.FloatList(value=x.ravel().tolist()))
    yf = tf.train.Feature(int64_list=tf.train.Int64List(value=[y]))
    return tf.train.Example(features=tf.train.Features(
        feature={"x": xf, "y": yf})).SerializeToString()


def write_shards(root, shards=3, per_shard=40, bad_at=None, image=False):
    """Shards of two separable classes of 6-feature vectors (or 6x5 PNG images)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        with tf.io.TFRecordWriter(str(root / f"train-{s:05d}.tfrecord")) as w:
            for i in range(per_shard):
                y = int(rng.integers(2))
                if image:
                    img = np.full((6, 5, 1), 40 + 170 * y, np.uint8)
                    x = tf.io.encode_png(img).numpy()
                else:
                    x = rng.normal(2.0 * y - 1.0, 0.5, size=6).astype(np.float32)
                if bad_at == (s, i):  # a record of the wrong shape
                    x = np.zeros(4, np.float32)
                w.write(_example(x, y, image))
    return root


def splits_for(*overrides):
    cfg = to_typed(compose(["dataset=tfrecord", "dataset.input=x", "dataset.label=y",
                            *overrides])).dataset
    return build_dataset(cfg)


def test_shards_stream_into_seeded_splits(tmp_path):
    root = write_shards(tmp_path / "data")
    splits = splits_for(f"dataset.path={root}", "dataset.input_shape=[6]")
    spec = splits.spec
    assert (spec.num_train, spec.num_val, spec.num_test) == (96, 12, 12)
    assert spec.num_outputs == 2 and spec.input_shape == (6,)
    seen = [x for x, _ in splits.train.as_numpy_iterator()]
    seen += [x for x, _ in splits.val.as_numpy_iterator()]
    seen += [x for x, _ in splits.test.as_numpy_iterator()]
    assert len({x.tobytes() for x in seen}) == 120  # every record once, in exactly one split
    # a glob names the same shards; the same seed gives the same splits
    again = splits_for(f"dataset.path={root}/train-*.tfrecord", "dataset.input_shape=[6]")
    a = [x for x, _ in splits.val.as_numpy_iterator()]
    b = [x for x, _ in again.val.as_numpy_iterator()]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))


def test_encoded_images_are_decoded(tmp_path):
    root = write_shards(tmp_path / "imgs", shards=1, image=True)
    splits = splits_for(f"dataset.path={root}", "dataset.input_shape=[6,5,1]",
                        "dataset.input_dtype=image")
    x, y = next(splits.train.as_numpy_iterator())
    assert x.shape == (6, 5, 1) and x.dtype == np.float32
    assert abs(float(x.mean()) - (40 + 170 * int(y)) / 255) < 1e-6


def test_a_record_that_does_not_match_the_spec_is_named(tmp_path):
    root = write_shards(tmp_path / "data", bad_at=(1, 7))
    with pytest.raises(ConfigError) as err:
        splits_for(f"dataset.path={root}", "dataset.input_shape=[6]")
    msg = str(err.value)
    assert "train-00001.tfrecord, record 7" in msg and "on_bad_record=skip" in msg
    splits = splits_for(f"dataset.path={root}", "dataset.input_shape=[6]",
                        "dataset.on_bad_record=skip")
    assert splits.spec.skipped == 1
    assert splits.spec.num_train + splits.spec.num_val + splits.spec.num_test == 119


def test_damaged_and_missing_files(tmp_path):
    root = write_shards(tmp_path / "data", shards=2)
    shard = root / "train-00001.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-7])  # truncated
    with pytest.raises(ConfigError) as err:
        splits_for(f"dataset.path={root}", "dataset.input_shape=[6]")
    assert "train-00001.tfrecord is not a readable TFRecord file" in str(err.value)
    splits = splits_for(f"dataset.path={root}", "dataset.input_shape=[6]",
                        "dataset.on_bad_record=skip")
    assert splits.spec.num_train + splits.spec.num_val + splits.spec.num_test == 40
    with pytest.raises(ConfigError, match="does not exist"):
        splits_for(f"dataset.path={tmp_path}/nothing", "dataset.input_shape=[6]")
    with pytest.raises(ConfigError, match="label"):
        splits_for(f"dataset.path={root}/train-00000.tfrecord", "dataset.input_shape=[6]",
                   "dataset.num_classes=1", "dataset.task=classification")


def test_fit_on_tfrecords_with_skipped_records_reports_them(tmp_path, cli):
    root = write_shards(tmp_path / "data", bad_at=(0, 3))
    r = cli("fit", "dataset=tfrecord", f"dataset.path={root}", "dataset.input=x",
            "dataset.label=y", "dataset.input_shape=[6]", "dataset.on_bad_record=skip",
            "model=mlp", "trainer.batch_size=16", "trainer.epochs=3", "hydra.run.dir=run")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["data_skipped"] == 1
    assert summary["final"]["val_accuracy"] > 0.9
    assert "1 bad record(s)" in r.stderr + r.stdout
    bad = cli("fit", "dataset=tfrecord", f"dataset.path={root}", "dataset.input=x",
              "dataset.label=y", "dataset.input_shape=[6]", "hydra.run.dir=run2")
    assert bad.returncode == 2 and "record 3" in bad.stderr and "Traceback" not in bad.stderr
