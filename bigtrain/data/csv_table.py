"""Tabular data from a CSV or Parquet file: a label column, numeric and categorical features.

Numeric features are standardized with the mean and deviation of the training split only, and
their missing values filled with the training mean; categorical features (every non-numeric
column, plus `dataset.categorical`) are one-hot encoded over the training split's values, with
missing and unseen values in a bucket of their own. `task=auto` is regression when every label
is a number and there are more than 20 distinct ones, classification otherwise.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from pathlib import Path

import numpy as np

from bigtrain.core.errors import ConfigError
from bigtrain.data import DATASETS, preprocess
from bigtrain.data.pipeline import Splits, from_arrays, split_arrays
from bigtrain.data.schemas import CSVConfig

log = logging.getLogger("bigtrain")
MISSING_VALUES = set(preprocess.MISSING_VALUES)


def _is_missing(v: str) -> bool:
    return v.strip().lower() in MISSING_VALUES


_number = preprocess.parse_number


def read_parquet(path: Path) -> tuple[list[str], list[list[str]]]:
    """A Parquet table as header and rows of strings (missing values as '')."""
    try:
        import pyarrow.parquet as pq
    except ImportError as ex:  # pyarrow comes with tensorflow-datasets
        raise ConfigError("dataset.path", "reading Parquet needs pyarrow: pip install "
                          "'bigtrain[parquet]'") from ex
    try:
        table = pq.read_table(path)
    except Exception as ex:  # pyarrow raises its own error types for damaged files
        raise ConfigError("dataset.path", f"{path} is not a readable Parquet file: "
                          f"{str(ex).splitlines()[0][:200]}") from ex
    header = [str(c) for c in table.column_names]
    columns = [["" if v is None else str(v) for v in col.to_pylist()] for col in table.columns]
    return header, [list(r) for r in zip(*columns, strict=True)]


def read_rows(path: Path, delimiter: str, on_bad: str = "fail", min_rows: int = 3,
              key: str = "dataset.path", stream=None,
              ) -> tuple[list[str], list[list[str]], int]:
    """Header, rows and the number of rows skipped, of a CSV (or Parquet) file (or of the
    text `stream`, named `path`). A ragged row is an error naming its line, or (`on_bad`
    skip) is left out and counted. Errors name `key`."""
    if stream is None and not path.is_file():
        raise ConfigError(key, f"{path} does not exist" if not path.exists()
                          else f"{path} is not a file")
    if stream is None and path.suffix.lower() in (".parquet", ".pq"):
        try:
            header, rows = read_parquet(path)
        except ConfigError as ex:
            raise ConfigError(key, str(ex).split(": ", 1)[-1]) from ex
        if len(rows) < min_rows:
            raise ConfigError(key, f"{path} has {len(rows)} data rows; need at "
                              f"least {min_rows}")
        return header, rows, 0
    try:
        with (open(path, newline="", encoding="utf-8") if stream is None
              else contextlib.nullcontext(stream)) as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if not header:
                raise ConfigError(key, f"{path} is empty")
            header = [h.strip() for h in header]
            rows, ragged = [], []
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    if on_bad == "skip":
                        ragged.append(reader.line_num)
                        continue
                    fix = ("dataset.on_bad_record=skip" if key == "dataset.path"
                           else "--on-bad skip")
                    raise ConfigError(key, f"{path}, line {reader.line_num}: "
                                      f"{len(row)} fields where the header has "
                                      f"{len(header)}; fix the row or set {fix}")
                rows.append(row)
    except UnicodeDecodeError as ex:
        raise ConfigError(key, f"{path} is not UTF-8 text ({ex.reason} at byte "
                          f"{ex.start})") from ex
    except csv.Error as ex:
        raise ConfigError(key, f"{path}: {ex}") from ex
    if ragged:
        log.warning("skipped %d ragged row(s) of %s, e.g. line %d", len(ragged), path, ragged[0])
    if len(rows) < min_rows:
        raise ConfigError(key, f"{path} has {len(rows)} data rows; need at least {min_rows}")
    return header, rows, len(ragged)


@DATASETS.register(CSVConfig)
def build_csv(cfg) -> Splits:
    path = Path(cfg.path).expanduser()
    header, rows, skipped = read_rows(path, cfg.delimiter, cfg.on_bad_record)
    if cfg.label not in header:
        raise ConfigError("dataset.label", f"{path} has no column {cfg.label!r}. Columns: "
                          + ", ".join(header))
    for c in cfg.categorical:
        if c not in header:
            raise ConfigError("dataset.categorical", f"{path} has no column {c!r}")
    columns = list(zip(*rows, strict=True))
    li = header.index(cfg.label)
    labels = columns[li]
    train, _, _ = split_arrays(len(rows), cfg.val_fraction, cfg.test_fraction, cfg.seed)

    # ---- label
    for i, v in enumerate(labels):
        if _is_missing(v):
            raise ConfigError("dataset.label", f"{path}, data row {i + 1}: the label is missing")
    numbers = [_number(v) for v in labels]
    task = cfg.task
    if task == "auto":
        numeric = all(n is not None for n in numbers)
        task = "regression" if numeric and len(set(numbers)) > 20 else "classification"
    if task == "regression":
        if any(n is None for n in numbers):
            bad = next(i for i, n in enumerate(numbers) if n is None)
            raise ConfigError("dataset.label", f"{path}, data row {bad + 1}: label "
                              f"{labels[bad]!r} is not a number (task regression)")
        y = np.array(numbers, np.float32)[:, None]
        num_outputs = 1
        classes = None
    else:
        classes = sorted({labels[i] for i in train})
        index = {c: k for k, c in enumerate(classes)}
        unseen = [i for i, v in enumerate(labels) if v not in index]
        if unseen:
            raise ConfigError("dataset.label", f"{path}, data row {unseen[0] + 1}: class "
                              f"{labels[unseen[0]]!r} is not in the training split")
        y = np.array([index[v] for v in labels], np.int32)
        num_outputs = max(2, len(classes))

    # ---- features
    feats, described = [], []
    for ci, name in enumerate(header):
        if ci == li:
            continue
        values = columns[ci]
        parsed = [None if _is_missing(v) else _number(v) for v in values]
        is_numeric = name not in cfg.categorical and all(
            p is not None or _is_missing(v) for p, v in zip(parsed, values, strict=True))
        if is_numeric:
            known = np.array([parsed[i] for i in train if parsed[i] is not None], np.float64)
            mean = known.mean() if known.size else 0.0
            std = known.std() if known.size and known.std() > 0 else 1.0
            col = np.array([mean if p is None else p for p in parsed], np.float64)
            feats.append(((col - mean) / std)[:, None])
            described.append(preprocess.numeric(name, mean, std))
        else:
            cats = sorted({values[i] for i in train if not _is_missing(values[i])})
            index = {c: k for k, c in enumerate(cats)}
            onehot = np.zeros((len(values), len(cats) + 1))  # last: missing or unseen
            for r, v in enumerate(values):
                onehot[r, index.get(v, len(cats)) if not _is_missing(v) else len(cats)] = 1.0
            feats.append(onehot)
            described.append(preprocess.categorical(name, cats))
    if not feats:
        raise ConfigError("dataset.path", f"{path} has no feature columns besides the label")
    x = np.concatenate(feats, axis=1).astype(np.float32)
    doc = {"input": preprocess.table(described, x.shape[1:], "float32", label=cfg.label,
                                     delimiter=cfg.delimiter),
           "classes": classes, "targets": [cfg.label] if task == "regression" else None}
    return from_arrays("csv", task, x, y, num_outputs=num_outputs, cfg=cfg, skipped=skipped,
                       preprocessing=doc)
