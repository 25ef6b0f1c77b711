"""Facts about a Hugging Face Transformers-format folder read from its files alone (no
TensorFlow, no KerasHub): whether a folder is one, which weight files it has (safetensors
only: a pickle is refused), its window, its chat template. Shared by the tokenizer and chat
data (bigtrain.data) and the model loader and exporter (bigtrain.models).

A Transformers folder is told from a KerasHub preset by its config.json: Transformers writes
`model_type`, KerasHub writes `class_name`.
"""

from __future__ import annotations

import json
from pathlib import Path

from bigtrain.core.errors import ConfigError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
#: weight files that are Python pickles: loading one can run any code it carries
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5",
           "flax_model.msgpack")
#: files a Transformers folder's tokenizer may be stored in (fast tokenizer, BPE pair,
#: SentencePiece model)
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model")
CHAT_TEMPLATE = "chat_template.jinja"


def read_config(folder: Path) -> dict:
    """The folder's config.json, or {} when it has none or it is not a JSON object."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def is_transformers(folder: Path | str) -> bool:
    """Whether `folder` is a Transformers-format model folder (not a KerasHub preset)."""
    config = read_config(Path(folder))
    return "model_type" in config and "class_name" not in config


def is_transformers_config(config: dict) -> bool:
    return "model_type" in config and "class_name" not in config


def weight_files(folder: Path, key: str = "model.preset") -> list[Path]:
    """The safetensors files holding the folder's weights (one file, or the shards its
    index names). A folder whose weights are only pickles, or that has none, is a
    ConfigError naming `key` and saying why."""
    folder = Path(folder)
    single = folder / SAFETENSORS
    if single.is_file():
        return [single]
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                                .values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as ex:
            raise ConfigError(key, f"{index} is not a safetensors index (a JSON object with "
                              f"a weight_map): {ex}") from None
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ConfigError(key, f"{folder} lacks {len(missing)} of the {len(shards)} "
                              f"weight shards its index names: {', '.join(missing[:3])}")
        return [folder / s for s in shards]
    pickles = [p for p in PICKLES if (folder / p).is_file()] + sorted(
        p.name for p in folder.glob("pytorch_model-*.bin"))
    if pickles:
        raise ConfigError(key, f"{folder} holds its weights only as {pickles[0]}, a Python "
                          "pickle, which can run code when loaded: bigtrain reads safetensors "
                          "only. Convert it once where you trust it, e.g. transformers' "
                          "AutoModel.from_pretrained(DIR).save_pretrained(OUT, "
                          "safe_serialization=True)")
    raise ConfigError(key, f"{folder} has a Transformers config.json but no {SAFETENSORS} "
                      f"(or {SAFETENSORS_INDEX} with its shards)")


def has_tokenizer(folder: Path) -> bool:
    return any((Path(folder) / f).is_file() for f in TOKENIZER_FILES)


def window(config: dict) -> int | None:
    """The longest sequence the model takes, as its config says (Llama, Qwen, Gemma and
    Mistral call it max_position_embeddings, GPT-2 n_positions)."""
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = config.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return None


def chat_template(folder: Path) -> str | None:
    """The folder's own chat template: chat_template.jinja (Transformers 4.43+), else the
    `chat_template` of tokenizer_config.json (a string, or a list of named templates of which
    the one named `default` is taken, as Transformers takes it)."""
    folder = Path(folder)
    path = folder / CHAT_TEMPLATE
    if path.is_file():
        return path.read_text(encoding="utf-8")
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    template = config.get("chat_template") if isinstance(config, dict) else None
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template.strip() else None


def special_tokens(folder: Path) -> dict[str, str]:
    """bos_token / eos_token / pad_token of tokenizer_config.json, as strings (a chat template
    refers to them)."""
    try:
        config = json.loads((Path(folder) / "tokenizer_config.json").read_text(
            encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        value = config.get(name)
        if isinstance(value, dict):  # an AddedToken written out
            value = value.get("content")
        if isinstance(value, str):
            out[name] = value
    return out
