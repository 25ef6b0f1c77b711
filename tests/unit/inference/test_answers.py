"""Scores of predictions against the labels their inputs had."""

from __future__ import annotations

from bigtrain.inference.answers import scores


def test_a_missing_label_is_no_label_not_a_wrong_answer():
    pre = {"task": "classification", "classes": ["benign", "malignant"]}
    rows = [{"label": "benign", "class": "benign"}, {"label": "", "class": "benign"},
            {"label": "NA", "class": "malignant"}, {"label": "malignnt", "class": "malignant"}]
    out = scores(pre, rows)
    assert out["labelled"] == 2 and out["accuracy"] == 0.5
    assert out["unknown_labels"] == ["malignnt"]


def test_a_bad_row_names_the_fix_each_command_has(tmp_path):
    import pytest

    from bigtrain.core.errors import ConfigError
    from bigtrain.data import preprocess
    from bigtrain.inference.inputs import read_inputs

    pre = {"task": "regression", "input": preprocess.table(
        [preprocess.numeric("bmi", 30.0, 5.0)], (1,), label="y")}
    (tmp_path / "new.csv").write_text("bmi,y\n31,150\ntwenty,90\n")
    with pytest.raises(ConfigError, match=r"'twenty' is not a number; fix it in the file$"):
        read_inputs(pre, [str(tmp_path / "new.csv")], "fail", labelled=True, key="--data")
    with pytest.raises(ConfigError, match=r"'twenty' is not a number; fix it or pass --on-bad"):
        read_inputs(pre, [str(tmp_path / "new.csv")], "fail")
