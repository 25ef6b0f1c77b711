"""A baseline beside every score, regression targets on a standard scale, and the model a kind
of data gets by default."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from bigtrain.cli.hydra_glue import compose
from bigtrain.core.console import closing_line
from bigtrain.data.pipeline import label_statistics
from bigtrain.data.spec import DatasetSpec
from bigtrain.train.objective import Objective


def _finalize(obj: Objective, y, out, prefix="val_"):
    y, out = tf.constant(y), tf.constant(out, tf.float32)
    return obj.finalize(obj.stats(y, out, obj.per_example_loss(y, out)).numpy(), prefix)


def test_regression_baseline_is_the_training_mean_and_the_loss_is_standardized():
    train_y = np.array([[10.0], [20.0], [30.0], [40.0]], np.float32)
    stats = label_statistics("regression", train_y, 1)
    assert stats == {"target_mean": (25.0,), "target_std": (pytest.approx(11.1803, 1e-4),)}
    obj = Objective("regression", 1, target_mean=stats["target_mean"],
                    target_std=stats["target_std"])
    y = np.array([[0.0], [50.0]], np.float32)
    out = np.array([[5.0], [45.0]], np.float32)
    m = _finalize(obj, y, out)
    assert m["val_mae"] == pytest.approx(5.0)
    assert m["val_loss"] == pytest.approx(25.0 / 125.0)  # (5 / std)^2, std^2 = 125
    assert m["val_baseline_mae"] == pytest.approx(25.0)
    assert m["val_baseline_loss"] == pytest.approx(625.0 / 125.0)
    # training metrics carry no baseline: it is the training split itself
    y_t, out_t = tf.constant(y), tf.constant(out)
    training = obj.finalize(obj.stats(y_t, out_t, obj.per_example_loss(y_t, out_t)).numpy(),
                            baseline=False)
    assert "mae" in training and not any("baseline" in k for k in training)


def test_classification_baseline_is_the_majority_class_and_the_prior():
    counts = label_statistics("classification", np.array([0, 1, 1, 1, 2, 2], np.int32), 3)
    assert counts == {"label_counts": (1, 3, 2)}
    obj = Objective("classification", 3, label_counts=counts["label_counts"])
    y = np.array([1, 1, 2, 0], np.int32)
    m = _finalize(obj, y, np.eye(3, dtype=np.float32)[[1, 1, 2, 0]] * 5)
    prior = np.array([2, 4, 3]) / 9.0  # add-one: (1+1, 3+1, 2+1) / (6 + 3)
    assert m["val_accuracy"] == 1.0 and m["val_baseline_accuracy"] == 0.5
    assert m["val_baseline_loss"] == pytest.approx(-np.mean(np.log(prior[[1, 1, 2, 0]])))


def test_binary_auc_and_the_baseline_share_the_statistics_vector():
    obj = Objective("classification", 2, label_counts=(30, 10))
    y = np.array([0, 1, 0, 1], np.int32)
    m = _finalize(obj, y, np.array([[2, 0], [0, 2], [1, 0], [0, 1]], np.float32))
    assert m["val_auc"] == pytest.approx(1.0) and m["val_baseline_accuracy"] == 0.5


def test_language_model_baseline_is_the_unigram_perplexity():
    counts = label_statistics("lm", np.array([[0, 1, 1, 1]], np.int32), 4)["label_counts"]
    obj = Objective("lm", 4, label_counts=counts)
    y = np.array([[1, 1, 0]], np.int32)
    m = _finalize(obj, y, np.zeros((1, 3, 4), np.float32))
    p = np.array([2, 4, 1, 1]) / 8.0
    loss = -np.mean(np.log(p[[1, 1, 0]]))
    assert m["val_baseline_perplexity"] == pytest.approx(math.exp(loss), rel=1e-5)
    assert m["val_perplexity"] == pytest.approx(4.0, rel=1e-5)  # uniform logits


def test_the_done_line_shows_the_baseline_beside_the_score():
    final = {"val_loss": 0.5, "val_mae": 46.7, "val_baseline_mae": 71.2,
             "test_accuracy": 0.9, "test_baseline_accuracy": 0.4, "test_loss": 0.3}
    line = closing_line(10, 1.0, final, "runs/x")
    assert "val loss 0.5 mae 46.7 (baseline 71.2)" in line
    assert "test loss 0.3 accuracy 0.9 (baseline 0.4)" in line


def test_a_regression_model_outputs_the_targets_units():
    from bigtrain.cli.hydra_glue import compose as compose_cfg
    from bigtrain.config.schema import to_typed
    from bigtrain.models import build_model

    spec = DatasetSpec("t", "regression", (3,), "float32", 1, 10, 2, 2,
                       target_mean=(150.0,), target_std=(80.0,))
    cfg = to_typed(compose_cfg(["model=mlp"])).model
    model = build_model(cfg, spec)
    assert model.layers[-1].name == "target_scale" and model.trainable_weights
    head = model.get_layer("head")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    out = model(np.ones((2, 3), np.float32)).numpy()
    np.testing.assert_allclose(out, 150.0)  # a zero head predicts the training mean


@pytest.mark.parametrize("overrides,model", [
    (["dataset=csv"], "mlp"),
    (["dataset=csv", "model=cnn"], "cnn"),
    (["dataset=text"], "transformer"),
    (["dataset=text_classification"], "transformer"),
    (["dataset=digits"], "cnn"),
    (["experiment=bert_classifier"], "hub"),
    (["dataset=text", "experiment=digits_mlp"], "mlp"),
])
def test_the_model_follows_the_data_unless_chosen(overrides, model):
    assert compose(overrides).model.name == model


def test_the_scaled_regression_model_loads_with_keras_alone(tmp_path):
    import keras

    from bigtrain.config.schema import to_typed
    from bigtrain.models import build_model

    spec = DatasetSpec("t", "regression", (3,), "float32", 1, 10, 2, 2,
                       target_mean=(150.0,), target_std=(80.0,))
    model = build_model(to_typed(compose(["model=mlp"])).model, spec)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")  # no custom objects
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)


def test_a_monitor_that_is_no_metric_of_the_run_is_refused_naming_those_that_are():
    from bigtrain.core.errors import ConfigError
    from bigtrain.train.objective import check_monitor

    obj = Objective("classification", 2, label_counts=(5, 5))
    check_monitor(obj, "val_auc")
    with pytest.raises(ConfigError, match=r"trainer.monitor: 'val_acc' is not a metric of this "
                       r"run \(classification\); allowed: val_loss, val_accuracy, val_auc"):
        check_monitor(obj, "val_acc")
