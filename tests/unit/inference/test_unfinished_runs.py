"""A run that stopped before its first checkpoint is refused with what its summary.json says
(bigtrain.inference.restore.refuse_unfinished), without TensorFlow."""

from __future__ import annotations

import json

import pytest

from bigtrain.core.errors import ConfigError
from bigtrain.inference.restore import refuse_unfinished


def run_dir(tmp_path, status: str, error: str = "", checkpoint: bool = False):
    run = tmp_path / f"run-{status}"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"status": status, "error": error}))
    if checkpoint:
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "ckpt-3.index").write_bytes(b"")
    return run


def test_a_run_that_failed_before_a_checkpoint_is_refused_with_its_error(tmp_path):
    run = run_dir(tmp_path, "failed", "ValueError: no rows\n  more detail")
    with pytest.raises(ConfigError, match=r"^RUN_DIR: .*run-failed failed \(ValueError: no rows\), "
                                          r"as its summary.json records, before its first "
                                          r"checkpoint: it has no checkpoint to evaluate"):
        refuse_unfinished(run)
    with pytest.raises(ConfigError, match=r"ended interrupted, as its summary.json records"):
        refuse_unfinished(run_dir(tmp_path, "interrupted"), "latest")


def test_runs_with_a_checkpoint_or_that_finished_are_left_to_load(tmp_path):
    refuse_unfinished(run_dir(tmp_path, "failed", "ValueError: NaN", checkpoint=True))
    refuse_unfinished(run_dir(tmp_path, "completed"))
    refuse_unfinished(tmp_path / "no-summary")


def test_relative_base_and_task_paths_are_found_where_the_run_was_launched(tmp_path,
                                                                          monkeypatch):
    """A run dir works from any directory: model.preset and trainer.eval_tasks given
    relative to where `bigtrain fit` ran are looked up there (Hydra records it)."""
    import yaml

    from bigtrain.inference.restore import _from_launch_dir

    launch, run, elsewhere = tmp_path / "work", tmp_path / "work" / "run", tmp_path / "other"
    for d in (run / ".hydra", launch / "ckpt", elsewhere):
        d.mkdir(parents=True)
    (launch / "tasks.jsonl").write_text("{}\n")
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
        {"hydra": {"runtime": {"cwd": str(launch)}}}))
    monkeypatch.chdir(elsewhere)
    resolved = {"model": {"preset": "ckpt"}, "trainer": {"eval_tasks": ["tasks.jsonl"]}}
    got = _from_launch_dir(resolved, run)
    assert got["model"]["preset"] == str(launch / "ckpt")
    assert got["trainer"]["eval_tasks"] == [str(launch / "tasks.jsonl")]
    builtin = {"model": {"preset": "gpt2_base_en"}, "trainer": {}}
    assert _from_launch_dir(builtin, run)["model"]["preset"] == "gpt2_base_en"
