"""`bigtrain predict`'s side of a trained run: read raw inputs, run them through the run's
`Serving` functions (the ones its SavedModel exports), write the answers.

Inputs, by the run's input kind (preprocessing.json):

  table  CSV or Parquet files (or `-`: CSV on stdin) with the training columns, by name; other
         columns are ignored; the label column, when present, is compared with the answers.
  image  image files, folders (searched recursively) or globs.
  text   text files (one text each), folders, globs, `-` (one text per line of stdin), or
         CSV/Parquet files with the text column (and, optionally, the label column).

A bad input (a missing column, a value that is not a number, an image that does not decode)
is named with its file and row; `on_bad="skip"` leaves it out and counts it.
`labelled_dataset` reads labelled data in the training format for `eval --data`.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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

    def drop(self, i: int) -> None:
        del self.ids[i]
        del self.labels[i]
        if self.kind == "table":
            for v in self.cells.values():
                del v[i]
        else:
            del self.blobs[i]


def _bad(inputs: Inputs, on_bad: str, message: str, count: int = 1, key: str = "INPUT"
         ) -> None:
    if on_bad != "skip":
        raise ConfigError(key, message + "; fix it or pass --on-bad skip")
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


_number = preprocess.parse_number


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
        _bad(inputs, on_bad, f"{shown} has no column " + ", ".join(repr(m) for m in missing[:5])
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
                    and _number(v) is None:
                problem = f"{shown}, data row {r}: column {c['name']!r}: {v!r} is not a number"
                break
        if problem:
            _bad(inputs, on_bad, problem, key=key)
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
        _bad(inputs, on_bad, f"cannot read {path}: {ex.strerror}")
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
@dataclass
class Predictions:
    ids: list[str]
    labels: list[str | None]
    outputs: dict[str, np.ndarray]  # probabilities or values, one row per kept input
    bad: list[str]
    skipped: int
    seconds: float


def run(restored, inputs: Inputs, batch_size: int = 256, on_bad: str = "fail",
        progress: bool = False) -> Predictions:
    """Answers for every input, through the run's serving function (in batches; a batch
    that fails is retried one input at a time to name the bad ones)."""
    import tensorflow as tf

    serving = restored.serving()
    fn = serving.predict_strings if inputs.kind == "table" else serving.predict_raw
    wanted = "values" if serving.task == "regression" else "probabilities"
    what = {"image": "is not a readable image", "text": "cannot be read",
            "table": "cannot be read"}[inputs.kind]

    def call(idx) -> np.ndarray:
        feed = {k: tf.constant(v, tf.string) for k, v in inputs.select(idx).items()}
        return fn(feed)[wanted].numpy()

    parts: list[np.ndarray] = []
    keep: list[int] = []
    bar = _progress(len(inputs)) if progress else None
    with restored.ema_weights():
        try:  # trace the function first, so that the time measured is the throughput
            call([0])
        except tf.errors.InvalidArgumentError:
            pass  # a bad first input: named below
        start = time.perf_counter()
        for lo in range(0, len(inputs), batch_size):
            idx = list(range(lo, min(len(inputs), lo + batch_size)))
            try:
                parts.append(call(idx))
                keep += idx
            except tf.errors.InvalidArgumentError:
                for i in idx:
                    try:
                        parts.append(call([i]))
                        keep.append(i)
                    except tf.errors.InvalidArgumentError as ex:
                        reason = (ex.message or str(ex)).strip().splitlines()[0][:200]
                        _bad(inputs, on_bad, f"{inputs.ids[i]} {what} ({reason})")
            if bar is not None:
                bar[0].update(bar[1], completed=idx[-1] + 1)
    seconds = time.perf_counter() - start
    if bar is not None:
        bar[0].stop()
    width = 1 if not parts else parts[0].shape[-1]
    outputs = np.concatenate(parts) if parts else np.zeros((0, width), np.float32)
    return Predictions([inputs.ids[i] for i in keep], [inputs.labels[i] for i in keep],
                       {wanted: outputs}, inputs.bad, inputs.skipped, seconds)


def _progress(total: int):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from bigtrain.core.console import CONSOLE

    bar = Progress(TextColumn("[bold]predict"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=CONSOLE, transient=True)
    bar.start()
    return bar, bar.add_task("predict", total=total)


# ------------------------------------------------------------------ answers
def rows_of(pre: dict[str, Any], predictions: Predictions, top_k: int = 1) -> list[dict[str, Any]]:
    """One dict per kept input: id, label (when known), and the class with its probability
    and the top-k (classification), or the value(s) (regression)."""
    labelled = any(v is not None for v in predictions.labels)
    rows = []
    if pre["task"] == "regression":
        targets = pre.get("targets") or ["y"]
        values = predictions.outputs["values"]
        for i, id_ in enumerate(predictions.ids):
            row: dict[str, Any] = {"id": id_}
            if labelled:
                row["label"] = predictions.labels[i]
            if values.shape[1] == 1:
                row["value"] = float(values[i, 0])
            else:
                for t, name in enumerate(targets):
                    row[f"value_{name}"] = float(values[i, t])
            rows.append(row)
        return rows
    classes = pre["classes"]
    probs = predictions.outputs["probabilities"]
    k = max(1, min(top_k, probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    for i, id_ in enumerate(predictions.ids):
        row = {"id": id_}
        if labelled:
            row["label"] = predictions.labels[i]
        row["class"] = classes[order[i, 0]]
        row["probability"] = round(float(probs[i, order[i, 0]]), 6)
        if k > 1:
            row["top_k"] = [{"class": classes[j], "probability": round(float(probs[i, j]), 6)}
                            for j in order[i]]
        rows.append(row)
    return rows


def scores(pre: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy (classification) or MAE and RMSE (regression) over the rows with a label."""
    known = [r for r in rows if r.get("label") is not None]
    if not known:
        return {}
    if pre["task"] == "regression":
        pairs = [(_number(r["label"]), r["value"]) for r in known if "value" in r]
        pairs = [(a, b) for a, b in pairs if a is not None]
        if not pairs:
            return {}
        err = np.array([b - a for a, b in pairs])
        return {"labelled": len(pairs), "mae": float(np.abs(err).mean()),
                "rmse": float(np.sqrt((err ** 2).mean()))}
    classes = set(pre["classes"])
    unknown = sorted({r["label"] for r in known if r["label"] not in classes})
    correct = sum(r["label"] == r["class"] for r in known)
    out = {"labelled": len(known), "accuracy": correct / len(known)}
    if unknown:
        out["unknown_labels"] = unknown[:10]
    return out


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in row.items() if k != "top_k"}
    for n, entry in enumerate(row.get("top_k", [])[1:], start=2):
        flat[f"class_{n}"] = entry["class"]
        flat[f"probability_{n}"] = entry["probability"]
    return flat


