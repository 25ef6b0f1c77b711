"""The text source: files, directories, globs and the stdlib preset; bad data named clearly."""

from __future__ import annotations

import numpy as np
import pytest

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.data import build_dataset  # noqa: E402

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def text_splits(*overrides: str):
    return build_dataset(to_typed(compose(["dataset=text", *overrides])).dataset)


def test_byte_corpus_from_a_directory_packs_next_token_targets(tmp_path):
    (tmp_path / "a.txt").write_text(TEXT)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text(TEXT.upper())
    splits = text_splits(f"dataset.path={tmp_path}", "dataset.seq_len=16")
    spec = splits.spec
    assert spec.task == "lm" and spec.num_outputs == 256 and spec.input_shape == (16,)
    assert spec.num_train + spec.num_val + spec.num_test == (2 * len(TEXT) + 1) // 17
    x, y = next(iter(splits.train.batch(4)))
    np.testing.assert_array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])  # shifted by one


def test_char_vocabulary_comes_from_the_training_split(tmp_path):
    (tmp_path / "a.txt").write_text(TEXT)
    splits = text_splits(f"dataset.path={tmp_path}/*.txt", "dataset.vocab=char",
                         "dataset.seq_len=16")
    assert splits.spec.num_outputs == len(set(TEXT)) + 2  # + padding + unknown


def test_stdlib_preset_reads_this_pythons_sources():
    splits = build_dataset(to_typed(compose(["dataset=text_stdlib",
                                             "dataset.max_chars=50000"])).dataset)
    assert splits.spec.num_train > 100


@pytest.mark.parametrize("setup,path,match", [
    (None, "missing", "does not exist"),
    ("empty_dir", "empty", "no files found"),
    (None, "nothing/*.txt", "no files found in the glob"),
    ("tiny", "tiny.txt", "fewer than 3 sequences"),
])
def test_bad_paths_are_named(tmp_path, setup, path, match):
    if setup == "empty_dir":
        (tmp_path / "empty").mkdir()
    if setup == "tiny":
        (tmp_path / "tiny.txt").write_text("abc")
    with pytest.raises(ConfigError, match=match):
        text_splits(f"dataset.path={tmp_path / path}")


def test_non_utf8_text_names_file_and_line_or_is_skipped(tmp_path, caplog):
    (tmp_path / "good.txt").write_text(TEXT)
    (tmp_path / "junk.txt").write_bytes(b"fine line\nsecond line\n\xff\xfe binary junk\n")
    with pytest.raises(ConfigError, match=r"junk.txt is not UTF-8 text \(line 3"):
        text_splits(f"dataset.path={tmp_path}", "dataset.vocab=char", "dataset.seq_len=16")
    splits = text_splits(f"dataset.path={tmp_path}", "dataset.vocab=char",
                         "dataset.seq_len=16", "dataset.on_bad_record=skip")
    assert "skipped 1 file(s) that are not UTF-8" in caplog.text
    assert splits.spec.num_train > 0
    # bytes are bytes: the byte vocabulary takes the file as it is
    assert text_splits(f"dataset.path={tmp_path}", "dataset.seq_len=16").spec.num_train > 0


def test_missing_path_in_fit_is_a_usage_error(cli):
    proc = cli("fit", "dataset=text", "dataset.path=/nonexistent/corpus", "debug=smoke",
               "hydra.run.dir=run")
    assert proc.returncode == 2
    assert "dataset.path: /nonexistent/corpus does not exist" in proc.stderr
