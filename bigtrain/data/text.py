"""Language-model corpora from text files, packed into fixed-length sequences.

Files are read in sorted order (deterministic), up to `dataset.max_chars`, concatenated with a
newline between files, and cut into sequences of `seq_len + 1` tokens (inputs and next-token
targets). Sequences are split into train/val/test by the dataset's fractions and seed.
`byte` vocabularies take any file; `char` vocabularies are the characters of the training
sequences (id 0 is padding, 1 stands for characters never seen in training) and need UTF-8.

Learned vocabularies (`wordpiece`, `sentencepiece`, `bpe`; bigtrain/data/tokenizers.py) need
UTF-8 too. The split comes first, in characters: each file is cut at line ends into pieces of
about four sequences' worth of characters, and the pieces are split by the fractions and seed.
The tokenizer is learned from the lines of the training pieces (or given: `dataset.tokenizer`,
a resumed run's own, a pretrained model's). Each split's pieces are then tokenized in a
tf.data pipeline, in order, each file's last piece followed by the end id, and the token
stream is cut into sequences of `seq_len + 1`.
"""

from __future__ import annotations

import glob
import logging
import os
import sysconfig
from pathlib import Path

import numpy as np

from bigtrain.core.errors import ConfigError
from bigtrain.data import DATASETS, preprocess
from bigtrain.data import tokenizers as tokenizers_
from bigtrain.data.pipeline import Splits, from_arrays, label_statistics, split_arrays
from bigtrain.data.schemas import TextConfig
from bigtrain.data.spec import DatasetSpec

log = logging.getLogger("bigtrain")


def find_files(path: str) -> list[Path]:
    """The corpus files `path` names, sorted; a clear error if there are none."""
    if path == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        files = sorted(p for p in root.glob("*.py") if p.is_file())
        where = f"the standard library ({root})"
    elif any(ch in path for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(path), recursive=True)
                       if Path(p).is_file())
        where = f"the glob {path!r}"
    else:
        p = Path(os.path.expanduser(path))
        if not p.exists():
            raise ConfigError("dataset.path", f"{p} does not exist")
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        where = str(p)
    if not files:
        raise ConfigError("dataset.path", f"no files found in {where}")
    return files


def read_utf8(path: Path, on_bad: str, hint: str) -> bytes | None:
    """The file's bytes if they are UTF-8; None if not and `on_bad` is skip; else an error
    naming the file and the line. `hint` says what else the user can do."""
    try:
        data = path.read_bytes()
    except OSError as ex:
        raise ConfigError("dataset.path", f"cannot read {path}: {ex.strerror}") from ex
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as ex:
        if on_bad == "skip":
            return None
        line = data.count(b"\n", 0, ex.start) + 1
        raise ConfigError("dataset.path", f"{path} is not UTF-8 text (line {line}, byte "
                          f"{ex.start}); {hint}") from ex
    return data


