"""`bigtrain eval RUN_DIR --watch` beside a real, concurrently training `bigtrain fit`."""

from __future__ import annotations

import time

import pytest
from helpers import read_json, read_jsonl, run_cli, start_cli

pytestmark = pytest.mark.slow


def test_watch_evaluates_each_new_checkpoint_of_a_live_run_and_ends_with_it(tmp_path):
    fit = start_cli("fit", "model=mlp", "trainer.max_steps=120", "trainer.checkpoint_every=20",
                    "trainer.eval_every=40", "trainer.keep_checkpoints=10",
                    "trainer.progress=none", "hydra.run.dir=run", cwd=tmp_path)
    deadline = time.time() + 120
    while not (tmp_path / "run" / "config.yaml").exists() and time.time() < deadline:
        time.sleep(0.1)
    watcher = start_cli("eval", "run", "--watch", "--interval", "0.2", cwd=tmp_path)
    try:
        fit_out, fit_err = fit.communicate(timeout=300)
        assert fit.returncode == 0, fit_err[-2000:]
        # the watcher ends by itself once the run has ended and its last checkpoint is read
        w_out, w_err = watcher.communicate(timeout=240)
    finally:
        for p in (fit, watcher):
            if p.poll() is None:
                p.kill()
    assert watcher.returncode == 0, w_err[-2000:]
    records = read_jsonl(tmp_path / "run" / "eval_watch_val.jsonl")
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)) and steps[-1] == 120
    assert set(steps) <= {20, 40, 60, 80, 100, 120} and len(steps) >= 3
    # the watcher's value at the final step is the run's own final validation
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "completed"
    assert records[-1]["val_accuracy"] == pytest.approx(summary["final"]["val_accuracy"],
                                                        abs=1e-6)
    assert list((tmp_path / "run" / "tb" / "eval_val").glob("events.out.tfevents.*"))
    # run again on the finished run: nothing left to do, ends at once, nothing re-evaluated
    again = run_cli("eval", "run", "--watch", "--interval", "0.2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert read_jsonl(tmp_path / "run" / "eval_watch_val.jsonl") == records
