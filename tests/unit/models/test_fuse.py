"""bigtrain's kernels under KerasHub's Keras layers (bigtrain.models.fuse): the same outputs
and gradients as the layers' own calls, for a GPT-2 causal LM (tanh GELU, causal attention,
LoRA on EinsumDense) and a BERT classifier (exact GELU, padding mask), in float32 and bf16,
dropout included."""

from __future__ import annotations

import hub_presets
import keras
import numpy as np
import pytest
import tensorflow as tf

from bigtrain.models.fuse import fuse


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuse_presets")
    return {"gpt2": hub_presets.gpt2(root / "gpt2", hidden=32, layers=2, heads=4, max_len=32,
                                     dropout=0.2),
            "bert": hub_presets.bert(root / "bert", hidden=32, layers=2, heads=4, max_len=32)}


def _task(presets, kind: str, lora: int = 0, dtype: str = "float32"):
    import keras_hub

    if kind == "gpt2":
        task = keras_hub.models.CausalLM.from_preset(str(presets["gpt2"]), preprocessor=None,
                                                     dtype=dtype)
    else:
        task = keras_hub.models.TextClassifier.from_preset(
            str(presets["bert"]), preprocessor=None, num_classes=3, dtype=dtype)
    if lora:
        task.backbone.enable_lora(lora)
    return task


def _inputs(kind: str):
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 60, (3, 16)).astype("int32")
    mask = np.ones_like(ids, bool)
    if kind == "bert":
        mask[1, 10:] = False  # a padded row: masked keys
        ids[1, 10:] = 0
        return {"token_ids": ids, "padding_mask": mask, "segment_ids": np.zeros_like(ids)}, \
            np.array([0, 2, 1])
    return {"token_ids": ids, "padding_mask": mask}, ids


def _pair(presets, kind: str, lora: int = 0, dtype: str = "float32"):
    """The task twice with the same weights (adapters made non-zero), the second fused."""
    plain, fast = _task(presets, kind, lora, dtype), _task(presets, kind, lora, dtype)
    rng = np.random.default_rng(2)
    for v in plain.weights:
        if "lora_kernel_b" in v.path:
            v.assign(rng.normal(0, 0.2, v.shape).astype(v.dtype))
    fast.set_weights(plain.get_weights())
    counts = fuse(fast)
    return plain, fast, counts


def _loss_and_grads(task, x, y, training: bool):
    with tf.GradientTape() as tape:
        out = tf.cast(task(x, training=training), tf.float32)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, out))
    grads = tape.gradient(loss, task.trainable_variables)
    return out, [tf.convert_to_tensor(g) for g in grads]  # embedding rows: IndexedSlices


def _close_grads(ga, gb, rtol: float):
    """Every gradient within rtol of the largest gradient of all (some are zero in exact
    arithmetic: a key bias cannot change a softmax, so both sides are round-off there)."""
    scale = max(float(tf.reduce_max(tf.abs(g))) for g in ga)
    worst = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(ga, gb, strict=True))
    assert worst <= rtol * scale, (worst, scale)


@pytest.mark.parametrize("kind,lora", [("gpt2", 0), ("gpt2", 4), ("bert", 0), ("bert", 4)])
def test_fused_layers_match_keras_in_float32(presets, kind, lora):
    plain, fast, counts = _pair(presets, kind, lora)
    layers = 2
    assert counts["attention"] == layers and counts["layer_norm"] >= 2 * layers
    assert counts["dense"] >= 2 * layers  # the feed-forward pair of every block
    if lora:
        assert counts["einsum_dense_lora"] == 2 * layers  # query and value
    x, y = _inputs(kind)
    oa, ga = _loss_and_grads(plain, x, y, training=False)
    ob, gb = _loss_and_grads(fast, x, y, training=False)
    np.testing.assert_allclose(ob.numpy(), oa.numpy(), atol=1e-5, rtol=1e-5)
    assert len(ga) == len(gb) == len(plain.trainable_variables)
    _close_grads(ga, gb, 1e-5)


def _seed_states(task) -> list:
    return [lyr.seed_generator.state.numpy().copy() for lyr in task._flatten_layers()
            if isinstance(lyr, keras.layers.Dropout)]


