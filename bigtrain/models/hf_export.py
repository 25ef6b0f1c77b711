"""A fine-tuned KerasHub causal LM written as a Hugging Face Transformers folder, for
transformers, vLLM, SGLang or llama.cpp's converter: KerasHub's own exporter
(`export_to_transformers`) writes the weights (model.safetensors) and config.json; bigtrain
completes the config where that exporter leaves out what Transformers' and KerasHub's loaders
read (`architectures`, Qwen 2's sliding-window keys, `torch_dtype`), and adds the tokenizer
and the chat template:

- a base that was itself a Transformers folder gives its tokenizer files verbatim
  (tokenizer.json, tokenizer_config.json, special_tokens_map.json, ...), so the export
  tokenizes exactly as the base did;
- a KerasHub preset's tokenizer goes through KerasHub's tokenizer exporter;
- the chat template the run trained with is written to chat_template.jinja (Transformers 5)
  and into tokenizer_config.json's `chat_template` (Transformers 4).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bigtrain.core import transformers_folder as hf
from bigtrain.core.errors import ConfigError

#: the backbones KerasHub can write as Transformers folders, and the class Transformers
#: loads each with
ARCHITECTURES = {
    "GPT2Backbone": "GPT2LMHeadModel",
    "Llama3Backbone": "LlamaForCausalLM",
    "MistralBackbone": "MistralForCausalLM",
    "QwenBackbone": "Qwen2ForCausalLM",
    "GemmaBackbone": "GemmaForCausalLM",
    "Gemma3Backbone": "Gemma3ForCausalLM",
}

#: tokenizer files of a Transformers folder copied from the base as they are
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
                    "generation_config.json",
                    # the base's terms travel with a model derived from it
                    "LICENSE", "LICENSE.txt", "LICENSE.md", "NOTICE", "USE_POLICY.md",
                    "README.md")


def check_family(backbone) -> None:
    name = type(backbone).__name__
    if name not in ARCHITECTURES:
        families = ", ".join(sorted(k.removesuffix("Backbone") for k in ARCHITECTURES))
        raise ConfigError("--format", f"hf: KerasHub writes Transformers folders of "
                          f"{families}; this run's model is a {name}. Use --format preset "
                          "(KerasHub's own format) or savedmodel")
    if name == "GemmaBackbone" and backbone.num_key_value_heads > 1:
        # KerasHub 0.32's Gemma exporter writes key and value projections of the first
        # key/value head only (export/gemma.py: weights[0][0]): right for Gemma 2B's one
        # head, wrong for more
        raise ConfigError("--format", f"hf: KerasHub's Gemma exporter writes one key/value "
                          f"head and this model has {backbone.num_key_value_heads}: the folder "
                          "would be wrong. Use --format preset (KerasHub's own format)")


def save_transformers(task, directory: Path, base_folder: Path | None, tokenizer=None,
                      chat_template: str | None = None, stop_ids: list[int] = ()) -> None:
    """Write `task` (adapters already merged) into `directory` as a Transformers folder.
    `base_folder`: the local Transformers folder the run started from (its tokenizer files
    are copied), None for a KerasHub preset, whose `tokenizer` layer is exported instead.
    `stop_ids`: where generation ends besides the model's end token (the chat template's
    end of turn), written into generation_config.json's eos_token_id."""
    from keras_hub.src.utils.transformers.export import hf_exporter

    backbone = task.backbone
    check_family(backbone)
    directory = Path(directory)
    saved = task.preprocessor
    task.preprocessor = None
    try:
        hf_exporter.export_to_safetensors(task, str(directory))
    finally:
        task.preprocessor = saved
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.setdefault("architectures", [ARCHITECTURES[type(backbone).__name__]])
    if config.get("model_type") == "qwen2":
        config.setdefault("use_sliding_window", False)
        config.setdefault("sliding_window", getattr(backbone, "sliding_window_size", 4096))
        config.setdefault("max_window_layers", backbone.num_layers)
    config.setdefault("torch_dtype", "float32")  # Transformers 4 reads this key,
    config.setdefault("dtype", "float32")  # Transformers 5 this one
    if base_folder is not None:
        base = hf.read_config(base_folder)
        for key in ("bos_token_id", "eos_token_id", "pad_token_id", "max_position_embeddings",
                    "rope_scaling"):
            if key in base:
                config[key] = base[key]
        for name in TOKENIZER_FILES:
            if (Path(base_folder) / name).is_file():
                shutil.copyfile(Path(base_folder) / name, directory / name)
    elif tokenizer is not None:
        hf_exporter.export_tokenizer(tokenizer, str(directory))
        if tokenizer.end_token is not None:
            config["eos_token_id"] = tokenizer.token_to_id(tokenizer.end_token)
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if chat_template:
        write_chat_template(directory, chat_template)
    _generation_stops(directory, config, stop_ids)


def _generation_stops(directory: Path, config: dict, stop_ids) -> None:
    """generation_config.json's eos_token_id: the model's end token and `stop_ids` (a chat
    template's end of turn), so transformers' generate ends an answer where the run does."""
    path = Path(directory) / "generation_config.json"
    gen = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    eos = gen.get("eos_token_id", config.get("eos_token_id"))
    ends = [e for e in (eos if isinstance(eos, list) else [eos]) if isinstance(e, int)]
    ends += [i for i in stop_ids if i not in ends]
    if not ends:
        return
    gen["eos_token_id"] = ends if len(ends) > 1 else ends[0]
    for key in ("bos_token_id", "pad_token_id"):
        if key in config and key not in gen:
            gen[key] = config[key]
    path.write_text(json.dumps(gen, indent=2) + "\n", encoding="utf-8")


def write_chat_template(directory: Path, template: str) -> None:
    """The template in chat_template.jinja and in tokenizer_config.json's chat_template."""
    directory = Path(directory)
    (directory / hf.CHAT_TEMPLATE).write_text(template, encoding="utf-8")
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    config["chat_template"] = template
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
