"""Optimizers and schedules: closed-form values at known steps, Keras references, weight decay
that skips biases and normalization weights, EMA evaluation."""

from __future__ import annotations

import math

import keras  # noqa: E402
import numpy as np
import pytest
import tensorflow as tf

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.optim import build_optimizer  # noqa: E402
from bigtrain.optim.schedules import Schedule, build_learning_rate  # noqa: E402

TOTAL = 1000


def lr_at(name: str, step: int, **kw) -> float:
    return float(Schedule(name, 0.1, TOTAL, **kw)(step))


@pytest.mark.parametrize("name,step,kw,expected", [
    ("constant", 0, {}, 0.1),
    ("constant", 999, {}, 0.1),
    ("constant", 4, {"warmup": 10}, 0.1 * 5 / 10),
    ("step", 250, {"decay_rate": 0.5, "decay_steps": 100}, 0.1 * 0.25),
    ("exponential", 150, {"decay_rate": 0.5, "decay_steps": 100}, 0.1 * 0.5 ** 1.5),
    ("cosine", 0, {}, 0.1),
    ("cosine", 500, {}, 0.05),
    ("cosine", 1000, {"min_lr_ratio": 0.1}, 0.01),
    ("warmup_cosine", 49, {"warmup": 0.1}, 0.1 * 50 / 100),  # 10% of 1000 steps = 100
    ("warmup_cosine", 550, {"warmup": 0.1}, 0.1 * 0.5 * (1 + math.cos(math.pi * 450 / 900))),
    ("linear", 100, {"warmup": 100}, 0.1),
    ("linear", 550, {"warmup": 100}, 0.1 * (1 - 450 / 900)),
    ("inverse_sqrt", 399, {"warmup": 400}, 0.1),
    ("inverse_sqrt", 1599, {"warmup": 400}, 0.1 * math.sqrt(400 / 1600)),
])
def test_schedule_matches_its_closed_form(name, step, kw, expected):
    assert lr_at(name, step, **kw) == pytest.approx(expected, rel=1e-5)


def test_cosine_agrees_with_keras_cosine_decay():
    ours = Schedule("cosine", 0.1, TOTAL, min_lr_ratio=0.2)
    ref = keras.optimizers.schedules.CosineDecay(0.1, TOTAL, alpha=0.2)
    for step in (0, 123, 500, 999):
        assert float(ours(step)) == pytest.approx(float(ref(step)), rel=1e-5)


def test_schedule_is_chosen_from_the_nested_group():
    cfg = to_typed(compose(["optim=adamw", "optim/schedule=warmup_cosine",
                            "optim.schedule.warmup=20"])).optim
    lr = build_learning_rate(cfg, 100)
    assert float(lr(9)) == pytest.approx(cfg.lr * 10 / 20, rel=1e-5)
    with pytest.raises(ConfigError, match="optim.schedule.name"):
        to_typed(compose(["optim.schedule.name=nosuch"]))


REFERENCES = {
    "sgd": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "adam": lambda: keras.optimizers.Adam(0.002),
    "adamw": lambda: keras.optimizers.AdamW(0.002, weight_decay=0.01),
    "adagrad": lambda: keras.optimizers.Adagrad(0.05, initial_accumulator_value=0.1),
    "rmsprop": lambda: keras.optimizers.RMSprop(0.001, rho=0.9),
    "lion": lambda: keras.optimizers.Lion(0.0003),
    "adafactor": lambda: keras.optimizers.Adafactor(0.01),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_optimizer_steps_like_its_keras_reference(name):
    cfg = to_typed(compose([f"optim={name}"])).optim
    ours = build_optimizer(cfg, learning_rate=build_learning_rate(cfg, 100))
    ref = REFERENCES[name]()
    init = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    results = []
    for opt in (ours, ref):
        w = keras.Variable(init)
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(w.value) * [[1.0, 2.0], [3.0, 4.0]])
            opt.apply([tape.gradient(loss, w.value)], [w])
        results.append(w.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)
    assert not np.allclose(results[0], init)


def test_weight_decay_skips_biases_and_norm_weights():
    from bigtrain.optim.builders import exclude_from_decay

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2),
                              keras.layers.LayerNormalization()])
    cfg = to_typed(compose(["optim=adamw", "optim.weight_decay=0.5"])).optim
    opt = build_optimizer(cfg, learning_rate=build_learning_rate(cfg, 10))
    exclude_from_decay(opt, model)
    before = [v.numpy() for v in model.trainable_variables]
    for v in model.trainable_variables[1:]:  # give biases and norm weights non-zero values
        v.assign(np.full(v.shape, 0.7, np.float32))
    before = [v.numpy() for v in model.trainable_variables]
    opt.apply([tf.zeros(v.shape) for v in model.trainable_variables], model.trainable_variables)
    after = [v.numpy() for v in model.trainable_variables]
    kernel_shrunk = np.abs(after[0]).sum() < np.abs(before[0]).sum()
    assert kernel_shrunk  # decayed with a zero gradient
    for b, a in zip(before[1:], after[1:], strict=True):
        np.testing.assert_array_equal(a, b)  # bias, gamma, beta untouched


def test_ema_weights_are_used_for_evaluation(tmp_path):
    from bigtrain.train.fit import build

    config = to_typed(compose(["debug=smoke", "model=mlp", "optim=sgd", "optim.ema=0.5",
                               "trainer.progress=none"]))
    c = build(config, tmp_path)
    it = iter(c.strategy.experimental_distribute_dataset(c.splits.train_batches(32, 0)))
    c.engine.train_steps(it, 3)
    live = [v.numpy() for v in c.model.trainable_variables]
    opt = c.optimizer
    with c.engine.ema_weights():
        swapped = [v.numpy() for v in c.model.trainable_variables]
        averages = [a.numpy() for a in opt._model_variables_moving_average]
    for s, a in zip(swapped, averages, strict=True):
        np.testing.assert_array_equal(s, a)
    assert any(not np.allclose(s, x) for s, x in zip(swapped, live, strict=True))
    for v, x in zip(c.model.trainable_variables, live, strict=True):
        np.testing.assert_array_equal(v.numpy(), x)  # swapped back


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_updates_with_one_fused_kernel_per_variable(name):
    cfg = to_typed(compose([f"optim={name}"])).optim
    opt = build_optimizer(cfg, learning_rate=build_learning_rate(cfg, 100))
    ws = [keras.Variable(np.ones((4, 3), np.float32)), keras.Variable(np.ones(3, np.float32))]
    opt.build(ws)

    @tf.function
    def step():
        opt.apply([tf.ones((4, 3)), tf.ones(3)], ws)

    ops = [op.type for op in step.get_concrete_function().graph.get_operations()]
    assert ops.count("ResourceApplyAdam") == 2
    assert "Sqrt" not in ops  # Keras's unfused step takes a square root per variable
