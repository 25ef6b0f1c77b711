"""Model builders: shapes from the dataset spec, causality, padding masks, saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.data.spec import DatasetSpec
from bigtrain.models import build_model  # noqa: E402


def model_cfg(*overrides: str):
    return to_typed(compose(list(overrides))).model


LM_SPEC = DatasetSpec("t", "lm", (16,), "int32", 50, 10, 1, 1)
IMG_SPEC = DatasetSpec("t", "classification", (8, 8), "float32", 10, 10, 1, 1)
TOK_SPEC = DatasetSpec("t", "classification", (12,), "int32", 3, 10, 1, 1)


@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer"])
def test_image_classifiers_output_one_logit_per_class(name):
    model = build_model(model_cfg(f"model={name}"), IMG_SPEC)
    out = model(np.zeros((2, 8, 8), np.float32))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rotary"])
def test_transformer_lm_is_causal(positions):
    model = build_model(model_cfg("model=transformer", f"model.positions={positions}",
                                  "model.dropout=0"), LM_SPEC)
    x = np.random.default_rng(0).integers(1, 50, size=(1, 16)).astype(np.int32)
    y = x.copy()
    y[0, 10:] = (y[0, 10:] + 7) % 50  # change only the future of position 9
    a, b = np.array(model(x)), np.array(model(y))
    assert a.shape == (1, 16, 50)
    np.testing.assert_allclose(a[0, :10], b[0, :10], atol=1e-5)
    assert not np.allclose(a[0, 10:], b[0, 10:])


def test_tied_embeddings_share_the_matrix():
    tied = build_model(model_cfg("model=transformer"), LM_SPEC)
    untied = build_model(model_cfg("model=transformer", "model.tie_embeddings=false"), LM_SPEC)
    assert tied.count_params() + 64 * 50 + 50 == untied.count_params()


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_padding_is_masked_out(pooling):
    """Five tokens plus seven pads (id 0) give exactly what the five tokens alone give."""
    cfg = model_cfg("model=transformer", f"model.pooling={pooling}", "model.vocab_size=30",
                    "model.dropout=0", "model.positions=rotary")
    padded_model = build_model(cfg, TOK_SPEC)
    short_model = build_model(cfg, DatasetSpec("t", "classification", (5,), "int32", 3, 1, 1, 1))
    short_model.set_weights(padded_model.get_weights())  # rotary: no length-sized weights
    tokens = np.array([[3, 7, 9, 2, 4]], np.int32)
    padded = np.concatenate([tokens, np.zeros((1, 7), np.int32)], axis=1)
    np.testing.assert_allclose(np.array(padded_model(padded)), np.array(short_model(tokens)),
                               atol=1e-5)
    # and the mask is what makes it so: real tokens in those places change the output
    filled = padded.copy()
    filled[0, 5:] = 11
    assert not np.allclose(np.array(padded_model(filled)), np.array(padded_model(padded)))


def test_transformer_saves_and_loads_with_safe_mode(tmp_path):
    model = build_model(model_cfg("model=transformer"), LM_SPEC)
    x = np.arange(16, dtype=np.int32)[None] % 50
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.array(loaded(x)), np.array(model(x)), atol=1e-5)


def test_cnn_refuses_language_models():
    from bigtrain.core.errors import ConfigError

    with pytest.raises(ConfigError, match="does not model language"):
        build_model(model_cfg("model=cnn"), LM_SPEC)


def test_cnn_reads_token_sequences_with_1d_convolutions():
    model = build_model(model_cfg("model=cnn", "model.vocab_size=30"), TOK_SPEC)
    assert model(np.ones((2, 12), np.int32)).shape == (2, 3)
    assert any(type(layer).__name__ == "Conv1D" for layer in model.layers)
