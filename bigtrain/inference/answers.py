"""The answers of `bigtrain predict`: one row per kept input (the class with its
probability and the top-k, or the value), the scores when the inputs had labels, and the rows
written as a table on a terminal, or CSV / JSON lines to a file or a pipe.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bigtrain.core.errors import ConfigError
from bigtrain.data import preprocess

log = logging.getLogger("bigtrain")


@dataclass
class Predictions:
    """What `predict.run` answered: one row of outputs per kept input."""

    ids: list[str]
    labels: list[str | None]
    outputs: dict[str, np.ndarray]  # probabilities or values, one row per kept input
    bad: list[str]
    skipped: int
    seconds: float


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
    # a missing label (an empty cell, NA, ...) is no label: the row is answered, not scored
    known = [r for r in rows if r.get("label") is not None
             and not preprocess.is_missing(str(r["label"]))]
    if not known:
        return {}
    if pre["task"] == "regression":
        pairs = [(preprocess.parse_number(r["label"]), r["value"]) for r in known if "value" in r]
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
