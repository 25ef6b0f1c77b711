"""files.replace_dir: how exports and tokenizers are put in place."""

import os

import pytest

from bigtrain.core.files import replace_dir


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_new_directory_gets_the_mode_of_a_plain_mkdir(tmp_path):
    def write(d):
        (d / "a.txt").write_text("new")

    out = replace_dir(tmp_path / "out", write)
    assert (out / "a.txt").read_text() == "new"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "plain"]  # nothing left over


def test_a_failed_write_leaves_the_old_directory_as_it_was(tmp_path):
    out = tmp_path / "out"
    replace_dir(out, lambda d: (d / "a.txt").write_text("old"))

    def fails(d):
        (d / "a.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        replace_dir(out, fails)
    assert (out / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    replace_dir(out, lambda d: (d / "b.txt").write_text("new"))
    assert [p.name for p in out.iterdir()] == ["b.txt"]  # replaced as a whole


def test_a_file_in_the_way_is_replaced(tmp_path):
    out = tmp_path / "model"
    out.write_text("an older export in another format")
    replace_dir(out, lambda d: (d / "saved_model.pb").write_bytes(b"x"))
    assert out.is_dir() and [p.name for p in tmp_path.iterdir()] == ["model"]