def check_out(out: Path | None) -> None:
    if out is not None and out.suffix.lower() not in (".csv", ".jsonl"):
        raise ConfigError("--out", f"{out} must end in .csv or .jsonl")


def write_rows(rows: list[dict[str, Any]], out: Path | None, terminal: bool,
               limit: int = 200) -> None:
    """--out FILE.csv | FILE.jsonl; without it, a table on a terminal and CSV when piped."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".jsonl":
            with open(out, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            with open(out, "w", newline="", encoding="utf-8") as f:
                _csv(rows, f)
        return
    if not terminal:
        _csv(rows, sys.stdout)
        return
    from rich.console import Console
    from rich.table import Table

    flat = [_flat(r) for r in rows]
    table = Table()
    for k in (flat[0] if flat else {"id": None}):
        table.add_column(k, justify="right" if k.startswith(("probability", "value"))
                         else "left")
    for r in flat[:limit]:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()))
    Console().print(table)
    if len(flat) > limit:
        Console(stderr=True).print(f"... {len(flat) - limit} more rows: write them all with "
                                   "--out FILE.csv or FILE.jsonl")


def _csv(rows: list[dict[str, Any]], f) -> None:
    flat = [_flat(r) for r in rows]
    fields = list(flat[0]) if flat else ["id"]
    writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)


# ------------------------------------------------------------------ eval --data
def labelled_dataset(restored, path: Path):
    """(tf.data.Dataset of (model input, label), examples) of labelled data in the training
    format at `path`, through the run's preprocessing (the same as predict's)."""
    import tensorflow as tf

    pre = restored.preprocessing
    if pre["input"]["kind"] not in ("table", "image", "text"):
        raise ConfigError("--data", f"eval --data reads tables, image folders and labelled "
                          f"texts; this run's data ({pre['dataset']}) has none of them: use "
                          "--split")
    inputs = read_inputs(pre, [str(path)], "fail", labelled=True, key="--data")
    serving = restored.serving()
    xs = []
    for lo in range(0, len(inputs), 256):
        idx = range(lo, min(len(inputs), lo + 256))
        feed = {k: tf.constant(v, tf.string) for k, v in inputs.select(idx).items()}
        try:
            xs.append(serving.to_model_inputs(feed).numpy())
        except tf.errors.InvalidArgumentError as ex:
            reason = (ex.message or str(ex)).strip().splitlines()[0][:200]
            raise ConfigError("--data", f"{path}: an input does not read ({reason}); "
                              "`bigtrain predict` names it") from None
    x = np.concatenate(xs)
    if pre["task"] == "regression":
        values = [_number(v) for v in inputs.labels]
        bad = next((i for i, v in enumerate(values) if v is None), None)
        if bad is not None:
            raise ConfigError("--data", f"{inputs.ids[bad]}: label {inputs.labels[bad]!r} is "
                              "not a number")
        y = np.array(values, np.float32)[:, None]
    else:
        index = {c: k for k, c in enumerate(pre["classes"])}
        bad = next((i for i, v in enumerate(inputs.labels) if v not in index), None)
        if bad is not None:
            raise ConfigError("--data", f"{inputs.ids[bad]}: label {inputs.labels[bad]!r} is "
                              "not one of the run's classes (" + ", ".join(pre["classes"][:10])
                              + ")")
        y = np.array([index[v] for v in inputs.labels], np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)), len(y)
