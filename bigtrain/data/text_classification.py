"""Labelled texts: one sub-directory of text files per class, or a CSV with text and label
columns. Each text becomes its UTF-8 bytes shifted by one (0 is padding), cut or padded to
`dataset.max_len`; classes are the sorted class names (or label values).

With a learned vocabulary (`dataset.vocab=wordpiece|sentencepiece|bpe`, learned from the
training split's texts) or a given tokenizer, the texts are tokenized in the tf.data pipeline:
[start] + ids + [end] (where the tokenizer has them), cut to `max_len` keeping the end, padded
with the pad id (KerasHub's StartEndPacker)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from bigtrain.core.errors import ConfigError
from bigtrain.data import DATASETS, preprocess
from bigtrain.data import tokenizers as tokenizers_
from bigtrain.data.csv_table import read_rows
from bigtrain.data.pipeline import Splits, from_arrays, label_statistics, split_for
from bigtrain.data.schemas import TextClassificationConfig
from bigtrain.data.spec import DatasetSpec
from bigtrain.data.text import read_utf8

log = logging.getLogger("bigtrain")

#: dataset.max_len when it is 0 (the model's window) and the model sets none
DEFAULT_MAX_LEN = 256


def _from_directory(root: Path, on_bad: str) -> tuple[list[bytes], list[str], int]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise ConfigError("dataset.path", f"{root} needs one sub-directory per class (at least "
                          f"2); found {len(classes)}")
    texts, labels, skipped = [], [], []
    for c in classes:
        files = sorted(f for f in (root / c).rglob("*") if f.is_file())
        if not files:
            raise ConfigError("dataset.path", f"class directory {root / c} has no files")
        for f in files:
            data = read_utf8(f, on_bad, "fix it or set dataset.on_bad_record=skip")
            if data is None:
                skipped.append(str(f))
                continue
            texts.append(data)
            labels.append(c)
    if skipped:
        log.warning("skipped %d file(s) that are not UTF-8, e.g. %s", len(skipped), skipped[0])
    return texts, labels, len(skipped)


def _from_csv(path: Path, cfg) -> tuple[list[bytes], list[str], int]:
    header, rows, skipped = read_rows(path, ",", cfg.on_bad_record)
    for key, col in (("dataset.text_column", cfg.text_column),
                     ("dataset.label_column", cfg.label_column)):
        if col not in header:
            raise ConfigError(key, f"{path} has no column {col!r}. Columns: " + ", ".join(header))
    ti, li = header.index(cfg.text_column), header.index(cfg.label_column)
    return [r[ti].encode("utf-8") for r in rows], [r[li] for r in rows], skipped


@DATASETS.register(TextClassificationConfig)
def build_text_classification(cfg, tokenizer: tokenizers_.Tokenizer | None = None) -> Splits:
    """The labelled texts as `max_len` ids; `tokenizer` (a pretrained model's, a resumed
    run's) is used instead of the one `dataset.vocab` would learn or choose. `dataset.max_len`
    0 is the window of the model `tokenizer` came with (a model=hub preset's), else 256."""
    if not cfg.max_len:
        window = tokenizer.window if tokenizer is not None else None
        cfg = dataclasses.replace(cfg, max_len=window or DEFAULT_MAX_LEN)
        if window:
            log.info("dataset.max_len: %d, the preset's maximum sequence length (set "
                     "dataset.max_len for a shorter one)", window)
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise ConfigError("dataset.path", f"{path} does not exist")
    texts, labels, skipped = (_from_directory(path, cfg.on_bad_record) if path.is_dir()
                     else _from_csv(path, cfg))
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ConfigError("dataset.path", f"{path} has {len(classes)} class(es); need 2 or more")
    log.info("text_classification: %d texts in %d classes (%s)", len(texts), len(classes),
             ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else ""))
    index = {c: k for k, c in enumerate(classes)}
    y = np.array([index[v] for v in labels], np.int32)
    columns = (None, None) if path.is_dir() else (cfg.text_column, cfg.label_column)
    if tokenizer is None:
        tokenizer = tokenizers_.from_config(cfg)
    if tokenizer is not None or cfg.vocab in tokenizers_.LEARNED:
        return _build_tokenized(cfg, texts, y, classes, columns, skipped, tokenizer)
    x = np.zeros((len(texts), cfg.max_len), np.int32)
    for i, t in enumerate(texts):
        ids = np.frombuffer(t[: cfg.max_len], np.uint8).astype(np.int32) + 1
        x[i, : len(ids)] = ids
    doc = {"input": preprocess.text(cfg.max_len, *columns), "classes": classes}
    return from_arrays("text_classification", "classification", x, y,
                       num_outputs=len(classes), cfg=cfg, input_vocab=257, skipped=skipped,
                       preprocessing=doc)


def _build_tokenized(cfg, texts: list[bytes], y: np.ndarray, classes: list[str],
                     columns: tuple, skipped: int, tok: tokenizers_.Tokenizer | None) -> Splits:
    import tensorflow as tf

    parts = split_for(len(texts), cfg)
    train_texts = [texts[i].decode("utf-8") for i in parts[0]]
    if tok is None:
        tok = tokenizers_.learn(cfg.vocab, tokenizers_.training_lines(train_texts),
                                cfg.vocab_size)
    if tok.pad_id != 0:
        log.warning("the tokenizer pads with id %d; bigtrain's own models take id 0 as padding",
                    tok.pad_id)
    pack = tokenizers_.packer(tok, cfg.max_len)

    @tf.autograph.experimental.do_not_convert
    def encode(t, label):
        return tf.ensure_shape(pack(tok.encode_tf(t)), (None, cfg.max_len)), label

    def ds(idx: np.ndarray) -> tf.data.Dataset:
        strings = tf.constant([texts[i] for i in idx], tf.string, shape=[len(idx)])
        return tf.data.Dataset.from_tensor_slices((strings, y[idx])).batch(256).map(
            encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()

    lengths = tf.data.Dataset.from_tensor_slices(
        tf.constant([texts[i] for i in parts[0]], tf.string, shape=[len(parts[0])])).batch(
        256).map(tf.autograph.experimental.do_not_convert(
        lambda t: tf.reduce_sum(tok.encode_tf(t).row_lengths())))
    tokens = int(sum(lengths.as_numpy_iterator()))
    per_char = tokens / max(1, sum(len(t) for t in train_texts))
    log.info("text_classification: %s, %d tokens; %.3f tokens per character of the training "
             "texts (%s tokens; max_len %d)", tok.kind, tok.vocab_size, per_char,
             f"{tokens:,}", cfg.max_len)
    spec = DatasetSpec(name="text_classification", task="classification",
                       input_shape=(cfg.max_len,), input_dtype="int32",
                       num_outputs=len(classes), num_train=len(parts[0]),
                       num_val=len(parts[1]), num_test=len(parts[2]),
                       input_vocab=tok.vocab_size, skipped=skipped,
                       **label_statistics("classification", y[parts[0]], len(classes)))
    doc = {"input": preprocess.text_tokenizer(cfg.max_len, tok.describe(), *columns),
           "classes": classes}
    return Splits(spec, *(ds(i) for i in parts), seed=cfg.seed,
                  shuffle_buffer=cfg.shuffle_buffer, preprocessing=doc, tokenizer=tok,
                  tokens_per_char=per_char)
