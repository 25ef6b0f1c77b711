"""The image_folder source on images the test writes with TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.data import build_dataset  # noqa: E402


def make_folder(root, per_class=30, corrupt=False):
    rng = np.random.default_rng(0)
    for name, level in [("dark", 40), ("bright", 210)]:
        d = root / name
        d.mkdir(parents=True)
        for i in range(per_class):
            img = np.clip(rng.normal(level, 20, size=(12, 10, 3)), 0, 255).astype(np.uint8)
            if i % 2:
                (d / f"{i}.png").write_bytes(tf.io.encode_png(img).numpy())
            else:
                (d / f"{i}.jpg").write_bytes(tf.io.encode_jpeg(img).numpy())
    if corrupt:
        (root / "dark" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


def splits_for(*overrides):
    return build_dataset(to_typed(compose(["dataset=image_folder", *overrides])).dataset)


def test_images_are_decoded_and_resized(tmp_path):
    root = make_folder(tmp_path / "imgs")
    splits = splits_for(f"dataset.path={root}", "dataset.image_size=[8,8]")
    spec = splits.spec
    assert spec.input_shape == (8, 8, 3) and spec.num_outputs == 2
    assert spec.num_train + spec.num_val + spec.num_test == 60
    x, y = next(iter(splits.train.batch(60)))
    assert x.shape[1:] == (8, 8, 3) and 0.0 <= float(tf.reduce_min(x)) <= 1.0
    bright = tf.reduce_mean(x, axis=[1, 2, 3]).numpy() > 0.5
    np.testing.assert_array_equal(bright, y.numpy() == 0)  # classes sorted: bright=0, dark=1


def test_a_model_learns_the_folder(tmp_path):
    from bigtrain.run.job import train

    root = make_folder(tmp_path / "imgs")
    config = to_typed(compose(["dataset=image_folder", f"dataset.path={root}",
                               "dataset.image_size=[8,8]", "model=mlp", "trainer.epochs=15",
                               "trainer.batch_size=8", "trainer.progress=none",
                               "logger=[]"]))
    assert train(config, tmp_path / "run")["final"]["val_accuracy"] >= 0.8


def test_corrupt_image_is_named_or_skipped(tmp_path, caplog):
    root = make_folder(tmp_path / "imgs", corrupt=True)
    with pytest.raises(ConfigError, match=r"broken.png is not a readable image"):
        splits_for(f"dataset.path={root}")
    splits = splits_for(f"dataset.path={root}", "dataset.on_bad_record=skip")
    assert "skipped 1 image(s)" in caplog.text
    assert splits.spec.num_train + splits.spec.num_val + splits.spec.num_test == 60


@pytest.mark.parametrize("layout,match", [
    ("missing", "does not exist"),
    ("one_class", "at least 2"),
    ("empty_class", "has no images"),
])
def test_bad_folders_are_named(tmp_path, layout, match):
    root = tmp_path / "imgs"
    if layout != "missing":
        make_folder(root, per_class=2)
        if layout == "one_class":
            for f in (root / "dark").iterdir():
                f.unlink()
            (root / "dark").rmdir()
        else:
            (root / "empty").mkdir()
    with pytest.raises(ConfigError, match=match):
        splits_for(f"dataset.path={root}")
