"""Losses and metrics against Keras and scikit-learn references."""

from __future__ import annotations

import keras  # noqa: E402
import numpy as np
import pytest
import tensorflow as tf

from bigtrain.core.errors import ConfigError
from bigtrain.train.objective import Objective  # noqa: E402

RNG = np.random.default_rng(0)


def test_label_smoothing_matches_keras():
    logits = RNG.normal(size=(16, 7)).astype(np.float32)
    y = RNG.integers(0, 7, size=16)
    ours = Objective("classification", 7, "cross_entropy", label_smoothing=0.1)
    ref = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1,
                                               reduction=None)
    np.testing.assert_allclose(ours.per_example_loss(y, logits),
                               ref(np.eye(7)[y], logits), rtol=1e-5)


def test_binary_cross_entropy_matches_keras():
    logits = RNG.normal(size=(16, 1)).astype(np.float32)
    y = RNG.integers(0, 2, size=16)
    ours = Objective("classification", 2, "binary_cross_entropy", label_smoothing=0.2)
    ref = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2, reduction=None)
    np.testing.assert_allclose(ours.per_example_loss(y, logits),
                               ref(y[:, None].astype(np.float32), logits), rtol=1e-5)


def test_huber_matches_keras():
    pred = RNG.normal(size=(16, 1)).astype(np.float32) * 3
    y = RNG.normal(size=(16, 1)).astype(np.float32)
    ours = Objective("regression", 1, "huber", huber_delta=0.7)
    ref = keras.losses.Huber(delta=0.7, reduction=None)
    np.testing.assert_allclose(ours.per_example_loss(y, pred), ref(y, pred), rtol=1e-5)


def test_auc_and_accuracy_match_sklearn():
    from sklearn.metrics import roc_auc_score

    y = RNG.integers(0, 2, size=400)
    logits = np.stack([np.zeros(400), y * 1.5 + RNG.normal(size=400)], 1).astype(np.float32)
    obj = Objective("classification", 2)
    per = obj.per_example_loss(y, logits)
    half = 200  # sums over two "steps" add up like one
    totals = (obj.stats(y[:half], logits[:half], per[:half]).numpy()
              + obj.stats(y[half:], logits[half:], per[half:]).numpy())
    m = obj.finalize(totals, "val_")
    p1 = tf.nn.softmax(logits)[:, 1].numpy()
    assert m["val_auc"] == pytest.approx(roc_auc_score(y, p1), abs=0.01)
    assert m["val_accuracy"] == pytest.approx(np.mean((p1 > 0.5) == y))


def test_top5_accuracy():
    logits = RNG.normal(size=(50, 10)).astype(np.float32)
    y = RNG.integers(0, 10, size=50)
    obj = Objective("classification", 10)
    m = obj.finalize(obj.stats(y, logits, obj.per_example_loss(y, logits)).numpy())
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert m["top5_accuracy"] == pytest.approx(np.mean([y[i] in top5[i] for i in range(50)]))


@pytest.mark.parametrize("task,loss,match", [
    ("regression", "cross_entropy", "regression"),
    ("classification", "mse", "for regression"),
    ("classification", "binary_cross_entropy", "two-class"),
])
def test_losses_that_do_not_fit_the_task_are_refused(task, loss, match):
    with pytest.raises(ConfigError, match=match):
        Objective(task, 10, loss)


def test_binary_run_reports_auc(tmp_path):
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed
    from bigtrain.run.job import train

    config = to_typed(compose(["debug=smoke", "dataset=synthetic", "dataset.num_classes=2",
                               "model=mlp", "trainer.loss=binary_cross_entropy",
                               "trainer.progress=none", "trainer.max_steps=20"]))
    summary = train(config, tmp_path)
    assert 0.5 < summary["final"]["val_auc"] <= 1.0
