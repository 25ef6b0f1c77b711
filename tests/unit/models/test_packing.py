"""dataset.packing: several examples in one window with segment ids. In bigtrain's
transformer no token attends to another example and positions restart per example, so the
token-weighted loss of a packed window equals that of its examples each padded to a window
of its own."""

from __future__ import annotations

import numpy as np
import pytest

from bigtrain.core.errors import ConfigError
from bigtrain.data import chat
from bigtrain.data.spec import DatasetSpec


def examples(seed: int = 0) -> list[chat.Encoded]:
    rng = np.random.default_rng(seed)
    out = []
    for n in (9, 12, 7, 5):
        ids = rng.integers(1, 50, n).tolist()
        trained = [False] * (n // 2) + [True] * (n - n // 2)
        out.append(chat.Encoded(ids, trained))
    return out


def test_pack_fills_windows_in_order_with_segments_and_positions():
    x, y = chat.pack(examples(), seq_len=24, pad_id=0)
    # 8 + 11 positions fit in 24, then 6 + 4
    assert x.shape == (2, 24, 3)
    assert x[0, :, 1].tolist() == [1] * 8 + [2] * 11 + [0] * 5
    assert x[0, :, 2].tolist()[:20] == list(range(8)) + list(range(11)) + [0]
    assert x[1, :, 1].tolist() == [1] * 6 + [2] * 4 + [0] * 14
    assert (y[0, 19:] == chat.IGNORED).all()
    # a target never reaches into the next example
    first = examples()[0]
    assert y[0, 7] == first.ids[-1] and x[0, 8, 0] == examples()[1].ids[0]


def loss(model, objective, x, y, packed: bool) -> float:
    import tensorflow as tf

    from bigtrain.models import packing

    if packed:
        ids, segments, positions = packing.split(tf.constant(x))
        with packing.scope(segments, positions):
            out = model(ids, training=False)
    else:
        out = model(tf.constant(x), training=False)
    per = objective.per_example_loss(tf.constant(y), out)
    return float(tf.reduce_sum(per) / objective.trained_count(tf.constant(y)))


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rotary"])
def test_a_packed_window_has_the_loss_of_its_examples_run_one_by_one(positions):
    import keras

    from bigtrain.models import build_model
    from bigtrain.models.schemas import TransformerConfig
    from bigtrain.train.objective import Objective

    keras.utils.set_random_seed(0)
    spec = DatasetSpec(name="chat", task="lm", input_shape=(32,), input_dtype="int32",
                       num_outputs=50, num_train=1, num_val=1, num_test=1, masked=True)
    cfg = TransformerConfig(d_model=32, num_heads=4, num_layers=2, dropout=0.0,
                            positions=positions)
    model = build_model(cfg, spec, "fp32")
    obj = Objective("lm", 50, masked=True)
    xp, yp = chat.pack(examples(), seq_len=32, pad_id=0)
    xu, yu = chat.windows(examples(), seq_len=32, pad_id=0)
    assert len(xp) < len(xu)
    packed, one_by_one = loss(model, obj, xp, yp, True), loss(model, obj, xu, yu, False)
    assert packed == pytest.approx(one_by_one, rel=1e-5, abs=1e-6)
    # without the segments the examples would see each other: the check can fail
    assert loss(model, obj, xp[..., 0], yp, False) != pytest.approx(one_by_one, rel=1e-4)


@pytest.mark.parametrize("family", ["gpt2", "llama3", "mistral", "qwen", "gemma"])
def test_a_packed_window_of_a_keras_hub_family_has_the_loss_of_its_examples(family, tmp_path):
    """For each family the hf export writes: the preset read back through model=hub with
    packed windows gives the token-weighted loss of its examples run one by one."""
    import hf_folders

    from bigtrain.models.hf_export import save_transformers
    from bigtrain.models.hub import build_hub
    from bigtrain.models.schemas import HubConfig
    from bigtrain.train.objective import Objective

    save_transformers(hf_folders.keras_hub_lm(family), tmp_path / "hf", base_folder=None)
    spec = DatasetSpec(name="chat", task="lm", input_shape=(32,), input_dtype="int32",
                       num_outputs=300, num_train=1, num_val=1, num_test=1, masked=True,
                       packed=True)
    model = build_hub(HubConfig(preset=str(tmp_path / "hf")), spec)
    obj = Objective("lm", 300, masked=True)
    xp, yp = chat.pack(examples(), seq_len=32, pad_id=0)
    xu, yu = chat.windows(examples(), seq_len=32, pad_id=0)
    one_by_one = loss(model, obj, xu, yu, False)
    assert loss(model, obj, xp, yp, True) == pytest.approx(one_by_one, rel=1e-5, abs=1e-6)
    assert loss(model, obj, xp[..., 0], yp, False) != pytest.approx(one_by_one, rel=1e-4)


def test_other_keras_hub_families_refuse_packed_windows_by_name():
    import keras_hub

    from bigtrain.models import hub_packing

    backbone = keras_hub.models.Gemma3Backbone(
        vocabulary_size=50, image_size=None, num_layers=1, num_query_heads=2,
        num_key_value_heads=1, hidden_dim=16, intermediate_dim=32, head_dim=8)
    lm = keras_hub.models.Gemma3CausalLM(backbone=backbone, preprocessor=None)
    with pytest.raises(ConfigError) as err:
        hub_packing.enable(lm)
    assert err.value.key == "dataset.packing" and "Gemma3Backbone" in str(err.value)


def test_remat_recomputes_a_packed_block_with_its_segments():
    """Remat reruns a block in the backward pass, outside the packing scope: the block keeps
    the segments it read, so the gradients equal those without remat."""
    import keras
    import tensorflow as tf

    from bigtrain.models import build_model, packing
    from bigtrain.models.schemas import TransformerConfig
    from bigtrain.train.objective import Objective

    spec = DatasetSpec(name="chat", task="lm", input_shape=(32,), input_dtype="int32",
                       num_outputs=50, num_train=1, num_val=1, num_test=1, masked=True)
    obj = Objective("lm", 50, masked=True)
    xp, yp = chat.pack(examples(), seq_len=32, pad_id=0)
    ids, segments, positions = packing.split(tf.constant(xp))
    grads = []
    for remat in (False, True):
        keras.utils.set_random_seed(0)
        model = build_model(TransformerConfig(d_model=32, num_heads=4, num_layers=2,
                                              dropout=0.0, remat=remat), spec, "fp32")
        with tf.GradientTape() as tape:
            with packing.scope(segments, positions):
                out = model(ids, training=True)
            loss = tf.reduce_sum(obj.per_example_loss(tf.constant(yp), out))
        grads.append(tape.gradient(loss, model.trainable_variables))
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(np.asarray(tf.convert_to_tensor(a)),
                                   np.asarray(tf.convert_to_tensor(b)), atol=1e-5)


def test_packed_windows_in_bf16_give_the_fp32_loss_to_bf16_precision():
    import keras

    from bigtrain.models import build_model
    from bigtrain.models.schemas import TransformerConfig
    from bigtrain.train.objective import Objective

    spec = DatasetSpec(name="chat", task="lm", input_shape=(32,), input_dtype="int32",
                       num_outputs=50, num_train=1, num_val=1, num_test=1, masked=True)
    obj = Objective("lm", 50, masked=True)
    xp, yp = chat.pack(examples(), seq_len=32, pad_id=0)
    losses = {}
    for precision in ("fp32", "bf16"):
        keras.utils.set_random_seed(0)
        model = build_model(TransformerConfig(d_model=32, num_heads=4, num_layers=2,
                                              dropout=0.0, positions="rotary"), spec, precision)
        losses[precision] = loss(model, obj, xp, yp, True)
    assert np.isfinite(losses["bf16"])
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=2e-2)
