"""Data fuzzing: corrupt images, truncated and ragged CSVs, binary junk in text files, empty
splits. Every case either builds (bad records skipped and counted when asked) or is a
ConfigError naming the file — never another exception."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.data import build_dataset  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def build(*overrides):
    return build_dataset(to_typed(compose(list(overrides))).dataset)


def outcome(fn, path_hint: str):
    try:
        splits = fn()
    except ConfigError as ex:
        assert path_hint in str(ex) or "dataset." in str(ex), str(ex)
        return "refused"
    assert splits.spec.num_train >= 1
    for _ in splits.train.take(3):  # the pipeline itself reads what it kept
        pass
    return "built"


@SETTINGS
@given(junk=st.binary(min_size=0, max_size=300), cut=st.integers(0, 200),
       skip=st.booleans())
def test_corrupt_and_truncated_images(tmp_path_factory, junk, cut, skip):
    root = tmp_path_factory.mktemp("imgs")
    for c, level in (("a", 30), ("b", 220)):
        (root / c).mkdir()
        for i in range(4):
            img = np.full((6, 6, 3), level, np.uint8)
            (root / c / f"{i}.png").write_bytes(tf.io.encode_png(img).numpy())
    good = (root / "a" / "0.png").read_bytes()
    (root / "a" / "junk.png").write_bytes(junk)
    (root / "b" / "cut.png").write_bytes(good[:cut])
    mode = "skip" if skip else "fail"
    result = outcome(lambda: build("dataset=image_folder", f"dataset.path={root}",
                                   "dataset.image_size=[6,6]", f"dataset.on_bad_record={mode}",
                                   "dataset.val_fraction=0", "dataset.test_fraction=0"),
                     str(root))
    if not skip:
        assert result == "refused"  # junk and a cut PNG never decode as the same image


@SETTINGS
@given(rows=st.lists(st.lists(st.one_of(st.integers(-5, 5).map(str), st.text(
    alphabet="abc ,\"\n", max_size=4)), min_size=0, max_size=4), min_size=0, max_size=12),
    skip=st.booleans(), truncate=st.integers(0, 400))
def test_ragged_and_truncated_csvs(tmp_path_factory, rows, skip, truncate):
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    text = "x,y,label\n" + "\n".join(",".join(r) for r in rows) + "\n"
    path.write_text(text[:max(truncate, 0)] if truncate < len(text) else text)
    mode = "skip" if skip else "fail"
    outcome(lambda: build("dataset=csv", f"dataset.path={path}", "dataset.label=label",
                          f"dataset.on_bad_record={mode}"), str(path))


@SETTINGS
@given(junk=st.binary(min_size=1, max_size=200), skip=st.booleans())
def test_binary_junk_in_text_files(tmp_path_factory, junk, skip):
    root = tmp_path_factory.mktemp("texts")
    for c in ("pos", "neg"):
        (root / c).mkdir()
        for i in range(4):
            (root / c / f"{i}.txt").write_text(f"{c} text number {i} " * 3)
    (root / "pos" / "junk.txt").write_bytes(junk)
    mode = "skip" if skip else "fail"
    outcome(lambda: build("dataset=text_classification", f"dataset.path={root}",
                          f"dataset.on_bad_record={mode}"), str(root))
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("hello world, " * 200)
    (corpus / "b.txt").write_bytes(junk)
    outcome(lambda: build("dataset=text", f"dataset.path={corpus}", "dataset.vocab=char",
                          "dataset.seq_len=16", f"dataset.on_bad_record={mode}"), str(corpus))


@pytest.mark.parametrize("overrides", [
    ["dataset.val_fraction=0.5", "dataset.test_fraction=0.5"],  # nothing left to train on
    ["dataset=synthetic", "dataset.num_examples=2"],
    ["dataset.fraction=0.0001"],
])
def test_empty_or_tiny_splits_are_refused_or_still_train(overrides):
    try:
        splits = build(*overrides)
    except ConfigError as ex:
        assert "dataset." in str(ex)
        return
    assert splits.spec.num_train >= 1
