"""Subword tokenizers for the text datasets: learned from the training split, or loaded.

A `Tokenizer` wraps one KerasHub tokenizer layer (`.layer`) with the ids bigtrain packs
sequences with (`pad_id`, `start_id`, `end_id`). Its `encode_tf` is a TensorFlow op, so
tokenization runs inside tf.data pipelines and inside exported SavedModels.

Kinds (`dataset.vocab`):

  wordpiece      KerasHub's `compute_word_piece_vocabulary` + `WordPieceTokenizer`: words
                 split on whitespace and punctuation, then into pieces ([PAD] 0, [CLS] 1 is
                 the start, [SEP] 2 the end, [UNK] 3). Whitespace does not survive: decoded
                 text has its tokens joined by single spaces; words with characters never
                 seen in training become [UNK].
  sentencepiece  SentencePiece's unigram model in KerasHub's `SentencePieceTokenizer`
  bpe            (<pad> 0, <unk> 1, <s> 2, </s> 3), trained by the sentencepiece library with
                 model_type unigram or bpe, lossless: identity normalization, whitespace kept,
                 newline a token of its own, unseen characters as UTF-8 byte pieces
                 (byte_fallback), so decode(encode(text)) == text. KerasHub's
                 `compute_sentence_piece_proto` does not expose these options (it normalizes
                 with NFKC and collapses runs of spaces, which would lose the indentation of
                 code), so the trainer is called with them directly, one thread (the result
                 then depends only on the text).
  preset         any other KerasHub tokenizer (a pretrained model's, `from_keras_hub`).

Learning reads lines of the training split, in order, so the vocabulary depends only on the
training text (and through the split, on `dataset.seed`). `save(dir)` writes KerasHub's preset
format (`tokenizer.json`, `assets/tokenizer/...`, what `Tokenizer.from_preset` reads) plus
`bigtrain_tokenizer.json` (kind and special ids); a run keeps its tokenizer in
`<run dir>/tokenizer/`, next to preprocessing.json, whose `describe()` entry names it with a
SHA-256 of its content. This module imports TensorFlow and KerasHub only when a tokenizer is
built, learned or loaded: its path checks (`check_path`) run before TensorFlow loads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bigtrain.core import transformers_folder as hf
from bigtrain.core.errors import ConfigError
from bigtrain.core.files import replace_dir

log = logging.getLogger("bigtrain")

#: the kinds of `dataset.vocab` that are learned from the training split
LEARNED = ("wordpiece", "sentencepiece", "bpe")
#: the run dir's folder that holds its tokenizer
DIRNAME = "tokenizer"
#: bigtrain's own record in a saved tokenizer folder, beside KerasHub's tokenizer.json
META = "bigtrain_tokenizer.json"
WORDPIECE_RESERVED = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
#: what the sentencepiece trainer is given: KerasHub's special ids, lossless text
SENTENCEPIECE_OPTIONS = dict(
    pad_id=0, unk_id=1, bos_id=2, eos_id=3, normalization_rule_name="identity",
    remove_extra_whitespaces=False, add_dummy_prefix=False, user_defined_symbols=["\n"],
    byte_fallback=True, allow_whitespace_only_pieces=True, split_digits=True,
    max_sentence_length=1 << 16, num_threads=1, minloglevel=2)
_SPM_TYPES = {1: "sentencepiece", 2: "bpe"}  # ModelProto.TrainerSpec.model_type: unigram, bpe
_NATIVE_SAID = False


@contextmanager
def _native_output_to_log(what: str) -> Iterator[None]:
    """What native code writes to stderr meanwhile goes to the run's log file instead of the
    console (TensorFlow Text's SentencePiece says `precompiled_charsmap is empty` for every
    model it loads); BIGTRAIN_DEBUG=1 leaves it on the console."""
    from bigtrain.core import console, tensorflow_start

    if console.debug_enabled():
        yield
        return
    with tensorflow_start.fd2_to_buffer() as caught:
        yield
    tensorflow_start.to_log_files(caught, what)


def _say_native_notices_once() -> None:
    """oneDNN says once per process, on stderr, that it leaves integer ragged concatenation
    (what packing token ids does) to Eigen on this CPU: said here, into the log file."""
    global _NATIVE_SAID
    if _NATIVE_SAID:
        return
    import tensorflow as tf

    with tf.init_scope(), _native_output_to_log("tokenizer ops"):  # eagerly, even in a trace
        r = tf.ragged.constant([[1], []], dtype=tf.int32)
        tf.concat([r, r], axis=1)
    _NATIVE_SAID = True


#: tokenizer config keys whose lists are sets (their order changes from run to run)
_SET_VALUED = ("unsplittable_tokens",)


class Tokenizer:
    """One KerasHub tokenizer layer and the ids sequences are packed with."""

    def __init__(self, layer, kind: str, pad_id: int = 0, start_id: int | None = None,
                 end_id: int | None = None):
        self.layer = layer
        self.kind = kind
        self.vocab_size = int(layer.vocabulary_size())
        self.pad_id = int(pad_id)
        self.start_id = None if start_id is None else int(start_id)
        self.end_id = None if end_id is None else int(end_id)
        # the longest sequence the model this tokenizer came with takes (a model preset's
        # max_sequence_length, set by `load`); None for a tokenizer of its own
        self.window: int | None = None
        # a Transformers folder's own chat template and special-token strings (its
        # tokenizer_config.json), which chat templates render with
        self.chat_template: str | None = None
        self.special_strings: dict[str, str] = {}
        self._encode = None
        self._decode = None
        self._sha256: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_keras_hub(cls, layer, kind: str = "preset") -> Tokenizer:
        """Wrap any KerasHub tokenizer; the special ids come from its `*_token_id` attributes
        (a pretrained model's tokenizer has them), or, for the base WordPiece and
        SentencePiece classes, from their vocabulary ([PAD]/[CLS]/[SEP], <pad>/<s>/</s>)."""
        import keras_hub

        def attr(name: str) -> int | None:
            v = getattr(layer, f"{name}_token_id", None)
            return None if v is None else int(v)

        pad, start, end = attr("pad"), attr("start"), attr("end")
        if isinstance(layer, keras_hub.tokenizers.WordPieceTokenizer):
            vocab = {t: i for i, t in enumerate(layer.get_vocabulary())}
            pad = pad if pad is not None else vocab.get("[PAD]")
            start = start if start is not None else vocab.get("[CLS]")
            end = end if end is not None else vocab.get("[SEP]")
        elif isinstance(layer, keras_hub.tokenizers.SentencePieceTokenizer):
            ids = _proto_ids(layer.proto)
            pad = pad if pad is not None else ids["pad"]
            start = start if start is not None else ids["bos"]
            end = end if end is not None else ids["eos"]
        return cls(layer, kind, pad if pad is not None else 0, start, end)

    # ------------------------------------------------------------------ use
    def encode_tf(self, strings):
        """[N] strings -> [N, None] int32 ids, a tf.RaggedTensor (a TensorFlow op: usable in
        tf.data maps and in exported functions)."""
        import tensorflow as tf

        if self._encode is None:
            _say_native_notices_once()
            layer = self.layer

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
            def encode(s):
                ids = layer.tokenize(s)
                if isinstance(ids, tf.Tensor):  # a layer with a fixed sequence_length
                    ids = tf.RaggedTensor.from_tensor(ids)
                return tf.cast(ids, tf.int32)

            self._encode = encode
        return self._encode(strings)

    def encode(self, texts: list[str]) -> list[list[int]]:
        import tensorflow as tf

        if not texts:
            return []
        return self.encode_tf(tf.constant(list(texts), tf.string)).to_list()

    def decode(self, ids: list[int], keep_special: bool = False) -> str:
        """Text of `ids`, the start and end ids left out (`keep_special`: kept), and the
        padding id where it is a special token: KerasHub's Qwen and Llama 3 tokenizers pad
        with id 0, which is a real token ('!') of their vocabularies."""
        import tensorflow as tf

        special = set() if keep_special else {self.start_id, self.end_id}
        if not keep_special and self._pad_is_special():
            special.add(self.pad_id)
        kept = [int(i) for i in ids if int(i) not in special and 0 <= int(i) < self.vocab_size]
        if not kept:
            return ""
        if self._decode is None:
            layer = self.layer

            @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)],
                         autograph=False)
            def decode(r):
                return layer.detokenize(r)

            self._decode = decode
        out = self._decode(tf.ragged.constant([kept], dtype=tf.int32)).numpy()[0]
        return out.decode("utf-8", errors="replace") if isinstance(out, bytes) else str(out)

    def _pad_is_special(self) -> bool:
        """Whether the padding id is a special token (not a piece of text)."""
        specials = getattr(self.layer, "special_token_ids", None)
        if specials is None:  # a tokenizer of bigtrain's own kinds: its pad is [PAD] or <pad>
            return True
        return self.pad_id in {int(i) for i in specials}

    # ------------------------------------------------------------------ records
    def describe(self) -> dict[str, Any]:
        """The tokenizer's entry in preprocessing.json (and summary.json)."""
        return {"kind": self.kind, "class": type(self.layer).__name__,
                "vocab_size": self.vocab_size, "pad_id": self.pad_id,
                "start_id": self.start_id, "end_id": self.end_id, "dir": DIRNAME,
                "sha256": self.sha256()}

    def sha256(self) -> str:
        """A digest of what the tokenizer does: its class, its config (the layer's name left
        out) and its vocabulary files, as KerasHub saves them."""
        if self._sha256 is None:
            with tempfile.TemporaryDirectory() as tmp:
                self.layer.save_to_preset(tmp)
                h = hashlib.sha256(type(self.layer).__name__.encode())
                config = {k: v for k, v in self.layer.get_config().items() if k != "name"}
                for key in _SET_VALUED:  # KerasHub lists a set's members in hash order
                    if isinstance(config.get(key), list):
                        config[key] = sorted(config[key], key=str)
                h.update(json.dumps(config, sort_keys=True, default=str).encode())
                assets = Path(tmp) / "assets"
                for f in sorted(p for p in assets.rglob("*") if p.is_file()):
                    h.update(str(f.relative_to(assets)).encode())
                    h.update(f.read_bytes())
            self._sha256 = h.hexdigest()
        return self._sha256

    def save(self, directory) -> Path:
        """Write KerasHub's preset format and bigtrain's record into `directory` (replaced
        as a whole, through a temporary folder beside it)."""
        def write(tmp: Path) -> None:
            self.layer.save_to_preset(str(tmp))
            meta = {k: v for k, v in self.describe().items() if k != "dir"}
            if self.chat_template:  # a run's data is rebuilt with the template it came with
                meta["chat_template"] = self.chat_template
                meta["special_strings"] = self.special_strings
            (tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

        return replace_dir(Path(directory), write)


def _proto_ids(proto: bytes) -> dict[str, int | None]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=proto)
    return {k: (v if v >= 0 else None) for k, v in
            (("pad", sp.pad_id()), ("bos", sp.bos_id()), ("eos", sp.eos_id()),
             ("unk", sp.unk_id()))}


def _proto_kind(proto: bytes) -> str:
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto.FromString(proto)
    return _SPM_TYPES.get(model.trainer_spec.model_type, "preset")


# ---------------------------------------------------------------------- learning
def training_lines(texts: Iterable[str]) -> list[str]:
    """The lines a vocabulary is learned from, in order (blank lines left out)."""
    return [line for t in texts for line in t.split("\n") if line.strip()]


def learn(kind: str, lines: list[str], vocab_size: int, key: str = "dataset.vocab_size"
          ) -> Tokenizer:
    """A `kind` tokenizer of `vocab_size` tokens learned from `lines`. A size the text cannot
    fill, or one below what the kind needs, is a ConfigError naming `key` with the bound."""
    if kind not in LEARNED:
        raise ConfigError("dataset.vocab", f"{kind!r} is not a learned vocabulary; allowed: "
                          + ", ".join(LEARNED))
    if not lines:
        raise ConfigError("dataset.path", "the training split holds no text to learn a "
                          f"{kind} vocabulary from")
    tic = time.perf_counter()
    tok = _learn_wordpiece(lines, vocab_size, key) if kind == "wordpiece" \
        else _learn_sentencepiece(kind, lines, vocab_size, key)
    log.info("tokenizer: learned %s, %d tokens, from %s characters of the training split "
             "in %.1f s", kind, tok.vocab_size, f"{sum(len(x) + 1 for x in lines):,}",
             time.perf_counter() - tic)
    return tok


def _learn_wordpiece(lines: list[str], vocab_size: int, key: str) -> Tokenizer:
    import keras_hub
    import tensorflow as tf

    def compute(size: int) -> list[str]:
        return keras_hub.tokenizers.compute_word_piece_vocabulary(
            tf.data.Dataset.from_tensor_slices(lines), size, lowercase=False,
            strip_accents=False, reserved_tokens=list(WORDPIECE_RESERVED))

    if vocab_size <= len(WORDPIECE_RESERVED):
        raise ConfigError(key, f"{vocab_size} is too small for wordpiece: it needs more than "
                          f"its {len(WORDPIECE_RESERVED)} special tokens")
    vocab = compute(vocab_size)
    if len(vocab) < vocab_size:
        # the learner searches for a count threshold and may land a little short; the most
        # the text can fill is what it learns without a limit
        ceiling = len(compute(1 << 30))
        if ceiling < vocab_size:
            raise ConfigError(key, f"{vocab_size} is more than the training split can fill: "
                              f"it gives at most {ceiling} wordpiece tokens (pieces seen "
                              "at least 10 times); use dataset.vocab_size <= "
                              f"{ceiling}, or more text")
        log.info("tokenizer: wordpiece's learner gave %d tokens for dataset.vocab_size=%d "
                 "(it lands within a few percent)", len(vocab), vocab_size)
    layer = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=vocab, lowercase=False, strip_accents=False, oov_token="[UNK]",
        dtype="int32", name="tokenizer")
    return Tokenizer(layer, "wordpiece", pad_id=0, start_id=1, end_id=2)


