"""Issue #18, class names where people look: `bigtrain data`'s image grid titles each tile with
its class and its table names the classes; the text-classification log names its classes."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _png_text(path) -> dict:
    from PIL import Image

    with Image.open(path) as im:
        return json.loads(im.text["bigtrain"])


@pytest.fixture
def pets(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, level in (("cat", 40), ("dog", 200)):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(6):
            pixels = (rng.random((10, 10, 3)) * 40 + level).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pets" / name / f"{i}.png")
    return tmp_path / "pets"


@pytest.mark.slow
def test_data_titles_each_image_with_its_class_and_names_classes(cli, tmp_path, pets):
    proc = cli("data", "dataset=image_folder", f"dataset.path={pets}", "dataset.image_size=[10,10]",
               "dataset.val_fraction=0.1", "dataset.test_fraction=0.1", "--examples", "4",
               "--batches", "2", "--out", "grid.png")
    assert proc.returncode == 0, proc.stderr
    assert "2 classes: cat, dog" in proc.stdout
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("│")]
    assert len(rows) == 4 and all(("cat (0)" in r) != ("dog (1)" in r) for r in rows), rows
    titles = _png_text(tmp_path / "grid.png")["titles"]
    assert len(titles) == 10 and set(titles) == {"cat", "dog"}  # every tile, by its class
    # the tiles are in the table's order: the first four titles are the table's classes
    assert titles[:4] == ["cat" if "cat (0)" in r else "dog" for r in rows]
    # and the titles are drawn: dark text above the first tile on the white background
    from matplotlib.image import imread

    img = imread(tmp_path / "grid.png")[..., :3]
    assert img.shape[0] > 100 and (img[:12].min(axis=-1) < 0.5).any()


def test_image_grid_writes_what_it_was_given(tmp_path):
    from bigtrain.data.inspect import image_grid

    image_grid(np.zeros((3, 4, 4)), tmp_path / "g.png", ["a", "b", "c"])
    assert _png_text(tmp_path / "g.png") == {"titles": ["a", "b", "c"]}
    image_grid(np.zeros((2, 4, 4, 3)), tmp_path / "n.png")
    assert _png_text(tmp_path / "n.png") == {"titles": []}


@pytest.mark.slow
def test_text_classification_log_names_its_classes(cli, tmp_path):
    for label, words in (("neg", "bad awful"), ("pos", "good great")):
        (tmp_path / "reviews" / label).mkdir(parents=True)
        for i in range(5):
            (tmp_path / "reviews" / label / f"{i}.txt").write_text(f"{words} {i}")
    proc = cli("data", "dataset=text_classification", "dataset.path=reviews",
               "dataset.max_len=16", "--examples", "2", "--batches", "2")
    assert proc.returncode == 0, proc.stderr
    assert "text_classification: 10 texts in 2 classes (neg, pos)" in proc.stderr
    assert "2 classes: neg, pos" in proc.stdout
