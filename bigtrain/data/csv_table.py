"""Tabular data from a CSV or Parquet file: a label column, numeric and categorical features.

Which columns are numeric, categorical or left out, and the task, follow the rules of
`bigtrain/data/columns.py` (reported by `bigtrain data` and at the start of `fit`). Numeric
features are standardized with the mean and deviation of the training split only, and their
missing values filled with the training mean; categorical features are one-hot encoded over the
training split's values, with missing and unseen values in a bucket of their own.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from pathlib import Path

import numpy as np

from bigtrain.core.errors import ConfigError
from bigtrain.data import DATASETS, columns, preprocess
from bigtrain.data.pipeline import Splits, from_arrays, split_for
from bigtrain.data.schemas import CSVConfig

log = logging.getLogger("bigtrain")
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
    where = str(path)
    if cfg.label not in header:
        raise ConfigError("dataset.label", f"{path} has no column {cfg.label!r}. Columns: "
                          + ", ".join(header))
    for c in cfg.categorical:
        if c not in header:
            raise ConfigError("dataset.categorical", f"{path} has no column {c!r}")
    columns.check_types(dict(cfg.types), header, cfg.label, "dataset.types")
    given = {c: "categorical" for c in cfg.categorical} | dict(cfg.types)
    li = header.index(cfg.label)

    # ---- what each column is (bigtrain/data/columns.py), and the rows that break it
    labels = [r[li] for r in rows]
    missing_labels = [i for i, v in enumerate(labels) if columns.is_missing(v)]
    drop = set(missing_labels) if cfg.on_bad_record == "skip" else set()
    if missing_labels and not drop:
        raise ConfigError("dataset.label", f"{path}, data row {missing_labels[0] + 1}: the "
                          "label is missing; fill it, or drop such rows with "
                          "dataset.on_bad_record=skip")
    choice, bad_labels = columns.choose_task(labels, cfg.task)
    if bad_labels:
        if cfg.on_bad_record != "skip":
            raise columns.bad_label_error(cfg.label, labels, bad_labels, choice, where)
        drop |= set(bad_labels)
    features: list[tuple[int, columns.Column]] = []
    for ci, name in enumerate(header):
        if ci == li:
            continue
        values = [r[ci] for r in rows]
        col = columns.infer_feature(name, values, given.get(name))
        if col.type == "numeric" and col.bad_rows and cfg.bad_numbers != "missing":
            if cfg.on_bad_record != "skip":
                raise columns.bad_number_error(col, values, where)
            drop |= set(col.bad_rows)
        features.append((ci, col))
    if drop:
        log.warning("dataset.on_bad_record=skip: dropped %d row(s) of %s with a missing or "
                    "non-numeric label or a non-number in a numeric column, e.g. data row %d",
                    len(drop), path, min(drop) + 1)
        rows = [r for i, r in enumerate(rows) if i not in drop]
        skipped += len(drop)
        if len(rows) < 3:
            raise ConfigError("dataset.on_bad_record", f"{path}: {len(rows)} rows are left "
                              "after dropping the bad ones; need at least 3")
    if all(col.type == "ignore" for _, col in features):
        raise ConfigError("dataset.path", f"{path} has no feature columns besides the label"
                          + (" (the others are dataset.types=ignore)" if features else ""))
    report = {"label": cfg.label, "task": choice.task, "task_reason": choice.reason,
              "rows": len(rows), "skipped": skipped, "bad_numbers": cfg.bad_numbers,
              "columns": [col.row() for _, col in features]}
    train, _, _ = split_for(len(rows), cfg)

    # ---- label
    labels = [r[li] for r in rows]
    if choice.task == "regression":
        y = np.array([columns.parse_number(v) for v in labels], np.float32)[:, None]
        num_outputs, classes = 1, None
    else:
        classes = sorted({labels[i] for i in train})
        index = {c: k for k, c in enumerate(classes)}
        unseen = [i for i, v in enumerate(labels) if v not in index]
        if unseen:
            raise ConfigError("dataset.label", f"{path}: class {labels[unseen[0]]!r} occurs "
                              "only outside the training split (in the validation or test "
                              "rows); give it more rows, or drop it")
        y = np.array([index[v] for v in labels], np.int32)
        num_outputs = max(2, len(classes))
        counts = np.bincount(y, minlength=len(classes))
        report["class_rows"] = {c: int(n) for c, n in zip(classes, counts, strict=True)}

    # ---- features
    feats, described = [], []
    for ci, col in features:
        values = [r[ci] for r in rows]
        if col.type == "numeric":
            parsed = [None if columns.is_missing(v) else columns.parse_number(v) for v in values]
            known = np.array([parsed[i] for i in train if parsed[i] is not None], np.float64)
            mean = known.mean() if known.size else 0.0
            std = known.std() if known.size and known.std() > 0 else 1.0
            x_col = np.array([mean if p is None else p for p in parsed], np.float64)
            feats.append(((x_col - mean) / std)[:, None])
            described.append(preprocess.numeric(col.name, mean, std))
        elif col.type == "categorical":
            cats = sorted({values[i] for i in train if not columns.is_missing(values[i])})
            index = {c: k for k, c in enumerate(cats)}
            onehot = np.zeros((len(values), len(cats) + 1))  # last: missing or unseen
            for r, v in enumerate(values):
                onehot[r, index.get(v, len(cats)) if not columns.is_missing(v) else len(cats)] = 1
            feats.append(onehot)
            described.append(preprocess.categorical(col.name, cats))
    x = np.concatenate(feats, axis=1).astype(np.float32)
    doc = {"input": preprocess.table(described, x.shape[1:], "float32", label=cfg.label,
                                     delimiter=cfg.delimiter),
           "classes": classes, "targets": [cfg.label] if choice.task == "regression" else None}
    splits = from_arrays("csv", choice.task, x, y, num_outputs=num_outputs, cfg=cfg,
                         skipped=skipped, preprocessing=doc)
    splits.report = report
    return splits