def read_corpus(files: list[Path], max_chars: int, need_utf8: bool, on_bad: str,
                ) -> tuple[str | bytes, int]:
    """Concatenate the files; non-UTF-8 files fail or are skipped (and counted)."""
    parts: list[bytes] = []
    total, skipped = 0, []
    for f in files:
        if need_utf8:
            data = read_utf8(f, on_bad, "use dataset.vocab=byte, or dataset.on_bad_record=skip")
            if data is None:
                skipped.append(str(f))
                continue
        else:
            try:
                data = f.read_bytes()
            except OSError as ex:
                raise ConfigError("dataset.path", f"cannot read {f}: {ex.strerror}") from ex
        parts.append(data)
        total += len(data) + 1
        if total >= max_chars:
            break
    if skipped:
        log.warning("skipped %d file(s) that are not UTF-8: %s", len(skipped),
                    ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    raw = b"\n".join(parts)[:max_chars]
    return (raw.decode("utf-8", errors="ignore") if need_utf8 else raw), len(skipped)


@DATASETS.register(TextConfig)
def build_text(cfg, tokenizer: tokenizers_.Tokenizer | None = None) -> Splits:
    """The corpus as `seq_len` sequences; `tokenizer` (a pretrained model's, a resumed run's)
    is used instead of the one `dataset.vocab` would learn or choose."""
    files = find_files(cfg.path)
    if tokenizer is None:
        tokenizer = tokenizers_.from_config(cfg)
    if tokenizer is not None or cfg.vocab in tokenizers_.LEARNED:
        return _build_tokenized(cfg, files, tokenizer)
    corpus, skipped = read_corpus(files, cfg.max_chars, cfg.vocab == "char", cfg.on_bad_record)
    n = len(corpus) // (cfg.seq_len + 1)
    if n < 3:
        raise ConfigError("dataset.seq_len", f"the corpus ({len(corpus)} characters from "
                          f"{len(files)} file(s)) holds fewer than 3 sequences of "
                          f"{cfg.seq_len + 1}; use more text or a shorter seq_len")
    if cfg.vocab == "byte":
        ids = np.frombuffer(corpus, dtype=np.uint8).astype(np.int32)
        vocab_size = 256
        doc = {"input": preprocess.lm_bytes(cfg.seq_len)}
    else:
        train_idx, _, _ = split_arrays(n, cfg.val_fraction, cfg.test_fraction, cfg.seed)
        span = cfg.seq_len + 1
        seen = sorted({ch for i in train_idx for ch in corpus[i * span:(i + 1) * span]})
        table = {ch: i + 2 for i, ch in enumerate(seen)}  # 0 padding, 1 unknown
        ids = np.fromiter((table.get(ch, 1) for ch in corpus), dtype=np.int32,
                          count=len(corpus))
        vocab_size = len(seen) + 2
        doc = {"input": preprocess.lm_chars(cfg.seq_len, seen)}
    seqs = ids[: n * (cfg.seq_len + 1)].reshape(n, cfg.seq_len + 1)
    log.info("text: %d file(s), %d %ss, %d sequences of %d", len(files), len(corpus),
             cfg.vocab, n, cfg.seq_len)
    return from_arrays("text", "lm", seqs[:, :-1], seqs[:, 1:], num_outputs=vocab_size,
                       cfg=cfg, skipped=skipped, preprocessing=doc)


# ---------------------------------------------------------------------- learned vocabularies
def read_documents(files: list[Path], max_chars: int, on_bad: str) -> tuple[list[str], int]:
    """The UTF-8 files as texts, up to `max_chars` characters in all; files that are not
    UTF-8 fail or are skipped (and counted)."""
    docs: list[str] = []
    total, skipped = 0, []
    for f in files:
        data = read_utf8(f, on_bad, "use dataset.vocab=byte, or dataset.on_bad_record=skip")
        if data is None:
            skipped.append(str(f))
            continue
        text = data.decode("utf-8")[: max_chars - total]
        if text:
            docs.append(text)
        total += len(text)
        if total >= max_chars:
            break
    if skipped:
        log.warning("skipped %d file(s) that are not UTF-8: %s", len(skipped),
                    ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    return docs, len(skipped)


def pieces_of(docs: list[str], size: int) -> tuple[list[str], list[bool]]:
    """Each document cut at line ends into pieces of at least `size` characters (a
    document's last piece may be shorter); whether each piece ends its document."""
    pieces: list[str] = []
    ends: list[bool] = []
    for doc in docs:
        part: list[str] = []
        n = 0
        for line in doc.splitlines(keepends=True):
            part.append(line)
            n += len(line)
            if n >= size:
                pieces.append("".join(part))
                ends.append(False)
                part, n = [], 0
        if part:
            pieces.append("".join(part))
            ends.append(False)
        ends[-1] = True
    return pieces, ends


def token_stream(tok: tokenizers_.Tokenizer, pieces: list[str], ends: list[bool]
                 ) -> np.ndarray:
    """The pieces' token ids in order, the end id after each document's last piece:
    tokenized by a tf.data pipeline (parallel, order kept)."""
    import tensorflow as tf

    if not pieces:
        return np.zeros(0, np.int32)
    end_id = tok.end_id

    @tf.autograph.experimental.do_not_convert
    def encode(texts, last):
        ids = tok.encode_tf(texts)
        if end_id is not None:
            tail = tf.ragged.boolean_mask(tf.fill([tf.shape(texts)[0], 1], end_id),
                                          last[:, None])
            ids = tf.concat([ids, tail], axis=1)
        return ids.flat_values

    ds = tf.data.Dataset.from_tensor_slices((pieces, ends)).batch(64).map(
        encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return np.concatenate(list(ds.as_numpy_iterator())).astype(np.int32)


def _build_tokenized(cfg, files: list[Path], tok: tokenizers_.Tokenizer | None) -> Splits:
    import tensorflow as tf

    docs, skipped = read_documents(files, cfg.max_chars, cfg.on_bad_record)
    span = cfg.seq_len + 1
    pieces, ends = pieces_of(docs, 4 * span)
    parts = [np.sort(i) for i in split_arrays(len(pieces), cfg.val_fraction,
                                              cfg.test_fraction, cfg.seed, cfg.fraction)]
    train_text = [pieces[i] for i in parts[0]]
    if tok is None:
        tok = tokenizers_.learn(cfg.vocab, tokenizers_.training_lines(train_text),
                                cfg.vocab_size)
    streams = [token_stream(tok, [pieces[i] for i in idx], [ends[i] for i in idx])
               for idx in parts]
    windows = [s[: len(s) // span * span].reshape(-1, span) for s in streams]
    counts = [len(w) for w in windows]
    chars = sum(len(d) for d in docs)
    if sum(counts) < 3 or counts[0] == 0:
        raise ConfigError("dataset.seq_len", f"the corpus ({chars} characters, "
                          f"{sum(len(s) for s in streams)} {tok.kind} tokens, from "
                          f"{len(files)} file(s)) holds fewer than 3 sequences of {span} "
                          "tokens, or none to train on; use more text or a shorter seq_len")
    train_chars = sum(len(t) for t in train_text)
    per_char = len(streams[0]) / max(1, train_chars)
    log.info("text: %d file(s), %d characters, %s tokens, %.3f tokens per character, "
             "%d / %d / %d sequences of %d", len(files), chars,
             f"{sum(len(s) for s in streams):,}", per_char, *counts, cfg.seq_len)
    spec = DatasetSpec(name="text", task="lm", input_shape=(cfg.seq_len,), input_dtype="int32",
                       num_outputs=tok.vocab_size, num_train=counts[0], num_val=counts[1],
                       num_test=counts[2], skipped=skipped,
                       **label_statistics("lm", windows[0][:, 1:], tok.vocab_size))

    def ds(w: np.ndarray) -> tf.data.Dataset:
        w = w if len(w) else np.zeros((0, span), np.int32)
        return tf.data.Dataset.from_tensor_slices((w[:, :-1], w[:, 1:]))

    doc = {"input": preprocess.lm_tokenizer(cfg.seq_len, tok.describe())}
    return Splits(spec, *(ds(w) for w in windows), seed=cfg.seed,
                  shuffle_buffer=cfg.shuffle_buffer, preprocessing=doc, tokenizer=tok,
                  tokens_per_char=per_char)
