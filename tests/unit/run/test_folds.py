"""k-fold cross-validation (dataset.folds): the splits, the combined summary, and a real run."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers import read_json, run_cli

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.checks import check_config
from bigtrain.core.errors import ConfigError
from bigtrain.data.pipeline import split_arrays
from bigtrain.run import rundir
from bigtrain.run.folds import combine


def test_folds_cut_the_examples_outside_a_fixed_test_split():
    n, k = 103, 4
    parts = [split_arrays(n, 0.1, 0.2, seed=3, folds=k, fold=i) for i in range(k)]
    tests = {tuple(sorted(test)) for _, _, test in parts}
    assert len(tests) == 1 and len(next(iter(tests))) == round(n * 0.2)
    vals = [set(val.tolist()) for _, val, _ in parts]
    assert sum(len(v) for v in vals) == n - round(n * 0.2)
    assert all(not (a & b) for i, a in enumerate(vals) for b in vals[i + 1:])
    for (train, val, test), v in zip(parts, vals, strict=True):
        assert not (set(train.tolist()) & v) and not (set(train.tolist()) & set(test.tolist()))
        assert len(train) + len(val) + len(test) == n
    # without folds the split is what it always was
    old = split_arrays(n, 0.1, 0.2, seed=3)
    order = np.random.default_rng(3).permutation(n)
    assert old[1].tolist() == order[:10].tolist()


def test_the_combined_summary_is_the_mean_and_spread_and_what_a_sweep_optimizes(tmp_path):
    folds = [{"status": "completed", "final": {"val_accuracy": a, "val_baseline_accuracy": 0.3},
              "best": {"val_accuracy": a + 0.01}, "steps": 10, "wall_s": 1.0}
             for a in (0.8, 0.9, 1.0)]
    summary = combine(folds, "val_accuracy", tmp_path)
    assert summary["folds"] == 3 and summary["status"] == "completed"
    assert summary["final"]["val_accuracy"] == pytest.approx(0.9)
    assert summary["spread"]["val_accuracy"] == pytest.approx(0.1)  # sample deviation
    assert rundir.monitored_value(summary, "val_accuracy") == pytest.approx(0.91)
    assert [f["final"] for f in summary["per_fold"]] == [0.8, 0.9, 1.0]
    folds[1]["status"] = "failed"
    assert combine(folds, "val_accuracy", tmp_path)["status"] == "failed"


@pytest.mark.parametrize("overrides,match", [
    (["dataset=digits", "dataset.folds=1"], "must be 0 .* or at least 2"),
    (["dataset=text_stdlib", "dataset.folds=3"], "dataset=text has no in-memory examples"),
    (["dataset=digits", "dataset.folds=3", "dataset.fold=3"], r"must be in \[0, 3\)"),
])
def test_bad_folds_are_named(overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(compose(overrides))


def test_a_cross_validated_run_reports_each_fold_and_their_mean(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris()
    with open(tmp_path / "iris.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*iris.feature_names, "species"])
        w.writerows([*map(str, x), iris.target_names[t]]
                    for x, t in zip(iris.data, iris.target, strict=True))
    out = run_cli("fit", "dataset=csv", "dataset.path=iris.csv", "dataset.label=species",
                  "dataset.folds=3", "trainer.epochs=2", "trainer.progress=none",
                  "hydra.run.dir=cv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = read_json(tmp_path / "cv" / "summary.json")
    per_fold = [read_json(tmp_path / "cv" / f"fold-{i}" / "summary.json") for i in range(3)]
    vals = [s["final"]["val_loss"] for s in per_fold]
    assert summary["folds"] == 3 and summary["final"]["val_loss"] == pytest.approx(np.mean(vals))
    assert summary["spread"]["val_loss"] == pytest.approx(np.std(vals, ddof=1))
    # every fold validated on other rows: 150 - 15 test rows in 3 parts of 45
    specs = [read_json(tmp_path / "cv" / f"fold-{i}" / "preprocessing.json")["spec"]
             for i in range(3)]
    assert [s["num_val"] for s in specs] == [45, 45, 45]
    assert "cross-validation over 3 folds: val_loss" in out.stderr and "±" in out.stderr
    refused = run_cli("eval", "cv", cwd=tmp_path)
    assert refused.returncode == 2 and "3-fold cross-validation" in refused.stderr
    table = run_cli("runs", "cv", cwd=tmp_path)
    assert f"± {summary['spread']['val_loss']:.2g}" in table.stdout
