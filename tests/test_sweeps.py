"""Sweep tables and re-running a sweep: completed jobs are skipped unless told otherwise."""

from __future__ import annotations

import csv
import json

import pytest

pytestmark = pytest.mark.slow


def test_sweep_table_marks_the_best_and_records_failures(cli, tmp_path):
    args = ["fit", "-m", "optim=sgd,adam", "trainer.batch_size=5000,32", "debug=smoke",
            "hydra.sweep.dir=sweep"]
    proc = cli(*args)
    assert proc.returncode == 2  # the failed jobs are reported at the end
    sweep = tmp_path / "sweep"
    rows = list(csv.DictReader((sweep / "sweep_summary.csv").open()))
    assert len(rows) == 4
    assert {r["optim"] for r in rows} == {"sgd", "adam"}  # columns: the overrides that vary
    assert {r["trainer.batch_size"] for r in rows} == {"5000", "32"}
    statuses = {(r["optim"], r["trainer.batch_size"]): r["status"] for r in rows}
    assert statuses[("sgd", "5000")] == "failed" and statuses[("adam", "32")] == "completed"
    best = [r for r in rows if r["is_best"] == "True"]
    assert len(best) == 1 and best[0]["status"] == "completed"
    completed = [r for r in rows if r["status"] == "completed"]
    assert float(best[0]["best"]) == min(float(r["best"]) for r in completed)
    data = json.loads((sweep / "sweep_summary.json").read_text())
    assert len(data) == 4 and "failed" in proc.stderr + json.dumps(data)
    assert "sweep: 4 jobs" in proc.stderr  # the rich table at the end

    # the same command again: completed jobs are skipped, failed ones run again
    done = {r["job"]: (sweep / r["job"] / "summary.json").stat().st_mtime_ns
            for r in completed}
    again = cli(*args)
    assert again.returncode == 2
    assert again.stderr.count("skipping it") == 2
    for job, mtime in done.items():
        assert (sweep / job / "summary.json").stat().st_mtime_ns == mtime

    # trainer.rerun=true trains every job again, keeping the old files renamed
    forced = cli("fit", "-m", "optim=sgd,adam", "trainer.batch_size=32", "debug=smoke",
                 "trainer.rerun=true", "hydra.sweep.dir=forced")
    assert forced.returncode == 0, forced.stderr
    first = cli("fit", "-m", "optim=sgd,adam", "trainer.batch_size=32", "debug=smoke",
                "trainer.rerun=true", "hydra.sweep.dir=forced")
    assert first.returncode == 0 and "skipping it" not in first.stderr
    assert list((tmp_path / "forced" / "0").glob("checkpoints.before-rerun-*"))
