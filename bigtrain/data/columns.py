"""What each column of a table is, and why: the type rules of `dataset=csv`, in one place.

No TensorFlow and no numpy here: `bigtrain data`, the first lines of `fit` and the builder
(csv_table.py) read the same decisions.

Rules (also in docs/how-to/own-data.md):

- A feature column is **numeric** when at least `NUMERIC_SHARE` (95%) of its non-missing cells
  are numbers; the few cells that are not are *bad numbers*: an error naming row and column
  (`dataset.bad_numbers=error`, the default), or treated as missing (`=missing`), or their rows
  dropped and counted (`dataset.on_bad_record=skip`). A column under that share is
  **categorical**. `dataset.types.<column>=numeric|categorical|ignore` overrides the rule.
- The label decides the task when `dataset.task=auto`: **regression** when every label is a
  number and there are more than `MAX_CLASSES_AUTO` (20) distinct values, **classification**
  otherwise. A label column whose values are numbers except for a few (at least 95% numbers) is
  an error naming them: one stray word must not turn a regression into a classification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bigtrain.core.errors import ConfigError

#: cell values that mean "missing" in tables (compared stripped and lower-cased)
MISSING_VALUES = ("", "na", "nan", "null", "none", "?")
#: a column is numeric when at least this share of its non-missing cells are numbers
NUMERIC_SHARE = 0.95
#: task=auto: a numeric label with more distinct values than this is a regression target
MAX_CLASSES_AUTO = 20
TYPES = ("numeric", "categorical", "ignore")
#: a class with fewer rows than this in a table of at least RARE_TABLE rows is pointed out (a
#: misspelt label makes a class of its own)
RARE_CLASS, RARE_TABLE = 3, 50
#: a categorical feature with more distinct values than this share of the rows looks like an
#: identifier (a name, an id): said in the report, since one-hot slots of it only memorize
IDENTIFIER_SHARE = 0.5


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_VALUES


def parse_number(cell: str) -> float | None:
    """A table cell as a finite number, or None (missing, text, inf or nan): one rule for
    training and prediction."""
    try:
        x = float(cell)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


@dataclass
class Column:
    """One column's decision: its type, why, and the counts that show it."""

    name: str
    type: str  # numeric | categorical | ignore | label
    reason: str
    missing: int = 0
    distinct: int = 0
    numbers: int = 0  # non-missing cells that are numbers
    bad_rows: list[int] = field(default_factory=list)  # numeric column: rows (0-based) not numbers
    identifier: bool = False  # categorical, with distinct values in most rows (a name, an id)

    def row(self) -> dict:
        return {"column": self.name, "type": self.type, "missing": self.missing,
                "distinct": self.distinct, "bad_numbers": len(self.bad_rows),
                "identifier": self.identifier, "reason": self.reason}


@dataclass
class TaskChoice:
    task: str  # classification | regression
    reason: str


def _counts(values: list[str]) -> tuple[int, int, list[int], set[str]]:
    """Missing cells, number cells, rows of non-number cells, distinct non-missing values."""
    missing, numbers, text_rows, distinct = 0, 0, [], set()
    for i, v in enumerate(values):
        if is_missing(v):
            missing += 1
            continue
        distinct.add(v.strip())
        if parse_number(v) is None:
            text_rows.append(i)
        else:
            numbers += 1
    return missing, numbers, text_rows, distinct


def infer_feature(name: str, values: list[str], given: str | None) -> Column:
    """The type of feature column `name` (`given`: the user's dataset.types entry, if any)."""
    missing, numbers, text_rows, distinct = _counts(values)
    present = len(values) - missing
    share = numbers / present if present else 0.0
    col = Column(name, "", "", missing=missing, distinct=len(distinct), numbers=numbers)
    if given is not None:
        col.type, col.reason = given, f"dataset.types.{name}={given}"
        if given == "categorical":
            _note_identifier(col, len(distinct), present)
        if given == "numeric":
            col.bad_rows = text_rows
        return col
    if present == 0:
        col.type, col.reason = "categorical", "every cell is missing"
    elif share >= NUMERIC_SHARE:
        col.type, col.bad_rows = "numeric", text_rows
        col.reason = ("every cell is a number" if not text_rows else
                      f"{numbers} of {present} cells are numbers, at least {NUMERIC_SHARE:.0%}")
    else:
        col.type = "categorical"
        col.reason = ("no cell is a number" if numbers == 0 else
                      f"only {numbers} of {present} cells are numbers, under {NUMERIC_SHARE:.0%}")
        _note_identifier(col, len(distinct), present)
    return col


def _note_identifier(col: Column, distinct: int, present: int) -> None:
    if distinct > max(MAX_CLASSES_AUTO, IDENTIFIER_SHARE * present):
        col.identifier = True
        col.reason += (f"; {distinct} distinct values look like an identifier "
                       f"(+dataset.types.{col.name}=ignore leaves it out)")


