"""Labelled texts from class directories or a CSV, as bytes for token models."""

from __future__ import annotations

import csv

import pytest

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.data import build_dataset  # noqa: E402
from bigtrain.run.job import train  # noqa: E402

POS = ["what a great film", "loved it, great acting", "great fun and great music"]
NEG = ["awful, boring film", "boring and too long", "awful acting, awful plot"]


def make_dirs(root, n=20):
    for name, texts in (("neg", NEG), ("pos", POS)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            (root / name / f"{i}.txt").write_text(texts[i % 3] + f" #{i}")
    return root


def config(*overrides):
    return to_typed(compose(["dataset=text_classification", *overrides]))


def test_class_directories_become_byte_sequences_and_train(tmp_path):
    root = make_dirs(tmp_path / "reviews")
    cfg = config(f"dataset.path={root}", "dataset.max_len=32", "model=transformer",
                 "model.d_model=32", "trainer.epochs=20", "trainer.batch_size=8",
                 "trainer.progress=none", "logger=[]")
    splits = build_dataset(cfg.dataset)
    spec = splits.spec
    assert spec.input_shape == (32,) and spec.input_vocab == 257 and spec.num_outputs == 2
    x, _ = next(iter(splits.train.batch(1)))
    text = bytes(int(i) - 1 for i in x.numpy()[0] if i > 0).decode()
    assert any(text.startswith(t) for t in POS + NEG)
    assert train(cfg, tmp_path / "run")["final"]["val_accuracy"] >= 0.75


def test_csv_with_text_and_label_columns(tmp_path):
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        for i in range(12):
            w.writerow([(POS + NEG)[i % 6], "pos" if i % 6 < 3 else "neg"])
    spec = build_dataset(config(f"dataset.path={path}", "dataset.text_column=review",
                                "dataset.label_column=sentiment").dataset).spec
    assert spec.num_outputs == 2 and spec.num_train + spec.num_val + spec.num_test == 12
    with pytest.raises(ConfigError, match="no column 'text'. Columns: review, sentiment"):
        build_dataset(config(f"dataset.path={path}").dataset)


def test_bad_text_directories(tmp_path, caplog):
    root = make_dirs(tmp_path / "r", n=3)
    (root / "pos" / "junk.txt").write_bytes(b"ok\n\xff\xfe")
    with pytest.raises(ConfigError, match=r"junk.txt is not UTF-8 text \(line 2, byte 3\)"):
        build_dataset(config(f"dataset.path={root}").dataset)
    spec = build_dataset(config(f"dataset.path={root}", "dataset.on_bad_record=skip").dataset).spec
    assert spec.num_train + spec.num_val + spec.num_test == 6
    assert "skipped 1 file(s)" in caplog.text
    (root / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no files"):
        build_dataset(config(f"dataset.path={root}").dataset)
