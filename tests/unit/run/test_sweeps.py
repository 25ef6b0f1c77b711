"""Sweep tables and re-running a sweep: completed jobs are skipped unless told otherwise."""

from __future__ import annotations

import csv
import json
import os

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


def test_rerun_trains_a_finished_sweep_job_again_and_keeps_the_old_files(cli, tmp_path):
    args = ["fit", "-m", "optim=sgd", "debug=smoke", "trainer.rerun=true",
            "hydra.sweep.dir=forced"]
    forced = cli(*args)
    assert forced.returncode == 0, forced.stderr
    again = cli(*args)
    assert again.returncode == 0 and "skipping it" not in again.stderr
    assert list((tmp_path / "forced" / "0").glob("checkpoints.before-rerun-*"))


def test_joblib_launcher_runs_jobs_in_parallel_with_a_thread_budget(cli, tmp_path):
    r = cli("fit", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optim=adam,sgd",
            "model=mlp", "debug=smoke", "hydra.sweep.dir=sweep",
            fresh=True)  # joblib's workers, forked from a fork of the test server, hung once
    assert r.returncode == 0, r.stderr[-2000:]
    sweep = tmp_path / "sweep"
    rows = list(csv.DictReader((sweep / "sweep_summary.csv").open()))
    assert sorted(r["optim"] for r in rows) == ["adam", "sgd"]
    assert all(r["status"] == "completed" for r in rows)
    per_job = max(1, (os.cpu_count() or 1) // 2)
    for job in ("0", "1"):
        log = (sweep / job / "fit.log").read_text()
        assert f"{per_job} thread(s) per job" in log and f"threads: {per_job} intra-op" in log
    # every job wrote only inside its own dir
    assert sorted(p.name for p in sweep.iterdir()) == [
        "0", "1", "multirun.yaml", "sweep_summary.csv", "sweep_summary.json"]


def test_submitit_local_launcher_runs_the_same_job_path(cli, tmp_path):
    r = cli("fit", "-m", "hydra/launcher=submitit_local", "optim=adam,sgd", "model=mlp",
            "debug=smoke", "hydra.sweep.dir=sweep")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "sweep" / "sweep_summary.csv").open()))
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows)
    assert (tmp_path / "sweep" / ".submitit").is_dir()


def test_slurm_preset_requeues_on_time_limits(cli):
    r = cli("fit", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra")
    assert r.returncode == 0, r.stderr
    assert "SlurmLauncher" in r.stdout and "max_num_timeout: 3" in r.stdout
    assert "requeue: true" in r.stdout and "partition: gpu" in r.stdout
