"""Labelled texts: one sub-directory of text files per class, or a CSV with text and label
columns. Each text becomes its UTF-8 bytes shifted by one (0 is padding), cut or padded to
`dataset.max_len`; classes are the sorted class names (or label values)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bigtrain.config.errors import ConfigError
from bigtrain.data import DATASETS, preprocess
from bigtrain.data.csv_table import read_rows
from bigtrain.data.pipeline import Splits, from_arrays
from bigtrain.data.schemas import TextClassificationConfig
from bigtrain.data.text import read_utf8

log = logging.getLogger("bigtrain")


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
def build_text_classification(cfg) -> Splits:
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
    x = np.zeros((len(texts), cfg.max_len), np.int32)
    for i, t in enumerate(texts):
        ids = np.frombuffer(t[: cfg.max_len], np.uint8).astype(np.int32) + 1
        x[i, : len(ids)] = ids
    index = {c: k for k, c in enumerate(classes)}
    y = np.array([index[v] for v in labels], np.int32)
    columns = (None, None) if path.is_dir() else (cfg.text_column, cfg.label_column)
    doc = {"input": preprocess.text(cfg.max_len, *columns), "classes": classes}
    return from_arrays("text_classification", "classification", x, y,
                       num_outputs=len(classes), cfg=cfg, input_vocab=257, skipped=skipped,
                       preprocessing=doc)
