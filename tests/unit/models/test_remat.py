"""model.remat: the transformer's blocks recomputed in the backward pass (tf.recompute_grad)
give the plain path's gradients, dropout masks included, advance the dropout seed state as
the plain path does (exact resume), and really recompute (the gradient graph runs the
blocks' matmuls again). The memory estimate (bigtrain info, the warning before a run)
against a measured peak, and the GPT-2-small preset."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.data.spec import DatasetSpec
from bigtrain.models import build_model  # noqa: E402
from bigtrain.models.transformer import TransformerBlock  # noqa: E402

SPEC = DatasetSpec("t", "lm", (16,), "int32", 50, 10, 1, 1)
CLASSIFY = DatasetSpec("t", "classification", (16,), "int32", 3, 10, 1, 1)


def model_of(*overrides: str, spec=SPEC):
    keras.mixed_precision.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    cfg = to_typed(compose(["model=transformer", "model.d_model=32", "model.num_heads=4",
                            "model.num_layers=2", *overrides]))
    return build_model(cfg.model, spec)


def seed_states(model) -> list[np.ndarray]:
    return [v.numpy().copy() for v in model.variables if "seed_generator" in v.path]


def set_remat(model, on: bool) -> None:
    for layer in model.layers:
        if isinstance(layer, TransformerBlock):
            layer.remat = on


def grads_of(model, x, steps: int = 2):
    """The gradients of `steps` calls in a fresh tf.function, and its traced graph."""
    def loss_and_grads(x):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = tf.reduce_mean(tf.square(tf.cast(out, tf.float32)))
        return tape.gradient(loss, model.trainable_variables)

    fn = tf.function(loss_and_grads)
    grads = [[tf.convert_to_tensor(g).numpy() for g in fn(x)] for _ in range(steps)]
    return grads, fn.get_concrete_function(x).graph


def batch(spec=SPEC):
    return tf.constant(np.random.default_rng(0).integers(1, 10, (4, 16)).astype(np.int32))


def ops_of(graph, kind: str) -> int:
    """Ops of `kind` in a graph and the functions it calls (the gradients live in those)."""
    count = sum(op.type == kind for op in graph.get_operations())
    for f in graph._functions.values():  # noqa: SLF001
        count += sum(op.type == kind for op in f.graph.get_operations()) \
            if hasattr(f, "graph") else 0
    return count


@pytest.mark.parametrize("spec,positions", [(SPEC, "learned"), (CLASSIFY, "rotary")],
                         ids=["lm-learned", "padded-encoder-rotary"])
def test_remat_gives_the_plain_gradients_with_the_same_dropout_masks(spec, positions):
    model = model_of("model.dropout=0.3", f"model.positions={positions}",
                     "model.vocab_size=10", spec=spec)
    start = seed_states(model)
    x = batch(spec)
    plain, _ = grads_of(model, x)
    after_plain = seed_states(model)
    for v, s in zip([v for v in model.variables if "seed_generator" in v.path], start,
                    strict=True):
        v.assign(s)
    set_remat(model, True)
    remat, _ = grads_of(model, x)
    for step_plain, step_remat in zip(plain, remat, strict=True):
        for a, b in zip(step_plain, step_remat, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    # two steps drew different masks (the state moved), and remat moved it alike
    assert any(not np.array_equal(a, b) for a, b in zip(plain[0], plain[1], strict=True))
    assert all(np.array_equal(a, b) for a, b in
               zip(after_plain, seed_states(model), strict=True))


def test_remat_recomputes_the_blocks_in_the_backward_pass():
    model = model_of("model.dropout=0")
    x = batch()
    _, plain_graph = grads_of(model, x, steps=1)
    set_remat(model, True)
    _, remat_graph = grads_of(model, x, steps=1)
    # each block's 4 projections (qkv, proj, fc1, fc2) run once more per layer
    assert ops_of(remat_graph, "MatMul") >= ops_of(plain_graph, "MatMul") + 2 * 4


def test_model_remat_reaches_every_block_and_its_saved_config():
    model = model_of("model.remat=true")
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
    assert len(blocks) == 2 and all(b.remat for b in blocks)
    assert TransformerBlock.from_config(blocks[0].get_config()).remat
    # inference and the symbolic build take the plain path: the same outputs
    out = model(batch(), training=False)
    set_remat(model, False)
    np.testing.assert_array_equal(out, model(batch(), training=False))


# ---------------------------------------------------------------------- memory estimate
def test_remat_estimate_keeps_only_block_inputs():
    model = model_of("model.dropout=0.1")
    from bigtrain.models.size import measure

    plain = measure(model, SPEC.input_shape, "int32", flops=False)
    set_remat(model, True)
    remat = measure(model, SPEC.input_shape, "int32", flops=False)
    assert remat.activation_bytes(8, "fp32") < plain.activation_bytes(8, "fp32")
    assert plain.memory(8, "bf16", 2).weights == 6 * plain.trainable  # fp32 + bf16 copies
    assert plain.memory(8, "fp32", 2).optimizer == 8 * plain.trainable


def test_a_run_that_cannot_fit_is_warned_before_it_starts(monkeypatch, caplog):
    from bigtrain.models import size
    from bigtrain.train import fit

    model = model_of()
    optim = to_typed(compose(["optim=adam"])).optim
    monkeypatch.setattr(size, "device_memory", lambda gpu: ("available host memory", 2**20))
    with caplog.at_level("WARNING"):
        fit._warn_if_too_big(model, 8, "fp32", optim)
    assert "may not fit" in caplog.text and "model.remat=true" in caplog.text
    monkeypatch.setattr(size, "device_memory", lambda gpu: ("available host memory", 2**40))
    assert size.memory_warning(model, 8, "fp32", optim, gpu=False) is None


def test_info_shows_the_memory_per_precision_and_warns_when_it_cannot_fit():
    from typer.testing import CliRunner

    from bigtrain.cli.main import app

    args = ["info", "model=transformer", "dataset=synthetic", "dataset.task=lm",
            "model.num_layers=1"]
    ok = CliRunner().invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "training step memory" in ok.output and "bf16" in ok.output
    assert "fits:" in ok.output
    huge = CliRunner().invoke(app, [*args, "trainer.batch_size=4000000"])
    assert huge.exit_code == 0 and "may not fit" in huge.output, huge.output


def test_gpt2_small_preset_has_the_gpt2_shape_and_parameter_count():
    cfg = to_typed(compose(["model=transformer", "model/size=gpt2_small"])).model
    assert (cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.mlp_ratio) == (768, 12, 12, 4)
    keras.mixed_precision.set_dtype_policy("float32")
    block = TransformerBlock(cfg.d_model, cfg.num_heads, cfg.mlp_ratio, 0.0, True, False)
    block.build((None, cfg.d_model))  # one block: building all 124M weights takes seconds
    # 12 blocks, the tied 50,257-token embedding, 1,024 learned positions, the final norm
    params = 12 * block.count_params() + 50257 * 768 + 1024 * 768 + 2 * 768
    assert block.count_params() == 12 * 768**2 + 13 * 768
    assert 123e6 < params < 126e6, params  # GPT-2 small: 124M with tied embeddings
