"""Hugging Face Transformers folders in and out: model=hub reads a Transformers-format folder
through KerasHub's converters (safetensors only, never a pickle), and bigtrain's hf export
writes one that reads back to the same logits, for each family KerasHub can write."""

from __future__ import annotations

import json

import hf_folders
import numpy as np
import pytest

from bigtrain.core import transformers_folder as hf
from bigtrain.core.errors import ConfigError
from bigtrain.data.spec import DatasetSpec
from bigtrain.models.schemas import HubConfig


def lm_spec(vocab: int, seq_len: int = 8) -> DatasetSpec:
    return DatasetSpec(name="chat", task="lm", input_shape=(seq_len,), input_dtype="int32",
                       num_outputs=vocab, num_train=1, num_val=1, num_test=1)


IDS = np.array([[5, 6, 7, 8, 9, 10, 11, 12], [20, 21, 22, 23, 24, 25, 26, 27]], np.int32)

#: KerasHub's Mistral converter stores the token embedding in float16 on the way in
#: (convert_mistral.py): the round trip is exact up to that rounding
TOLERANCE = {"mistral": 2e-3}


@pytest.mark.parametrize("family", ["gpt2", "llama3", "mistral", "qwen", "gemma"])
def test_an_hf_export_reads_back_through_model_hub_to_the_same_logits(family, tmp_path):
    from bigtrain.models.hf_export import save_transformers
    from bigtrain.models.hub import build_hub, is_transformers_preset

    lm = hf_folders.keras_hub_lm(family)
    want = np.asarray(lm({"token_ids": IDS, "padding_mask": np.ones_like(IDS, bool)}))
    save_transformers(lm, tmp_path / "hf", base_folder=None)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] and "class_name" not in config
    assert is_transformers_preset(str(tmp_path / "hf"))
    model = build_hub(HubConfig(preset=str(tmp_path / "hf")), lm_spec(300))
    got = np.asarray(model(IDS, training=False))
    np.testing.assert_allclose(got, want, atol=TOLERANCE.get(family, 1e-5), rtol=0)


def test_a_handmade_qwen2_folder_loads_with_its_own_tokenizer_and_template(tmp_path):
    from tokenizers import Tokenizer

    from bigtrain.data import tokenizers
    from bigtrain.models.hub import build_hub

    folder = hf_folders.qwen2(tmp_path / "qwen")
    tok = tokenizers.load(str(folder), key="model.preset")
    text = "the cat sat on a mat<|im_end|>"
    assert tok.encode([text])[0] == Tokenizer.from_file(str(folder / "tokenizer.json")
                                                        ).encode(text).ids
    assert tok.window == 256
    assert hf.chat_template(folder) == hf_folders.CHATML
    model = build_hub(HubConfig(preset=str(folder)), lm_spec(tok.vocab_size))
    logits = np.asarray(model(IDS, training=False))
    assert logits.shape == (2, 8, tok.vocab_size) and np.isfinite(logits).all()


def test_a_template_in_tokenizer_config_is_found_too(tmp_path):
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": [{"name": "tool_use", "template": "T"},
                           {"name": "default", "template": "D"}]}))
    assert hf.chat_template(folder) == "D"
    (folder / "chat_template.jinja").write_text("J")
    assert hf.chat_template(folder) == "J"


def test_a_folder_with_only_a_pickle_is_refused_before_anything_loads(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama",
                                                    "architectures": ["LlamaForCausalLM"]}))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(ConfigError) as err:
        HubConfig(preset=str(folder)).precheck()
    assert err.value.key == "model.preset"
    assert "pickle" in str(err.value) and "safetensors" in str(err.value)


def test_a_sharded_folder_missing_a_shard_is_named(tmp_path):
    folder = tmp_path / "sharded"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / hf.SAFETENSORS_INDEX).write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    (folder / "model-00001-of-00002.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="lacks 1 of the 2 weight shards"):
        hf.weight_files(folder)


def test_a_gemma_with_several_key_value_heads_is_refused_by_the_hf_export(tmp_path):
    import keras_hub

    from bigtrain.models.hf_export import save_transformers

    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=300, num_layers=1, num_query_heads=4, num_key_value_heads=4,
        hidden_dim=32, intermediate_dim=64, head_dim=8)
    lm = keras_hub.models.GemmaCausalLM(backbone=backbone, preprocessor=None)
    with pytest.raises(ConfigError, match="one key/value head"):
        save_transformers(lm, tmp_path / "hf", base_folder=None)
    assert not (tmp_path / "hf").exists()


def test_the_adapter_format_refuses_what_it_cannot_hold_by_name(tmp_path):
    from bigtrain.models.peft import save_adapter

    gpt2 = hf_folders.keras_hub_lm("gpt2").backbone
    gpt2.enable_lora(2)
    with pytest.raises(ConfigError, match="GPT2Backbone: use --format hf"):
        save_adapter(gpt2, tmp_path / "a", "base", [])
    qwen = hf_folders.keras_hub_lm("qwen").backbone
    with pytest.raises(ConfigError, match="no LoRA adapters"):
        save_adapter(qwen, tmp_path / "b", "base", [])
    qwen.enable_lora(2)
    with pytest.raises(ConfigError, match="model.train_layers"):
        save_adapter(qwen, tmp_path / "c", "base", ["token_embedding"])


def test_a_hub_handle_with_only_pickled_weights_is_refused_without_loading(monkeypatch,
                                                                           tmp_path):
    """hf://org/name of a Transformers model whose weights are only pytorch_model.bin: the
    hub's file list is asked, nothing is loaded (the hub is simulated: no network)."""
    from keras_hub.src.utils import preset_utils

    from bigtrain.models import hub

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    files = {"config.json", "pytorch_model.bin"}
    monkeypatch.setattr(preset_utils, "get_file", lambda preset, path: str(tmp_path / path))
    monkeypatch.setattr(preset_utils, "check_file_exists", lambda preset, path: path in files)
    with pytest.raises(ConfigError) as err:
        hub.locate("hf://someone/pickled-llama")
    assert err.value.key == "model.preset" and "pickle" in str(err.value)
    files.add("model.safetensors")
    assert hub.locate("hf://someone/pickled-llama") == "hf://someone/pickled-llama"


def test_merging_the_adapters_of_a_bf16_run_is_exact_in_float32(tmp_path):
    """Keras merges an adapter in the layer's compute dtype when it saves; merged() holds
    kernel + scale * A @ B in float32, as the adapter file and PEFT have it."""
    from bigtrain.models import build_model
    from bigtrain.models.hub import hub_task, merged

    folder = hf_folders.qwen2(tmp_path / "qwen")
    spec = lm_spec(300, 16)
    model = build_model(HubConfig(preset=str(folder), lora_rank=2), spec, "bf16")
    rng = np.random.default_rng(0)
    layers = [lyr for lyr in hub_task(model).backbone._flatten_layers(include_self=False)
              if getattr(lyr, "lora_enabled", False)]
    for lyr in layers:
        lyr.lora_kernel_b.assign(rng.standard_normal(lyr.lora_kernel_b.shape) * 0.1)
    plain = {lyr.path: lyr for lyr in hub_task(merged(model, spec))._flatten_layers(
        include_self=False)}
    for lyr in layers:
        want = np.asarray(lyr._kernel) + (lyr.lora_alpha / lyr.lora_rank) * np.matmul(
            np.asarray(lyr.lora_kernel_a), np.asarray(lyr.lora_kernel_b))
        np.testing.assert_allclose(np.asarray(plain[lyr.path].kernel), want, atol=1e-6)