def test_training_dropout_is_reproducible_and_advances_the_seeds_as_keras_does(presets):
    """In training the fused dropouts draw their own masks (not Keras's): the same seed
    states give the same outputs, each dropout layer's seed state moves on by one draw per
    call as Keras's would (what a checkpoint keeps for an exact resume), and dropout acts."""
    plain, fast, counts = _pair(presets, "gpt2")
    assert counts["dropout"] >= 1 + 2 * 2  # embeddings, and each block's two
    x, y = _inputs("gpt2")
    before = _seed_states(fast)
    plain_before = _seed_states(plain)
    first, _ = _loss_and_grads(fast, x, y, training=True)
    _loss_and_grads(plain, x, y, training=True)
    after = _seed_states(fast)
    assert [(a - b).tolist() for a, b in zip(after, before, strict=True)] == \
        [(a - b).tolist() for a, b in zip(_seed_states(plain), plain_before, strict=True)]
    assert all((a - b).tolist() == [0, 1] for a, b in zip(after, before, strict=True))
    second, _ = _loss_and_grads(fast, x, y, training=True)
    assert not np.allclose(first.numpy(), second.numpy(), atol=1e-4)  # new masks
    for lyr, state in zip([lyr for lyr in fast._flatten_layers()
                           if isinstance(lyr, keras.layers.Dropout)], before, strict=True):
        lyr.seed_generator.state.assign(state)
    again, _ = _loss_and_grads(fast, x, y, training=True)
    np.testing.assert_array_equal(again.numpy(), first.numpy())
    eval_out, _ = _loss_and_grads(fast, x, y, training=False)
    assert not np.allclose(first.numpy(), eval_out.numpy(), atol=1e-3)  # dropout did act