def choose_task(values: list[str], task: str) -> tuple[TaskChoice, list[int]]:
    """The task (and its reason) a label column gives, and the rows whose label is not a
    number though the task needs one (to be dropped under on_bad_record=skip, else an error
    raised by the caller through `bad_label_error`)."""
    missing, numbers, text_rows, distinct = _counts(values)
    present = len(values) - missing
    numeric_share = numbers / present if present else 0.0
    if task == "classification":
        return TaskChoice(task, "dataset.task=classification"), []
    if task == "regression":
        return TaskChoice(task, "dataset.task=regression"), text_rows
    # auto
    if numbers == present:
        values_seen = {parse_number(v) for v in values if not is_missing(v)}
        if len(values_seen) > MAX_CLASSES_AUTO:
            return TaskChoice("regression", f"every label is a number and {len(values_seen)} "
                              f"are distinct, more than {MAX_CLASSES_AUTO}"), []
        return TaskChoice("classification", f"{len(values_seen)} distinct numeric labels, at "
                          f"most {MAX_CLASSES_AUTO}: dataset.task=regression predicts them as "
                          "numbers"), []
    if numeric_share >= NUMERIC_SHARE:
        return TaskChoice("regression", f"{numbers} of {present} labels are numbers, at "
                          f"least {NUMERIC_SHARE:.0%}"), text_rows
    return TaskChoice("classification", f"{len(distinct)} distinct labels, "
                      f"{present - numbers} of them not numbers"), []


def bad_label_error(label: str, values: list[str], rows: list[int], task: TaskChoice,
                    where: str) -> ConfigError:
    shown = ", ".join(f"data row {i + 1} ({values[i]!r})" for i in rows[:3])
    more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
    verb = "is not a number" if len(rows) == 1 else "are not numbers"
    return ConfigError("dataset.label", f"{where}: label column {label!r} is numeric "
                       f"({task.reason}), but {shown}{more} {verb}; fix them, drop "
                       "those rows with dataset.on_bad_record=skip, or set "
                       "dataset.task=classification")


def bad_number_error(col: Column, values: list[str], where: str) -> ConfigError:
    i = col.bad_rows[0]
    more = f" (and {len(col.bad_rows) - 1} more cells)" if len(col.bad_rows) > 1 else ""
    return ConfigError("dataset.bad_numbers", f"{where}, data row {i + 1}, column "
                       f"{col.name!r}: {values[i]!r} is not a number, and the column is "
                       f"numeric ({col.reason}){more}; fix the cell, or set "
                       "dataset.bad_numbers=missing (fill it like a missing value), "
                       "dataset.on_bad_record=skip (drop the row) or "
                       f"+dataset.types.{col.name}=categorical")


def check_types(types: dict, header: list[str], label: str, key: str) -> None:
    for name, kind in types.items():
        if name not in header:
            raise ConfigError(f"{key}.{name}", f"the table has no column {name!r}. Columns: "
                              + ", ".join(header))
        if name == label:
            raise ConfigError(f"{key}.{name}", f"{name!r} is the label column; "
                              "dataset.task sets how it is read")
        if kind not in TYPES:
            raise ConfigError(f"{key}.{name}", f"{kind!r} is not a column type. "
                              f"Allowed: {', '.join(TYPES)}")


def summary(report: dict) -> list[str]:
    """A few lines for the start of `fit`: the task and why, the types counted, and the
    non-numbers read as missing (what may be a mistake: `warnings`)."""
    kinds = [c["type"] for c in report["columns"]]
    lines = [f"task {report['task']} ({report['task_reason']})",
             "columns: " + ", ".join(f"{kinds.count(k)} {k}" for k in TYPES if k in kinds)
             + " (bigtrain data lists each with its reason)"]
    for c in report["columns"]:
        if c["type"] == "numeric" and c["bad_numbers"] and report.get("bad_numbers") == "missing":
            lines.append(f"column {c['column']!r}: {c['bad_numbers']} cell(s) not a number, "
                         "read as missing (dataset.bad_numbers=missing)")
    return lines


def warnings(report: dict) -> list[str]:
    """What in the table is likely a mistake: a class of one or two rows (a misspelt label),
    a categorical column of identifiers."""
    rows = report.get("class_rows") or {}
    out = []
    if sum(rows.values()) >= RARE_TABLE:
        out += [f"class {name!r} has {n} of {sum(rows.values())} rows: a misspelt label? fix "
                "it, or drop the row" for name, n in rows.items() if n < RARE_CLASS]
    out += [f"column {c['column']!r}: {c['reason']}" for c in report["columns"]
            if c.get("identifier")]
    return out
