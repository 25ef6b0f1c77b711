"""`<run dir>/preprocessing.json`: everything that turns raw inputs into model inputs, and
model outputs into answers, as the dataset builder computed it on the training split.

The chief writes it at the start of `bigtrain fit` (and a copy into `checkpoints/`; its SHA-256
goes into summary.json). `eval`, `export`, `generate` and `predict` read it instead of
rebuilding the training data; `bigtrain.inference.serving` turns it into TensorFlow ops.
No TensorFlow here. The layout (format 1):

    {
      "format": 1,
      "dataset": "csv",                      # the dataset option that built it
      "task": "classification",              # classification | regression | lm
      "spec": {...},                         # the DatasetSpec the model is built from
      "classes": ["benign", "malignant"],    # class names in label order (classification)
      "targets": ["price"],                  # output names (regression)
      "input": {"kind": "table" | "image" | "text" | "lm" | "none", ...},
      "source": {"path": "/abs/path/data.csv", ...}   # where the training data was
    }

Input kinds:

  table  `columns`: the raw columns in model-input order, each {"name", "key" (the name as a
         signature key), "type": "numeric", "mean", "std"} or {"name", "key", "type":
         "categorical", "vocabulary": [...]}. A numeric value becomes (value - mean) / std, a
         missing one (`missing_values`, case and spaces ignored) 0; a categorical value becomes
         a one-hot vector over vocabulary + 1, the last slot for missing and unseen values.
         The concatenation is reshaped to `shape` and cast to `dtype`. `label`: the label
         column of the training file.
  image  `height`, `width`, `channels`: decode (PNG, JPEG, BMP, GIF; first frame) to
         `channels`, divide by `scale` (255), resize bilinearly to height x width.
  text   UTF-8 bytes, the first `max_len` kept, each id = byte + `byte_offset` (1), padded
         with `pad_id` (0) to `max_len`. `column`/`label`: the CSV columns, if any. With a
         `tokenizer` entry (below) instead: the tokenizer's ids, [start] + ids + [end] cut
         to `max_len` (the end kept) and padded with its pad id (KerasHub's StartEndPacker).
  lm     `seq_len` tokens; `vocab`: {"type": "byte"} (ids are bytes), {"type": "char",
         "chars": [...], "first_id": 2, "pad_id": 0, "unknown_id": 1} (chars[i] has id
         first_id + i), {"type": "ids", "size": N} (token ids as they are) or
         {"type": "tokenizer", "tokenizer": {...}}.

A `tokenizer` entry (bigtrain/data/tokenizers.py `describe()`): `kind` (wordpiece,
sentencepiece, bpe, preset), `class` (the KerasHub class), `vocab_size`, `pad_id`, `start_id`,
`end_id` (null where it has none), `dir` (the run dir's folder that holds it, in KerasHub's
preset format) and `sha256` (of its content).
  none   a source that did not describe its inputs: only model inputs are served.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import keyword
import os
import re
from pathlib import Path
from typing import Any

from bigtrain.core.errors import ConfigError
from bigtrain.data.columns import (  # noqa: F401 - read by inference
    MISSING_VALUES,
    is_missing,
    parse_number,
)
from bigtrain.data.spec import DatasetSpec

FILENAME = "preprocessing.json"
FORMAT = 1
KINDS = ("table", "image", "text", "lm", "none")


# ------------------------------------------------------------------ what the builders fill in
def signature_keys(names: list[str]) -> list[str]:
    """Each column name as a key that a SavedModel signature accepts (a Python identifier),
    unique: `mean radius` -> `mean_radius`, `2nd` -> `f_2nd`."""
    keys: list[str] = []
    for name in names:
        key = re.sub(r"\W", "_", str(name), flags=re.ASCII) or "f"
        if key[0].isdigit() or keyword.iskeyword(key):
            key = "f_" + key
        base, n = key, 2
        while key in keys:
            key, n = f"{base}_{n}", n + 1
        keys.append(key)
    return keys


def numeric(name: str, mean: float = 0.0, std: float = 1.0) -> dict[str, Any]:
    return {"name": name, "type": "numeric", "mean": float(mean), "std": float(std)}


def categorical(name: str, vocabulary: list[str]) -> dict[str, Any]:
    return {"name": name, "type": "categorical", "vocabulary": list(vocabulary)}


def table(columns: list[dict[str, Any]], shape, dtype: str = "float32", label: str | None = None,
          delimiter: str = ",") -> dict[str, Any]:
    keys = signature_keys([c["name"] for c in columns])
    columns = [{"name": c["name"], "key": key, **{k: v for k, v in c.items() if k != "name"}}
               for c, key in zip(columns, keys, strict=True)]
    return {"kind": "table", "columns": columns, "missing_values": list(MISSING_VALUES),
            "shape": list(shape), "dtype": dtype, "label": label, "delimiter": delimiter}


def identity_table(names: list[str], shape, dtype: str = "float32", label: str | None = None
                   ) -> dict[str, Any]:
    """Numeric columns taken as they are (mean 0, deviation 1)."""
    return table([numeric(n) for n in names], shape, dtype, label=label)


def image(height: int, width: int, channels: int) -> dict[str, Any]:
    return {"kind": "image", "height": int(height), "width": int(width),
            "channels": int(channels), "scale": 255.0, "resize": "bilinear",
            "formats": ["png", "jpeg", "bmp", "gif"]}


def text(max_len: int, column: str | None = None, label: str | None = None) -> dict[str, Any]:
    return {"kind": "text", "max_len": int(max_len), "encoding": "utf-8", "byte_offset": 1,
            "pad_id": 0, "column": column, "label": label}


def lm_bytes(seq_len: int) -> dict[str, Any]:
    return {"kind": "lm", "seq_len": int(seq_len), "vocab": {"type": "byte"}}


def lm_chars(seq_len: int, chars: list[str]) -> dict[str, Any]:
    return {"kind": "lm", "seq_len": int(seq_len),
            "vocab": {"type": "char", "chars": list(chars), "first_id": 2, "pad_id": 0,
                      "unknown_id": 1}}


def text_tokenizer(max_len: int, tokenizer: dict[str, Any], column: str | None = None,
                   label: str | None = None) -> dict[str, Any]:
    """Texts through a tokenizer (`describe()` of bigtrain.data.tokenizers.Tokenizer)."""
    return {"kind": "text", "max_len": int(max_len), "encoding": "utf-8",
            "pad_id": int(tokenizer["pad_id"]), "tokenizer": dict(tokenizer),
            "column": column, "label": label}


def lm_tokenizer(seq_len: int, tokenizer: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "lm", "seq_len": int(seq_len),
            "vocab": {"type": "tokenizer", "tokenizer": dict(tokenizer)}}


def chat(seq_len: int, tokenizer: dict[str, Any] | None, template_name: str, template: str,
         train_on: str, specials: dict[str, str]) -> dict[str, Any]:
    """Conversations through a chat template (bigtrain/data/chat.py): the template's source
    is kept, so chat and eval render prompts exactly as the run trained on them."""
    vocab = {"type": "tokenizer", "tokenizer": dict(tokenizer)} if tokenizer else \
        {"type": "byte"}
    return {"kind": "lm", "seq_len": int(seq_len), "vocab": vocab,
            "chat": {"template_name": template_name, "template": template,
                     "train_on": train_on, "specials": dict(specials)}}


def tokenizer_of(pre: dict[str, Any]) -> dict[str, Any] | None:
    """The tokenizer entry of a preprocessing document, None for bytes, chars and ids."""
    inputs = pre.get("input") or {}
    return inputs.get("tokenizer") or (inputs.get("vocab") or {}).get("tokenizer")


def lm_ids(seq_len: int, size: int) -> dict[str, Any]:
    return {"kind": "lm", "seq_len": int(seq_len), "vocab": {"type": "ids", "size": int(size)}}


def index_classes(count: int) -> list[str]:
    return [str(k) for k in range(count)]


# ------------------------------------------------------------------ the whole document
def document(spec: DatasetSpec, described: dict[str, Any] | None, dataset_cfg) -> dict[str, Any]:
    """The preprocessing.json of a built dataset: what its builder described (`input`,
    `classes` or `targets`), its spec, and where the data came from."""
    described = dict(described or {})
    inputs = described.get("input") or {"kind": "none"}
    classes = described.get("classes")
    if spec.task == "classification":
        classes = list(classes or [])
        # more outputs than named classes (a class absent from training): name them by id
        classes += [str(k) for k in range(len(classes), spec.num_outputs)]
    else:
        classes = None
    targets = described.get("targets")
    if spec.task == "regression" and not targets:
        targets = [f"y{k}" for k in range(spec.num_outputs)] if spec.num_outputs > 1 else ["y"]
    source: dict[str, Any] = {}
    path = getattr(dataset_cfg, "path", None)
    if isinstance(path, str) and path and path != "stdlib":
        full = os.path.expanduser(path)
        source["path"] = path
        source["absolute_path"] = os.path.normpath(full if os.path.isabs(full)
                                                   else os.path.join(os.getcwd(), full))
        if os.path.isfile(source["absolute_path"]):  # a table or a text file: its bytes
            source["sha256"] = file_digest(source["absolute_path"])
    return {
        "format": FORMAT,
        "dataset": str(getattr(dataset_cfg, "name", spec.name)),
        "task": spec.task,
        "spec": spec_dict(spec),
        "classes": classes,
        "targets": targets if spec.task == "regression" else None,
        "input": inputs,
        "source": source,
    }


def spec_dict(spec: DatasetSpec) -> dict[str, Any]:
    out = dataclasses.asdict(spec)
    for key, value in out.items():
        if isinstance(value, tuple):  # as JSON gives them back
            out[key] = list(value)
    return out


def spec_of(pre: dict[str, Any]) -> DatasetSpec:
    """The DatasetSpec recorded in a preprocessing document."""
    fields = {f.name for f in dataclasses.fields(DatasetSpec)}
    raw = {k: v for k, v in pre["spec"].items() if k in fields}
    raw["input_shape"] = tuple(int(d) for d in raw["input_shape"])
    for key in ("target_mean", "target_std", "label_counts"):
        if key in raw:
            raw[key] = tuple(raw[key])
    return DatasetSpec(**raw)


def dumps(pre: dict[str, Any]) -> str:
    """The file's text: deterministic for equal documents (floats as Python's repr)."""
    return json.dumps(pre, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_changed(pre: dict[str, Any] | None) -> str | None:
    """Why the data file a run was trained on is not the same now (its SHA-256 differs, or it
    is gone), or None (the same, or a source that recorded no digest: folders, streams)."""
    source = (pre or {}).get("source") or {}
    recorded, path = source.get("sha256"), source.get("absolute_path")
    if not recorded or not path:
        return None
    if not os.path.isfile(path):
        return f"{path} is gone"
    return None if file_digest(path) == recorded else f"{path} changed since"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def path_in(run_dir: Path) -> Path:
    return Path(run_dir) / FILENAME


def write(run_dir: Path, pre: dict[str, Any]) -> str:
    """Write `<run dir>/preprocessing.json` and its copy `checkpoints/preprocessing.json`;
    return the text's SHA-256."""
    from bigtrain.core.files import atomic_write_text

    text = dumps(pre)
    atomic_write_text(path_in(run_dir), text)
    atomic_write_text(Path(run_dir) / "checkpoints" / FILENAME, text)
    return digest(text)


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys whose values differ between two documents (dotted, at most a few levels deep)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and \
            any(isinstance(v, dict) for v in old):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            # a table's columns by name (input.columns.bmi.mean), other entries by position
            name = a.get("name") if isinstance(a, dict) and a.get("name") == (
                b.get("name") if isinstance(b, dict) else None) else None
            out += differences(a, b, f"{prefix}{name if name is not None else i}.")
        return out
    return [] if old == new else [prefix[:-1]]


def read(run_dir: Path) -> dict[str, Any] | None:
    """The run's preprocessing document; None when the run dir has none (a run from before
    bigtrain wrote one). A damaged or unknown file is a ConfigError naming it."""
    path = path_in(run_dir)
    if not path.exists():
        return None
    try:
        pre = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as ex:
        raise ConfigError("RUN_DIR", f"{path} is not readable JSON ({ex}); restore it from "
                          f"{Path(run_dir) / 'checkpoints' / FILENAME}") from ex
    check(pre, str(path))
    return pre


def check(pre: Any, where: str) -> None:
    if not isinstance(pre, dict) or pre.get("format") != FORMAT:
        found = pre.get("format") if isinstance(pre, dict) else type(pre).__name__
        raise ConfigError("RUN_DIR", f"{where} has format {found!r}; this bigtrain reads "
                          f"format {FORMAT}")
    for key in ("task", "spec", "input"):
        if key not in pre:
            raise ConfigError("RUN_DIR", f"{where} has no {key!r} entry")
    kind = pre["input"].get("kind") if isinstance(pre["input"], dict) else None
    if kind not in KINDS:
        raise ConfigError("RUN_DIR", f"{where}: input kind {kind!r} is not one of "
                          + ", ".join(KINDS))