def _learn_sentencepiece(kind: str, lines: list[str], vocab_size: int, key: str
                         ) -> Tokenizer:
    import io

    import keras_hub
    import sentencepiece as spm

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size,
            model_type="bpe" if kind == "bpe" else "unigram", **SENTENCEPIECE_OPTIONS)
    except RuntimeError as ex:
        text = str(ex)
        high = re.search(r"Vocabulary size too high \((\d+)\).*<= (\d+)", text)
        low = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", text)
        if high:
            raise ConfigError(key, f"{vocab_size} is more than the training split can fill: "
                              f"it gives at most {high.group(2)} {kind} tokens; use "
                              f"dataset.vocab_size <= {high.group(2)}, or more text") from None
        if low:
            raise ConfigError(key, f"{vocab_size} is too small for {kind} here: it needs at "
                              f"least {int(low.group(2)) + 1} (256 byte pieces, the special "
                              "tokens and the characters of the training text)") from None
        raise ConfigError(key, f"sentencepiece could not learn a {kind} vocabulary of "
                          f"{vocab_size}: {text.splitlines()[-1][:300]}") from None
    with _native_output_to_log("sentencepiece"):
        layer = keras_hub.tokenizers.SentencePieceTokenizer(proto=model.getvalue(),
                                                            dtype="int32", name="tokenizer")
    return Tokenizer(layer, kind, pad_id=0, start_id=2, end_id=3)


