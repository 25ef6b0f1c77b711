"""Column types of `dataset=csv`: reported, overridable, never switched silently by a stray cell
(bigtrain/data/columns.py and the CSV builder that follows it)."""

from __future__ import annotations

import numpy as np
import pytest
from test_data_csv import splits_for, write_csv

from bigtrain.core.errors import ConfigError
from bigtrain.data import columns


@pytest.fixture(scope="module")
def diabetes_rows():
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=False)
    header = list(d.feature_names) + ["target"]
    rows = [[f"{v:g}" for v in x] + [f"{t:g}"] for x, t in zip(d.data, d.target, strict=True)]
    return header, rows


def _table(tmp_path, diabetes_rows, edits=(), name="d.csv"):
    header, rows = diabetes_rows
    rows = [list(r) for r in rows]
    for row, col, value in edits:
        rows[row][header.index(col)] = value
    return write_csv(tmp_path / name, header, rows)


def test_one_word_in_a_numeric_column_is_an_error_naming_row_and_column(tmp_path, diabetes_rows):
    path = _table(tmp_path, diabetes_rows, [(16, "bmi", "twenty")])
    with pytest.raises(ConfigError, match=r"data row 17, column 'bmi': 'twenty' is not a "
                       r"number.*dataset.bad_numbers=missing.*dataset.types.bmi=categorical"):
        splits_for(f"dataset.path={path}", "dataset.label=target")


def test_bad_numbers_missing_keeps_the_column_numeric(tmp_path, diabetes_rows):
    clean = splits_for(f"dataset.path={_table(tmp_path, diabetes_rows)}", "dataset.label=target")
    path = _table(tmp_path, diabetes_rows, [(16, "bmi", "twenty")], "bad.csv")
    splits = splits_for(f"dataset.path={path}", "dataset.label=target",
                        "dataset.bad_numbers=missing")
    assert splits.spec.input_shape == clean.spec.input_shape == (10,)
    bmi = next(c for c in splits.report["columns"] if c["column"] == "bmi")
    assert bmi["type"] == "numeric" and bmi["bad_numbers"] == 1
    assert any("'bmi': 1 cell(s) not a number, read as missing" in line
               for line in columns.summary(splits.report))


def test_skip_drops_rows_with_bad_numbers_and_counts_them(tmp_path, diabetes_rows):
    path = _table(tmp_path, diabetes_rows, [(16, "bmi", "twenty"), (20, "bp", "n/a?")])
    splits = splits_for(f"dataset.path={path}", "dataset.label=target",
                        "dataset.on_bad_record=skip")
    spec = splits.spec
    assert spec.skipped == 2 and spec.input_shape == (10,)
    assert spec.num_train + spec.num_val + spec.num_test == 440


def test_types_override_the_inference(tmp_path, diabetes_rows):
    path = _table(tmp_path, diabetes_rows)
    splits = splits_for(f"dataset.path={path}", "dataset.label=target",
                        "+dataset.types.sex=categorical", "+dataset.types.s6=ignore")
    by_name = {c["column"]: c for c in splits.report["columns"]}
    assert by_name["sex"]["type"] == "categorical" and by_name["s6"]["type"] == "ignore"
    assert by_name["sex"]["reason"] == "dataset.types.sex=categorical"
    # 8 numeric columns + sex one-hot over its 2 values and the missing slot; s6 left out
    assert splits.spec.input_shape == (8 + 3,)
    names = [c["name"] for c in splits.preprocessing["input"]["columns"]]
    assert "s6" not in names and "sex" in names


def test_a_column_mostly_of_words_is_categorical_and_says_why(tmp_path):
    rows = [[("red" if i % 3 else str(i)), str(i % 2)] for i in range(40)]
    path = write_csv(tmp_path / "c.csv", ["colour", "y"], rows)
    splits = splits_for(f"dataset.path={path}", "dataset.label=y")
    (colour,) = splits.report["columns"]
    assert colour["type"] == "categorical"
    assert colour["reason"].startswith("only 14 of 40 cells are numbers, under 95%")


@pytest.mark.parametrize("types,match", [
    ("+dataset.types.nope=numeric", r"dataset.types.nope: the table has no column 'nope'"),
    ("+dataset.types.bmi=text", r"dataset.types.bmi.*allowed.*numeric, categorical, ignore"),
    ("+dataset.types.target=numeric", r"'target' is the label column"),
])
def test_bad_types_are_named(tmp_path, diabetes_rows, types, match):
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.checks import check_config

    path = _table(tmp_path, diabetes_rows)
    with pytest.raises(ConfigError, match=match):
        check_config(compose(["dataset=csv", f"dataset.path={path}", "dataset.label=target",
                              types]))


def test_a_stray_word_among_numeric_labels_is_an_error_not_a_classification(
        tmp_path, diabetes_rows):
    path = _table(tmp_path, diabetes_rows, [(38, "target", "high")])
    with pytest.raises(ConfigError, match=r"label column 'target' is numeric \(441 of 442 "
                       r"labels are numbers, at least 95%\), but data row 39 \('high'\) is not "
                       r"a number.*dataset.task=classification"):
        splits_for(f"dataset.path={path}", "dataset.label=target")
    splits = splits_for(f"dataset.path={path}", "dataset.label=target",
                        "dataset.on_bad_record=skip")
    assert splits.spec.task == "regression" and splits.spec.skipped == 1


@pytest.mark.parametrize("labels,task,reason", [
    ([str(i % 25 * 1.5) for i in range(60)], "regression",
     "every label is a number and 25 are distinct, more than 20"),
    ([str(i % 3) for i in range(60)], "classification",
     "3 distinct numeric labels, at most 20: dataset.task=regression predicts them as numbers"),
    (["cat", "dog"] * 30, "classification", "2 distinct labels, 60 of them not numbers"),
])
def test_the_task_rule_and_its_reason(labels, task, reason):
    choice, bad = columns.choose_task(labels, "auto")
    assert (choice.task, choice.reason, bad) == (task, reason, [])


def test_an_identifier_like_column_is_pointed_out(tmp_path):
    rows = [[f"user{i}", f"{np.sin(i):.3f}", str(i % 2)] for i in range(60)]
    path = write_csv(tmp_path / "ids.csv", ["user", "x", "y"], rows)
    splits = splits_for(f"dataset.path={path}", "dataset.label=y")
    assert any("'user'" in line and "look like an identifier" in line
               and "dataset.types.user=ignore" in line for line in columns.warnings(splits.report))


def test_a_class_of_one_row_is_pointed_out_as_a_possible_misspelling(tmp_path):
    rows = [[f"{i % 7}", "benign" if i % 3 else "malignant"] for i in range(80)]
    rows[5][1] = "malignat"
    path = write_csv(tmp_path / "c.csv", ["x", "diagnosis"], rows)
    splits = splits_for(f"dataset.path={path}", "dataset.label=diagnosis",
                        "dataset.val_fraction=0", "dataset.test_fraction=0")
    assert splits.report["class_rows"]["malignat"] == 1
    assert "class 'malignat' has 1 of 80 rows: a misspelt label? fix it, or drop the row" in \
        columns.warnings(splits.report)
