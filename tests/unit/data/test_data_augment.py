"""dataset.augment: seeded image and token augmentation and mixup, exact under resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.data import build_dataset  # noqa: E402
from bigtrain.data.augment import _rotate  # noqa: E402
from bigtrain.train.objective import Objective  # noqa: E402


def splits_for(*overrides):
    return build_dataset(to_typed(compose(list(overrides))).dataset)


def batches(splits, epoch, batch=16, skip=0):
    return [(x.numpy(), y.numpy()) for x, y in splits.train_batches(batch, epoch).skip(skip)]


def test_augmented_epochs_are_reproducible_and_resumable():
    aug = ["dataset.augment.crop=1", "dataset.augment.flip=true", "dataset.augment.rotation=20",
           "dataset.augment.cutout=0.3", "dataset.augment.mixup=0.4"]
    a, b = splits_for(*aug), splits_for(*aug)
    first = batches(a, 0)
    again = batches(b, 0)
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    # a resumed epoch (skip k batches) sees exactly the tail of the uninterrupted epoch
    tail = batches(a, 0, skip=3)
    for (x1, _), (x2, _) in zip(first[3:], tail, strict=True):
        np.testing.assert_array_equal(x1, x2)
    # another epoch draws other augmentations; and augmentation changed the inputs
    other = batches(a, 1)
    assert not np.array_equal(first[0][0], other[0][0])
    plain = batches(splits_for(), 0)
    assert first[0][0].shape == plain[0][0].shape == (16, 8, 8)
    assert not np.array_equal(first[0][0], plain[0][0])


def test_flip_only_mirrors():
    plain = batches(splits_for(), 0)
    flipped = batches(splits_for("dataset.augment.flip=true"), 0)
    kinds = set()
    for (xp, _), (xf, _) in zip(plain, flipped, strict=True):
        for p, f in zip(xp, xf, strict=True):
            if np.array_equal(p, f):
                kinds.add("same")
            else:
                np.testing.assert_array_equal(p[:, ::-1], f)
                kinds.add("mirrored")
    assert kinds == {"same", "mirrored"}


def test_rotate_quarter_turn_matches_rot90():
    img = tf.constant(np.arange(25, dtype=np.float32).reshape(5, 5, 1))
    turned = _rotate(img, tf.constant(math.pi / 2)).numpy()
    expected = [tf.image.rot90(img, k).numpy() for k in (1, 3)]
    assert any(np.allclose(turned, e, atol=1e-4) for e in expected)


def test_cutout_erases_a_square_at_most():
    x = batches(splits_for("dataset.normalize=false", "dataset.augment.cutout=0.5"), 0)[0][0]
    plain = batches(splits_for("dataset.normalize=false"), 0)[0][0]
    erased = (x == 0) & (plain != 0)
    per_image = erased.reshape(len(x), -1).sum(axis=1)
    assert per_image.max() <= 16 and per_image.sum() > 0  # side 4 of 8
    np.testing.assert_array_equal(x[x != 0], plain[x != 0])


def test_mixup_gives_soft_labels_and_the_loss_takes_them():
    x, y = batches(splits_for("dataset.augment.mixup=0.4"), 0)[0]
    assert y.shape == (16, 10) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    assert (y.max(axis=1) < 1 - 1e-3).any()  # some labels really are blends
    # one-hot soft labels give the same loss and accuracy as integer labels
    obj = Objective("classification", 10)
    logits = tf.random.stateless_normal([16, 10], [1, 2])
    labels = tf.constant(np.arange(16) % 10)
    hard = obj.per_example_loss(labels, logits)
    soft = obj.per_example_loss(tf.one_hot(labels, 10), logits)
    np.testing.assert_allclose(hard.numpy(), soft.numpy(), rtol=1e-5)
    np.testing.assert_allclose(obj.stats(labels, logits, hard).numpy(),
                               obj.stats(tf.one_hot(labels, 10), logits, soft).numpy(),
                               rtol=1e-5)


def test_token_masking_zeros_about_the_asked_share():
    over = ["dataset=synthetic", "dataset.task=lm", "dataset.num_examples=256",
            "dataset.seq_len=32"]
    plain = batches(splits_for(*over), 0)
    masked = batches(splits_for(*over, "dataset.augment.token_mask=0.3"), 0)
    xp = np.concatenate([x for x, _ in plain])
    xm = np.concatenate([x for x, _ in masked])
    changed = xm != xp
    assert (xm[changed] == 0).all()
    share = ((xm == 0) & (xp != 0)).sum() / (xp != 0).sum()
    assert 0.25 < share < 0.35
    # the targets are untouched
    np.testing.assert_array_equal(np.concatenate([y for _, y in plain]),
                                  np.concatenate([y for _, y in masked]))


@pytest.mark.parametrize("overrides, key", [
    (["dataset=synthetic", "dataset.augment.flip=true"], "dataset.augment.flip"),
    (["dataset.augment.token_mask=0.1"], "dataset.augment.token_mask"),
    (["dataset=synthetic", "dataset.task=regression", "dataset.augment.mixup=0.2"],
     "dataset.augment.mixup"),
])
def test_augmentation_that_does_not_fit_the_data_is_refused(overrides, key):
    with pytest.raises(ConfigError) as err:
        splits_for(*overrides)
    assert key in str(err.value)


def test_augmentation_ranges_are_checked_before_tensorflow(cli):
    r = cli("fit", "dataset.augment.rotation=270")
    assert r.returncode == 2 and "dataset.augment.rotation" in r.stderr
    assert "Traceback" not in r.stderr