# ---------------------------------------------------------------------- loading
def _tokenizer_dir(path: Path) -> Path | None:
    """The folder holding tokenizer.json: `path` itself or a run dir's tokenizer/; or a
    Transformers-format model folder with its tokenizer files."""
    if (path / "tokenizer.json").is_file():
        return path
    if hf.is_transformers(path) and hf.has_tokenizer(path):
        return path
    if (path / DIRNAME / "tokenizer.json").is_file():
        return path / DIRNAME
    return None


def check_path(path: str, kind: str | None, key: str = "dataset.tokenizer") -> None:
    """Without TensorFlow: `path` names a saved tokenizer (a folder with tokenizer.json, a run
    dir with tokenizer/, a SentencePiece .model file or a WordPiece vocabulary .txt) of kind
    `kind` where that can be read from its files (bigtrain's record, the class name)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(key, f"{p} does not exist; name a run dir, its tokenizer/ folder, a "
                          "SentencePiece .model file or a WordPiece vocabulary .txt")
    found = _kind_of_files(p, key)
    if kind is not None and found is not None and found != kind:
        raise ConfigError(key, f"{p} holds a {found} tokenizer, not {kind} "
                          f"(dataset.vocab); set dataset.vocab={found} to use it")


def _kind_of_files(p: Path, key: str) -> str | None:
    """The kind of the tokenizer at `p` as its files say, None where only loading tells."""
    if p.is_file():
        if p.suffix in (".model", ".spm"):
            try:
                return _proto_kind(p.read_bytes())
            except Exception as ex:  # a damaged proto: the parser's own error types
                raise ConfigError(key, f"{p} is not a SentencePiece model ({ex})") from None
        if p.suffix == ".txt":
            return "wordpiece"
        raise ConfigError(key, f"{p} is not a tokenizer file: a SentencePiece .model or a "
                          "WordPiece vocabulary .txt")
    folder = _tokenizer_dir(p)
    if folder is not None and hf.is_transformers(folder):
        return None  # only loading tells
    if folder is None:
        what = (f"{p} is a run dir without a saved tokenizer (its vocabulary is not a learned "
                "one)") if (p / "preprocessing.json").exists() else \
            f"{p} holds no tokenizer.json (KerasHub's preset format) nor a {DIRNAME}/ folder"
        raise ConfigError(key, what)
    try:
        if (folder / META).is_file():
            return json.loads((folder / META).read_text(encoding="utf-8"))["kind"]
        name = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")).get(
            "registered_name", "")
    except (OSError, ValueError, KeyError, TypeError) as ex:
        raise ConfigError(key, f"{folder} has an unreadable tokenizer record ({ex})") from None
    if name.endswith(">WordPieceTokenizer"):
        return "wordpiece"
    if name.endswith(">SentencePieceTokenizer"):
        proto = folder / "assets" / "tokenizer" / "vocabulary.spm"
        return _proto_kind(proto.read_bytes()) if proto.is_file() else None
    return None


def load(path_or_handle, key: str = "dataset.tokenizer") -> Tokenizer:
    """A saved tokenizer: a folder `Tokenizer.save` wrote (or any KerasHub preset folder with
    a tokenizer.json), a run dir (its tokenizer/), a SentencePiece .model file, a WordPiece
    vocabulary .txt, or a KerasHub preset handle (`Tokenizer.from_preset`). A missing or
    unreadable one is a ConfigError naming `key`."""
    import keras
    import keras_hub

    text = str(path_or_handle)
    p = Path(text).expanduser()
    local = p.exists() or "://" not in text and (os.sep in text or text.startswith("."))
    if not local:  # a built-in name or a kaggle:// / hf:// handle
        try:
            with _native_output_to_log("tokenizer"):
                layer = keras_hub.tokenizers.Tokenizer.from_preset(text)
        except Exception as ex:  # KerasHub's and the download's own error types
            raise ConfigError(key, f"cannot load the tokenizer of preset {text!r}: "
                              f"{str(ex).splitlines()[0][:300]}") from None
        tok = Tokenizer.from_keras_hub(layer, _kind_of_layer(layer))
        tok.window = _preset_window(text)
        _chat_facts(tok, text)
        return tok
    check_path(text, None, key)
    if p.is_file():
        if p.suffix in (".model", ".spm"):
            with _native_output_to_log("sentencepiece"):
                layer = keras_hub.tokenizers.SentencePieceTokenizer(proto=p.read_bytes(),
                                                                    dtype="int32")
        else:
            vocab = p.read_text(encoding="utf-8").splitlines()
            layer = keras_hub.tokenizers.WordPieceTokenizer(
                vocabulary=vocab, lowercase=False, strip_accents=False,
                oov_token="[UNK]" if "[UNK]" in vocab else vocab[0], dtype="int32")
        return Tokenizer.from_keras_hub(layer, _kind_of_layer(layer))
    folder = _tokenizer_dir(p)
    try:
        with _native_output_to_log("tokenizer"):
            if (folder / "config.json").is_file():  # a whole model preset
                layer = keras_hub.tokenizers.Tokenizer.from_preset(str(folder))
            else:  # a tokenizer alone: what KerasHub's preset loader does with tokenizer.json
                config = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
                layer = keras.saving.deserialize_keras_object(config)
                layer.load_preset_assets(str(folder))
    except Exception as ex:  # KerasHub's and Keras's own error types
        raise ConfigError(key, f"{folder} does not load as a KerasHub tokenizer: "
                          f"{str(ex).splitlines()[0][:300]}") from None
    meta_path = folder / META
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tok = Tokenizer(layer, meta["kind"], meta["pad_id"], meta["start_id"], meta["end_id"])
        tok.chat_template = meta.get("chat_template")
        tok.special_strings = dict(meta.get("special_strings") or {})
    else:
        tok = Tokenizer.from_keras_hub(layer, _kind_of_layer(layer))
    if (folder / "config.json").is_file():
        tok.window = _preset_window(str(folder))
        _chat_facts(tok, str(folder))
    return tok


def _chat_facts(tok: Tokenizer, preset: str) -> None:
    """The chat template and special-token strings of a Transformers model `preset` (a
    folder or a hub handle) onto `tok`; the strings of its start and end ids otherwise."""
    from keras_hub.src.utils import preset_utils

    for name, i in (("bos_token", tok.start_id), ("eos_token", tok.end_id)):
        if i is not None:
            tok.special_strings[name] = str(tok.layer.id_to_token(i))
    try:
        config = preset_utils.load_json(preset, "config.json")
    except (OSError, ValueError):
        return
    if not hf.is_transformers_config(config):
        return
    if os.path.isdir(os.path.expanduser(preset)):
        folder = Path(preset).expanduser()
    else:  # a hub handle: the files KerasHub caches, fetched where the model has them
        with tempfile.TemporaryDirectory() as d:
            folder = Path(d)
            for name in (hf.CHAT_TEMPLATE, "tokenizer_config.json"):
                if preset_utils.check_file_exists(preset, name):
                    (folder / name).write_bytes(Path(preset_utils.get_file(preset, name))
                                                .read_bytes())
            tok.chat_template = hf.chat_template(folder)
            tok.special_strings.update(hf.special_tokens(folder))
        return
    tok.chat_template = hf.chat_template(folder)
    tok.special_strings.update(hf.special_tokens(folder))


def _preset_window(preset: str) -> int | None:
    """A model preset's maximum sequence length (its backbone's `max_sequence_length` in its
    config.json), if it has one."""
    from keras_hub.src.utils import preset_utils

    try:
        config = preset_utils.load_json(preset, "config.json")
    except (OSError, ValueError):
        return None
    if hf.is_transformers_config(config):
        return hf.window(config)
    value = (config.get("config") or {}).get("max_sequence_length")
    return value if isinstance(value, int) and value > 0 else None


def _kind_of_layer(layer) -> str:
    import keras_hub

    if type(layer) is keras_hub.tokenizers.WordPieceTokenizer:
        return "wordpiece"
    if type(layer) is keras_hub.tokenizers.SentencePieceTokenizer:
        return _proto_kind(layer.proto)
    return "preset"


# ---------------------------------------------------------------------- datasets and runs
def from_config(cfg) -> Tokenizer | None:
    """The tokenizer a text dataset's config names, None for byte and char vocabularies:
    `dataset.tokenizer` loaded (and checked against `dataset.vocab` and
    `dataset.vocab_size`), else None for the builder to learn one."""
    if cfg.vocab not in LEARNED:
        return None
    if not cfg.tokenizer:
        return None
    tok = load(cfg.tokenizer)
    check_matches(tok, cfg, f"{cfg.tokenizer}")
    log.info("tokenizer: %s, %d tokens, from %s", tok.kind, tok.vocab_size, cfg.tokenizer)
    return tok


def check_matches(tok: Tokenizer, cfg, where: str) -> None:
    if tok.kind != cfg.vocab:
        raise ConfigError("dataset.tokenizer", f"{where} holds a {tok.kind} tokenizer, not "
                          f"{cfg.vocab} (dataset.vocab); set dataset.vocab={tok.kind} to use it")
    if cfg.vocab_size and cfg.vocab_size != tok.vocab_size:
        raise ConfigError("dataset.vocab_size", f"{cfg.vocab_size}, but the tokenizer at "
                          f"{where} has {tok.vocab_size} tokens; leave dataset.vocab_size "
                          f"unset (0) or set it to {tok.vocab_size}")


def of_run(run_dir) -> Tokenizer | None:
    """The tokenizer a run trained with (`<run dir>/tokenizer/`), None if it has none."""
    folder = Path(run_dir) / DIRNAME
    if not (folder / "tokenizer.json").is_file():
        return None
    return load(folder, key="RUN_DIR")


def for_run(cfg, run_dir, resume: str) -> Tokenizer | None:
    """The tokenizer a `fit` into `run_dir` must use instead of learning one: on a resume
    (`trainer.resume` auto or force, checkpoints present) the run's own saved tokenizer, on
    `trainer.resume=PATH` that run's, so a vocabulary is never learned again under trained
    weights. None otherwise (the builder then loads `dataset.tokenizer` or learns one)."""
    if getattr(cfg, "vocab", None) not in LEARNED:
        return None
    source = Path(run_dir) if resume in ("auto", "force") else \
        Path(resume) if resume != "never" else None
    if source is None or not any((source / "checkpoints").glob("ckpt-*.index")):
        return None
    tok = of_run(source)
    if tok is None:
        return None
    if tok.kind != cfg.vocab or (cfg.vocab_size and cfg.vocab_size != tok.vocab_size):
        log.warning("%s holds a %s tokenizer of %d tokens, not the configured %s; it is not "
                    "reused", source / DIRNAME, tok.kind, tok.vocab_size, cfg.vocab)
        return None
    log.info("tokenizer: reusing %s (%s, %d tokens)", source / DIRNAME, tok.kind,
             tok.vocab_size)
    return tok


def save_in_run(tok: Tokenizer, run_dir) -> None:
    """Write the run's tokenizer/ unless it already holds this very tokenizer."""
    folder = Path(run_dir) / DIRNAME
    meta = folder / META
    try:
        if json.loads(meta.read_text(encoding="utf-8")).get("sha256") == tok.sha256():
            return
    except (OSError, ValueError):
        pass
    tok.save(folder)
    log.info("tokenizer: saved in %s", folder)


def packer(tok: Tokenizer, length: int):
    """KerasHub's StartEndPacker for classification inputs: [start] + ids + [end] (where the
    tokenizer has them), cut to `length` keeping the end id, padded with pad_id."""
    import keras_hub

    return keras_hub.layers.StartEndPacker(
        sequence_length=length, start_value=tok.start_id, end_value=tok.end_id,
        pad_value=tok.pad_id, dtype="int32")
