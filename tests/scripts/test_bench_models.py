"""scripts/bench_models.py's recipes compose, and its generated photo folder is a valid
image_folder dataset (two classes of 60 images); no training here."""

from __future__ import annotations

import importlib.util

import pytest
from helpers import ROOT

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed

SCRIPT = ROOT / "scripts" / "bench_models.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_recipes_compose_and_photo_folder_is_a_dataset(tmp_path):
    bench = _bench()
    photos = bench.make_photo_folder(tmp_path / "photos")
    assert sorted(p.name for p in photos.iterdir()) == ["china", "flower"]
    for d in photos.iterdir():
        files = list(d.iterdir())
        assert len(files) == 60 and {f.suffix for f in files} == {".jpg", ".png"}
    for name in bench.RECIPES:
        config = to_typed(compose(bench.recipe(name, photos)))
        config.dataset.precheck()
        assert name in bench.TARGETS
    config = to_typed(compose(bench.recipe("image_folder", photos)))
    assert (config.dataset.name, config.model.name) == ("image_folder", "cnn")
    assert config.dataset.path == str(photos)
