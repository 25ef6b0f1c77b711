"""Damaged checkpoints: the newest one truncated or partly deleted falls back to the previous
one with a warning; when every one is damaged the run stops with a clear error and writes
nothing (the all-damaged and truncated-data cases are in test_engine.py)."""

from __future__ import annotations

import pytest

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.run.job import train  # noqa: E402

SMALL = ["debug=smoke", "model=mlp", "model.hidden=[32]", "trainer.progress=none", "logger=[]",
         "trainer.checkpoint_every=4", "strategy.precision=fp32"]


@pytest.mark.parametrize("damage", ["index", "data"])
def test_newest_checkpoint_partly_deleted_falls_back(tmp_path, caplog, damage):
    train(to_typed(compose([*SMALL, "trainer.max_steps=8"])), tmp_path)
    if damage == "index":
        (tmp_path / "checkpoints" / "ckpt-8.index").unlink()
    else:
        for f in (tmp_path / "checkpoints").glob("ckpt-8.data-*"):
            f.unlink()
    summary = train(to_typed(compose([*SMALL, "trainer.max_steps=10"])), tmp_path)
    assert "ckpt-4" in caplog.text and ("damaged" in caplog.text or "missing" in caplog.text)
    assert summary["steps"] == 10 and summary["status"] == "completed"
