"""Language-model corpora from text files, packed into fixed-length sequences.

Files are read in sorted order (deterministic), up to `dataset.max_chars`, concatenated with a
newline between files, and cut into sequences of `seq_len + 1` tokens (inputs and next-token
targets). Sequences are split into train/val/test by the dataset's fractions and seed.
`byte` vocabularies take any file; `char` vocabularies are the characters of the training
sequences (id 0 is padding, 1 stands for characters never seen in training) and need UTF-8.
"""

from __future__ import annotations

import glob
import logging
import os
import sysconfig
from pathlib import Path

import numpy as np

from bigtrain.config.errors import ConfigError
from bigtrain.data import DATASETS, preprocess
from bigtrain.data.pipeline import Splits, from_arrays, split_arrays
from bigtrain.data.schemas import TextConfig

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
def build_text(cfg) -> Splits:
    files = find_files(cfg.path)
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
