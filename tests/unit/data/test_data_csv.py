"""The CSV source on tables the tests write (scikit-learn's bundled iris and diabetes)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.data import build_dataset  # noqa: E402


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def iris_csv(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris()
    rows = []
    for i, (x, t) in enumerate(zip(iris.data, iris.target, strict=True)):
        colour = ["red", "green", "blue"][i % 3]
        first = "" if i % 17 == 0 else f"{x[0]:.1f}"  # some missing values
        rows.append([first, *[f"{v:.1f}" for v in x[1:]], colour, iris.target_names[t]])
    header = ["sepal_length", "sepal_width", "petal_length", "petal_width", "colour",
              "species"]
    return write_csv(tmp_path / "iris.csv", header, rows)


def splits_for(*overrides):
    return build_dataset(to_typed(compose(["dataset=csv", *overrides])).dataset)


def test_classification_table_with_missing_values_and_a_categorical(iris_csv):
    splits = splits_for(f"dataset.path={iris_csv}", "dataset.label=species")
    spec = splits.spec
    assert spec.task == "classification" and spec.num_outputs == 3
    assert spec.input_shape == (4 + 4,)  # 4 numeric + 3 colours + a missing/unseen bucket
    x = np.stack([e[0].numpy() for e in splits.train])
    assert np.isfinite(x).all()
    np.testing.assert_allclose(x[:, 1:4].mean(axis=0), 0, atol=0.25)  # standardized on train


def test_a_model_learns_the_table(iris_csv, tmp_path):
    from bigtrain.run.job import train

    config = to_typed(compose(["dataset=csv", f"dataset.path={iris_csv}",
                               "dataset.label=species", "model=mlp", "trainer.epochs=30",
                               "trainer.batch_size=16", "trainer.progress=none",
                               "logger=[]"]))
    summary = train(config, tmp_path / "run")
    assert summary["final"]["val_accuracy"] >= 0.8


def test_numeric_label_with_many_values_is_regression(tmp_path):
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    path = write_csv(tmp_path / "d.csv", [f"f{i}" for i in range(10)] + ["target"],
                     [[*map(str, x), str(t)] for x, t in zip(d.data, d.target, strict=True)])
    spec = splits_for(f"dataset.path={path}", "dataset.label=target").spec
    assert spec.task == "regression" and spec.num_outputs == 1


@pytest.mark.parametrize("content,overrides,match", [
    ("a,b\n1,x\n2,y\n3,x\n", ["dataset.label=label"], "has no column 'label'. Columns: a, b"),
    ("a,b\n1,x\n2,y,9\n3,x\n", ["dataset.label=b"], r"line 3: 3 fields where the header has 2"),
    ("", ["dataset.label=b"], "is empty"),
    ("a,b\n1,x\n2,y\n3,z\n4,x\n", ["dataset.label=b", "dataset.task=regression"],
     r"data row 1 \('x'\).* are not numbers"),
    ("a,b\n1,x\n2,\n3,x\n", ["dataset.label=b"], "data row 2: the label is missing"),
])
def test_bad_tables_are_named(tmp_path, content, overrides, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        splits_for(f"dataset.path={path}", *overrides)


def test_missing_file_in_fit_is_a_usage_error(cli):
    proc = cli("fit", "dataset=csv", "dataset.path=nope.csv", "dataset.label=y", "debug=smoke",
               "hydra.run.dir=run")
    assert proc.returncode == 2 and "dataset.path: nope.csv does not exist" in proc.stderr


def test_parquet_reads_like_csv(iris_csv, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow.csv as pcsv

    path = tmp_path / "iris.parquet"
    pq.write_table(pcsv.read_csv(iris_csv), path)
    from_csv = splits_for(f"dataset.path={iris_csv}", "dataset.label=species").spec
    from_parquet = splits_for(f"dataset.path={path}", "dataset.label=species").spec
    assert from_parquet.input_shape == from_csv.input_shape
    assert from_parquet.num_train == from_csv.num_train and from_parquet.num_outputs == 3
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match="is not a readable Parquet file"):
        splits_for(f"dataset.path={tmp_path / 'bad.parquet'}", "dataset.label=y")


def test_ragged_rows_can_be_skipped_and_are_counted(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,x\n2,y,9\n3,x\n4,y\n5\n6,x\n")
    splits = splits_for(f"dataset.path={path}", "dataset.label=b", "dataset.on_bad_record=skip",
                        "dataset.val_fraction=0", "dataset.test_fraction=0")
    assert splits.spec.skipped == 2 and splits.spec.num_train == 4
    a = np.array(sorted(float(x[0]) for x, _ in splits.train.as_numpy_iterator()))
    # the rows with a = 1, 3, 4, 6 are kept (standardized: compare the spacing)
    np.testing.assert_allclose((a - a[0]) / (a[1] - a[0]), [0, 1, 1.5, 2.5], rtol=1e-5)