def _drop_reference(x, y, rate):
    """Inverted dropout's output and input gradient (of sum(y * g)) for the mask y shows."""
    keep = (y != 0).astype("float32")
    return keep * x / (1 - rate), keep / (1 - rate)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_dropout_kernel_masks_scales_and_differentiates(dtype):
    from bigtrain.models.kernels import dropout

    rate = 0.25
    x = tf.cast(tf.random.stateless_uniform((64, 512), (1, 2), 0.5, 1.5), dtype)
    seed = tf.constant([5, 9], tf.int32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = dropout(x, seed, rate)
    grad = tape.gradient(y, x)
    y32, x32 = (tf.cast(t, tf.float32).numpy() for t in (y, x))
    want_y, want_grad = _drop_reference(x32, y32, rate)
    tol = 1e-6 if dtype == "float32" else 1e-2
    np.testing.assert_allclose(y32, want_y, rtol=tol)
    np.testing.assert_allclose(tf.cast(grad, tf.float32).numpy(), want_grad, rtol=tol)
    dropped = float(np.mean(y32 == 0))
    assert abs(dropped - rate) < 0.01, dropped  # 32768 draws: 4 standard deviations
    np.testing.assert_array_equal(dropout(x, seed, rate).numpy(), y.numpy())  # same seed


def test_the_softmax_dropout_kernel_matches_softmax_then_dropout():
    from bigtrain.models.kernels import masked_softmax_dropout

    rate, scale = 0.2, 0.125
    scores = tf.random.stateless_normal((2, 3, 8, 8), (3, 4)) * 4
    mask = tf.linalg.band_part(tf.ones((8, 8), tf.bool), -1, 0)
    g = tf.random.stateless_normal(scores.shape, (5, 6))
    with tf.GradientTape() as tape:
        tape.watch(scores)
        kept, weights = masked_softmax_dropout(scores, mask, scale, tf.constant([1, 2]), rate)
        loss = tf.reduce_sum(kept * g)
    grad = tape.gradient(loss, scores)
    with tf.GradientTape() as tape:
        tape.watch(scores)
        w = tf.nn.softmax(tf.where(mask, scores * scale, -1e9), axis=-1)
        keep = tf.cast(kept.numpy() != 0, tf.float32)
        want_loss = tf.reduce_sum(w * keep / (1 - rate) * g)
    want_grad = tape.gradient(want_loss, scores)
    np.testing.assert_allclose(weights.numpy(), w.numpy(), atol=1e-6)
    np.testing.assert_allclose(kept.numpy(), (w * keep / (1 - rate)).numpy(), atol=1e-6)
    np.testing.assert_allclose(grad.numpy(), want_grad.numpy(), atol=1e-5)


def test_the_fused_kernels_are_what_runs(presets):
    """The traced forward pass of a fused task calls bigtrain's kernels and none of Keras's
    layer-norm statistics or dropout draws remain."""
    _, fast, _ = _pair(presets, "gpt2", lora=4)
    x, _ = _inputs("gpt2")
    graph = tf.function(lambda x: fast(x, training=True)).get_concrete_function(
        {k: tf.TensorSpec(v.shape, v.dtype) for k, v in x.items()}).graph
    functions = " ".join(f.signature.name for f in graph.as_graph_def().library.function)
    for kernel in ("_layer_norm_fwd", "_bias_gelu_fwd", "_softmax_dropout_fwd", "_dropout_fwd"):
        assert kernel in functions, kernel
    ops = {op.type for op in graph.get_operations()}
    assert "StatelessRandomUniformV2" not in ops and "Mean" not in ops, ops


def test_bf16_is_within_bf16_round_off(presets):
    plain, fast, _ = _pair(presets, "gpt2", lora=4, dtype="mixed_bfloat16")
    x, y = _inputs("gpt2")
    oa, ga = _loss_and_grads(plain, x, y, training=False)
    ob, gb = _loss_and_grads(fast, x, y, training=False)
    assert ob.dtype == oa.dtype
    scale = float(tf.reduce_max(tf.abs(oa)))
    assert float(tf.reduce_max(tf.abs(ob - oa))) <= 3e-2 * scale
    _close_grads(ga, gb, 5e-2)


def test_fuse_twice_changes_nothing_more_and_weights_are_the_layers_own(presets):
    plain, fast, counts = _pair(presets, "gpt2", lora=4)
    assert fuse(fast) == {}
    assert [v.path for v in fast.weights] == [v.path for v in plain.weights]
    config = {**fast.get_config(), "name": plain.name}
    assert config == plain.get_config()


def test_a_layer_norm_over_another_axis_keeps_keras_own_call():
    ln = keras.layers.LayerNormalization(axis=1)
    model = keras.Sequential([keras.Input((4, 5)), ln])
    x = np.random.default_rng(0).normal(size=(2, 4, 5)).astype("float32")
    before = model(x).numpy()
    fuse(model)
    np.testing.assert_allclose(model(x).numpy(), before, atol=1e-6)


def test_train_layers_are_trained_in_full_beside_the_adapters(presets):
    """model.train_layers (LoRA only): the named layers' weights train with the adapters,
    everything else in the backbone stays frozen; a name that matches nothing is refused."""
    from bigtrain.core.errors import ConfigError
    from bigtrain.models.hub import enable_lora
    from bigtrain.models.schemas import HubConfig

    task = _task(presets, "gpt2")
    enable_lora(task.backbone, 4, 0, [], ["layer_norm", "feedforward_layer_norm"])
    paths = sorted(v.path for v in task.backbone.trainable_variables)
    norms = [p for p in paths if "layer_norm" in p]
    assert len(norms) == 2 * (1 + 2)  # gamma and beta of the final norm and each block's
    assert not any("self_attention_layer_norm" in p for p in norms)
    others = [p for p in paths if "layer_norm" not in p]
    assert others and all("lora_kernel" in p or p.endswith(("query/bias", "value/bias"))
                          for p in others)  # the adapted layers' adapters and biases
    with pytest.raises(ConfigError) as err:
        enable_lora(_task(presets, "gpt2").backbone, 4, 0, [], ["layernorm"])
    assert err.value.key == "model.train_layers" and "layer_norm" in str(err.value)
    with pytest.raises(ConfigError) as err:
        HubConfig(preset="x", train_layers=["layer_norm"]).validate()
    assert err.value.key == "model.train_layers"
