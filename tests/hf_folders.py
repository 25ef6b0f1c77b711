"""Tiny Hugging Face Transformers-format folders made offline, as a user's downloaded
checkpoint looks: config.json as Transformers writes it, model.safetensors written with the
`safetensors` package, tokenizer.json trained with the `tokenizers` package, and a chat
template in chat_template.jinja and tokenizer_config.json (as Transformers 5 saves it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: a ChatML template in the shape Qwen 2's own takes (the one Transformers renders)
CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def corpus_lines() -> list[str]:
    words = ("the cat sat on a mat while two dogs ran in the park and the sun was warm "
             "question answer what is where who capital river city paris rome blue red").split()
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, 8)) for _ in range(300)]


def bpe_tokenizer(vocab_size: int = 300):
    """A byte-level BPE tokenizer (GPT-2 / Qwen style) trained on a small word list, with
    the ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus_lines(), trainer)
    return tok


def qwen2(path: Path, hidden: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2,
          intermediate: int = 64, seed: int = 0, template: str | None = CHATML,
          template_in: str = "jinja") -> Path:
    """A Qwen 2 causal LM of random weights (names and shapes as Transformers' Qwen2 has
    them), its BPE tokenizer and a chat template (`template_in`: jinja, tokenizer_config or
    none)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = bpe_tokenizer()
    tok.save(str(path / "tokenizer.json"))
    vocab = tok.get_vocab_size()
    eos = tok.token_to_id("<|im_end|>")
    head_dim = hidden // heads
    config = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
              "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": intermediate,
              "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": kv_heads, "hidden_act": "silu",
              "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
              "tie_word_embeddings": True, "use_sliding_window": False,
              "sliding_window": 256, "max_window_layers": layers,
              "bos_token_id": tok.token_to_id("<|endoftext|>"), "eos_token_id": eos,
              "torch_dtype": "float32", "transformers_version": "5.0.0"}
    (path / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    tensors = {"model.embed_tokens.weight": w(vocab, hidden),
               "model.norm.weight": np.ones(hidden, np.float32)}
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors.update({
            p + "input_layernorm.weight": np.ones(hidden, np.float32),
            p + "post_attention_layernorm.weight": np.ones(hidden, np.float32),
            p + "self_attn.q_proj.weight": w(heads * head_dim, hidden),
            p + "self_attn.q_proj.bias": w(heads * head_dim),
            p + "self_attn.k_proj.weight": w(kv_heads * head_dim, hidden),
            p + "self_attn.k_proj.bias": w(kv_heads * head_dim),
            p + "self_attn.v_proj.weight": w(kv_heads * head_dim, hidden),
            p + "self_attn.v_proj.bias": w(kv_heads * head_dim),
            p + "self_attn.o_proj.weight": w(hidden, heads * head_dim),
            p + "mlp.gate_proj.weight": w(intermediate, hidden),
            p + "mlp.up_proj.weight": w(intermediate, hidden),
            p + "mlp.down_proj.weight": w(hidden, intermediate)})
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    tok_config = {"tokenizer_class": "Qwen2Tokenizer", "bos_token": None,
                  "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                  "model_max_length": 256, "added_tokens_decoder": {
                      str(tok.token_to_id(t)): {"content": t, "special": True}
                      for t in SPECIALS}}
    if template is not None and template_in == "tokenizer_config":
        tok_config["chat_template"] = template
    (path / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2),
                                                encoding="utf-8")
    if template is not None and template_in == "jinja":
        (path / "chat_template.jinja").write_text(template, encoding="utf-8")
    return path


def keras_hub_lm(family: str, seed: int = 0):
    """A tiny KerasHub causal LM of `family` (random weights, no preprocessor)."""
    import keras
    import keras_hub

    m = keras_hub.models
    keras.utils.set_random_seed(seed)
    common = {"vocabulary_size": 300, "num_layers": 2, "hidden_dim": 32,
              "intermediate_dim": 64}
    gqa = {"num_query_heads": 4, "num_key_value_heads": 2}
    backbones = {
        # KerasHub's GPT-2 converter takes the MLP as 4 x hidden, as every GPT-2 has it
        "gpt2": lambda: (m.GPT2Backbone(num_heads=2, max_sequence_length=64,
                                        **{**common, "intermediate_dim": 128}),
                         m.GPT2CausalLM),
        "llama3": lambda: (m.Llama3Backbone(**gqa, **common), m.Llama3CausalLM),
        "mistral": lambda: (m.MistralBackbone(**gqa, **common), m.MistralCausalLM),
        "qwen": lambda: (m.QwenBackbone(**gqa, **common), m.QwenCausalLM),
        # KerasHub's Gemma exporter writes multi-head keys wrongly (1 key head is Gemma
        # 2B's shape): one key/value head
        "gemma": lambda: (m.GemmaBackbone(num_query_heads=4, num_key_value_heads=1,
                                          head_dim=8, **common), m.GemmaCausalLM),
    }
    backbone, cls = backbones[family]()
    return cls(backbone=backbone, preprocessor=None)
