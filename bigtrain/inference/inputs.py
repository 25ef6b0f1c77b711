"""The inputs of `bigtrain predict` and `eval --data`, read by the run's input kind
(preprocessing.json):

  table  CSV or Parquet files (or `-`: CSV on stdin) with the training columns, by name; other
         columns are ignored; the label column, when present, is compared with the answers.
  image  image files, folders (searched recursively) or globs.
  text   text files (one text each), folders, globs, `-` (one text per line of stdin), or
         CSV/Parquet files with the text column (and, optionally, the label column).

A bad input (a missing column, a value that is not a number, an image that does not decode)
is named with its file and row; `on_bad="skip"` leaves it out and counts it.
"""

from __future__ import annotations

import glob
import io
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bigtrain.core.errors import ConfigError
from bigtrain.data import preprocess

log = logging.getLogger("bigtrain")

TABLE_FILES = (".csv", ".tsv", ".parquet", ".pq")
IMAGE_FILES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


@dataclass
class Inputs:
    """Raw inputs, in order: ids, table cells ({signature key: strings}) or blobs (encoded
    images, texts), labels where known; what was left out."""

    kind: str
    ids: list[str] = field(default_factory=list)
    cells: dict[str, list[str]] = field(default_factory=dict)
    blobs: list[bytes] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # what was left out, and why
    skipped: int = 0  # inputs left out (--on-bad skip)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_labels(self) -> bool:
        return any(v is not None for v in self.labels)

    def select(self, idx) -> dict[str, list]:
        """The signature's inputs for the items `idx`."""
        if self.kind == "table":
            return {k: [v[i] for i in idx] for k, v in self.cells.items()}
        return {"images" if self.kind == "image" else "texts": [self.blobs[i] for i in idx]}

    def drop(self, index: int) -> None:
        del self.ids[index]
        del self.labels[index]
        if self.kind == "table":
            for v in self.cells.values():
                del v[index]
        else:
            del self.blobs[index]


def bad_input(inputs: Inputs, on_bad: str, message: str, count: int = 1, key: str = "INPUT"
              ) -> None:
    """A bad input: a ConfigError naming it (`on_bad="fail"`), or left out and counted."""
    if on_bad != "skip":
        # predict can leave a bad input out; eval --data scores every row, or none
        raise ConfigError(key, message + ("; fix it in the file" if key == "--data"
                                          else "; fix it or pass --on-bad skip"))
    inputs.bad.append(message)
    inputs.skipped += count


def _expand(arg: str, suffixes: tuple[str, ...] | None, key: str) -> list[str]:
    """The files an INPUT names: itself, a folder's files (recursively), a glob's matches."""
    if arg == "-":
        return ["-"]
    full = os.path.expanduser(arg)
    if any(ch in arg for ch in "*?["):
        files = sorted(p for p in glob.glob(full, recursive=True) if os.path.isfile(p))
        if not files:
            raise ConfigError(key, f"the glob {arg!r} matches no files")
        return files
    p = Path(full)
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*") if f.is_file()
                       and not any(part.startswith(".") for part in f.relative_to(p).parts)
                       and (suffixes is None or f.suffix.lower() in suffixes))
        if not files:
            what = ", ".join(suffixes) if suffixes else "files"
            raise ConfigError(key, f"{arg} holds no {what}")
        return files
    if not p.exists():
        raise ConfigError(key, f"{arg} does not exist")
    return [arg]


def _shown(path: str) -> str:
    return "stdin" if path == "-" else path


# ------------------------------------------------------------------ reading
def read_inputs(pre: dict[str, Any], args: list[str], on_bad: str = "fail",
                labelled: bool = False, key: str = "INPUT") -> Inputs:
    """The raw inputs `args` name, read as the run's input kind needs them. `labelled`
    (eval --data): every input must carry a label (a label column, or class folders)."""
    kind = pre["input"]["kind"]
    if kind == "lm" or pre["task"] == "lm":
        raise ConfigError("RUN_DIR", "this run is a language model: sample from it with "
                          "`bigtrain generate RUN_DIR --prompt TEXT`; predict reads tables, "
                          "images and texts")
    if kind not in ("table", "image", "text"):
        raise ConfigError("RUN_DIR", "this run's data source did not record how to read raw "
                          f"inputs (input kind {kind!r} in preprocessing.json); predict reads "
                          "tables, images and texts")
    inputs = Inputs(kind)
    if kind == "table":
        for arg in args:
            for f in _expand(arg, TABLE_FILES, key):
                _read_table(pre, f, inputs, on_bad, labelled, key)
    elif kind == "image":
        for arg in args:
            if arg == "-":
                raise ConfigError(key, "images are read from files, folders or globs, not "
                                  "from stdin")
            if labelled:
                _read_labelled_folder(arg, inputs, IMAGE_FILES, key)
                continue
            for f in _expand(arg, IMAGE_FILES, key):
                _read_blob(f, inputs, on_bad, "image")
    else:  # text
        for arg in args:
            if arg != "-" and Path(arg).suffix.lower() in TABLE_FILES and Path(arg).is_file():
                _read_table(pre, arg, inputs, on_bad, labelled, key)
            elif arg == "-":
                if labelled:
                    raise ConfigError(key, "labelled texts come from class folders or a CSV, "
                                      "not from stdin")
                _read_lines(inputs)
            elif labelled:
                _read_labelled_folder(arg, inputs, None, key)
            else:
                for f in _expand(arg, None, key):
                    _read_blob(f, inputs, on_bad, "text")
    if not len(inputs):
        raise ConfigError(key, "no inputs to read" + (f" ({inputs.skipped} left out as bad, "
                          f"e.g. {inputs.bad[0]})" if inputs.bad else ""))
    return inputs




def _read_table(pre: dict[str, Any], path: str, inputs: Inputs, on_bad: str, labelled: bool,
                key: str) -> None:
    from bigtrain.data.csv_table import read_rows

    spec = pre["input"]
    shown = _shown(path)
    if inputs.kind == "table":
        columns = spec["columns"]
        label = spec.get("label")
        delimiter = spec.get("delimiter") or ","
    else:  # texts in a table
        columns = [{"name": spec.get("column") or "text", "key": "texts", "type": "text"}]
        label = spec.get("label") or "label"
        delimiter = ","
    if path != "-" and Path(path).suffix.lower() == ".tsv":
        delimiter = "\t"
    stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", newline="") \
        if path == "-" else None
    header, rows, ragged = read_rows(Path(shown), delimiter, on_bad, min_rows=1, key=key,
                                     stream=stream)
    if ragged:
        inputs.bad.append(f"{shown}: {ragged} ragged row(s)")
        inputs.skipped += ragged
    names = [c["name"] for c in columns]
    missing = [n for n in names if n not in header]
    if missing:
        shown_cols = ", ".join(repr(n) for n in names[:10]) + (" ..." if len(names) > 10
                                                              else "")
        bad_input(inputs, on_bad, f"{shown} has no column "
                  + ", ".join(repr(m) for m in missing[:5])
                  + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
                  + f"; the model reads the columns {shown_cols} (other columns are ignored)",
                  count=len(rows), key=key)
        return
    if labelled and label not in header:
        raise ConfigError(key, f"{shown} has no label column {label!r}; eval --data needs "
                          "labelled data in the training format")
    where = [header.index(n) for n in names]
    li = header.index(label) if label in header else None
    for r, row in enumerate(rows, start=1):
        cells = [row[i] for i in where]
        problem = None
        for c, v in zip(columns, cells, strict=True):
            if c["type"] == "numeric" and v.strip().lower() not in spec["missing_values"] \
                    and preprocess.parse_number(v) is None:
                problem = f"{shown}, data row {r}: column {c['name']!r}: {v!r} is not a number"
                break
        if problem:
            bad_input(inputs, on_bad, problem, key=key)
            continue
        inputs.ids.append(f"{shown}:{r}")
        inputs.labels.append(row[li] if li is not None else None)
        for c, v in zip(columns, cells, strict=True):
            if inputs.kind == "table":
                inputs.cells.setdefault(c["key"], []).append(v)
            else:
                inputs.blobs.append(v.encode("utf-8"))


def _read_blob(path: str, inputs: Inputs, on_bad: str, what: str,
               label: str | None = None) -> None:
    try:
        data = Path(path).read_bytes()
    except OSError as ex:
        bad_input(inputs, on_bad, f"cannot read {path}: {ex.strerror}")
        return
    inputs.ids.append(path)
    inputs.blobs.append(data)
    inputs.labels.append(label)


def _read_lines(inputs: Inputs) -> None:
    for n, line in enumerate(sys.stdin.buffer, start=1):
        text = line.rstrip(b"\r\n")
        if text.strip():
            inputs.ids.append(f"stdin:{n}")
            inputs.blobs.append(text)
            inputs.labels.append(None)


def _read_labelled_folder(arg: str, inputs: Inputs, suffixes, key: str) -> None:
    """A folder with one sub-folder per class (the training format), for eval --data."""
    root = Path(os.path.expanduser(arg))
    if not root.is_dir():
        raise ConfigError(key, f"{arg} is not a folder of class folders" if root.exists()
                          else f"{arg} does not exist")
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ConfigError(key, f"{arg} needs one sub-folder per class, named by the class")
    for d in classes:
        for f in sorted(p for p in d.rglob("*") if p.is_file()
                        and (suffixes is None or p.suffix.lower() in suffixes)):
            _read_blob(str(f), inputs, "fail", "", label=d.name)


# ------------------------------------------------------------------ running
