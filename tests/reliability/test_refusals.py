"""A refused command leaves an existing run dir byte for byte as it was (every path and its
bytes hashed before and after): nothing is written before the run dir accepts the run, not
Hydra's record (.hydra/), not a line of fit.log, not summary.json. A run dir made for a
refused single run is removed again; a new sweep job's keeps its failure for the table."""

from __future__ import annotations

import os
import socket

import pytest
from helpers import read_json, run_cli, tree_digest

pytestmark = pytest.mark.slow

BASE = ["debug=smoke", "model=mlp", "trainer.progress=none"]
#: a sweep whose one job's dir is ./run (the sweep dir is the test's own dir)
AS_SWEEP_JOB = ["-m", "hydra.sweep.dir=.", "hydra.sweep.subdir=run"]


def refused(tmp_path, args, status, words):
    """Run `bigtrain ARGS`; it ends with `status`, says `words`, and leaves ./run as it was."""
    before = tree_digest(tmp_path / "run")
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == status, (args, proc.stderr[-2000:])
    assert words in proc.stderr, (args, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    after = tree_digest(tmp_path / "run")
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, (args, changed)


def test_refused_commands_leave_a_finished_run_dir_as_it_was(cli, tmp_path):
    assert cli("fit", *BASE, "hydra.run.dir=run").returncode == 0
    for args, status, words in [
        # the dir holds a run of another config
        (["fit", *BASE, "optim.lr=0.1", "hydra.run.dir=run"], 2,
         "holds a run with another config (optim.lr: 0.002 -> 0.1)"),
        (["fit", *BASE, "optim.lr=0.1", *AS_SWEEP_JOB], 2, "holds a run with another config"),
        # a bad value, an unknown key, a failing check of the data it names
        (["fit", *BASE, "optim.lr=-1", "hydra.run.dir=run"], 2, "optim.lr: -1.0 is not valid"),
        (["fit", *BASE, "optim.lr=-1", *AS_SWEEP_JOB], 2, "optim.lr: -1.0 is not valid"),
        (["fit", *BASE, "+trainer.foo=1", "hydra.run.dir=run"], 2, "trainer.foo"),
        (["fit", *BASE, "dataset=csv", "dataset.label=y", "dataset.path=none.csv",
          "hydra.run.dir=run"], 2, "none.csv does not exist"),
        # checkpoints there, and trainer.resume=never
        (["fit", *BASE, "trainer.max_steps=8", "trainer.resume=never", "hydra.run.dir=run"], 2,
         "is 'never' but"),
        # the same config, finished: skipped, nothing written (a run and a sweep job)
        (["fit", *BASE, "hydra.run.dir=run"], 0, "skipping it"),
        (["fit", *BASE, *AS_SWEEP_JOB], 0, "skipping it"),
        # bigtrain resume: an override that changes the run; a finished run not extended
        (["resume", "run", "model=cnn", "optim.lr=0.1"], 2,
         "model=cnn, optim.lr=0.1: would change the run"),
        (["resume", "run"], 0, "holds a completed run (6 steps); nothing to resume"),
    ]:
        refused(tmp_path, args, status, words)


def test_refused_commands_leave_an_interrupted_run_dir_as_it_was(cli, tmp_path):
    """Killed after its checkpoint of step 3 (no summary, its dead lock left behind); then
    refused for another config, and while a live process holds the dir."""
    from bigtrain.run.lock import RunLock

    killed = cli("fit", *BASE, "hydra.run.dir=run", env={"BIGTRAIN_FAULTS": "sigkill@step=4"})
    run = tmp_path / "run"
    assert killed.returncode != 0 and (run / "checkpoints" / "ckpt-3.index").exists()
    assert (run / ".lock").exists() and not (run / "summary.json").exists()
    for args in (["fit", *BASE, "optim.lr=0.1", "hydra.run.dir=run"],
                 ["fit", *BASE, "optim.lr=0.1", *AS_SWEEP_JOB]):
        refused(tmp_path, args, 2, "holds a run with another config (optim.lr: 0.002 -> 0.1)")
    refused(tmp_path, ["resume", "run", "trainer.seed=3"], 2, "trainer.seed=3: would change")
    with RunLock(run):  # a live run (this process) holds it
        live = f"in use by a running bigtrain (pid {os.getpid()} on {socket.gethostname()}"
        for args in (["fit", *BASE, "hydra.run.dir=run"], ["fit", *BASE, *AS_SWEEP_JOB],
                     ["resume", "run"]):
            refused(tmp_path, args, 2, live)


def test_a_refused_run_leaves_no_new_dir_and_a_refused_sweep_job_its_failure(cli, tmp_path):
    # a mistake only the job can see (its run dir is in the value): the dir Hydra made goes
    proc = cli("fit", *BASE, "dataset=csv", "dataset.label=y",
               "dataset.path=${hydra:runtime.output_dir}/none.csv", "hydra.run.dir=new")
    assert proc.returncode == 2 and "none.csv does not exist" in proc.stderr, proc.stderr
    assert not (tmp_path / "new").exists()
    # a new sweep job's dir keeps its failure, and its overrides for the sweep table
    sweep = cli("fit", "-m", *BASE, "optim.lr=-1", "hydra.sweep.dir=sweep")
    assert sweep.returncode == 2
    job = tmp_path / "sweep" / "0"
    failed = read_json(job / "summary.json")
    assert failed["status"] == "failed" and "optim.lr: -1.0 is not valid" in failed["error"]
    assert "optim.lr=-1" in (job / ".hydra" / "overrides.yaml").read_text()
    assert "run dir: sweep/0" in (job / "fit.log").read_text()


def test_a_data_file_changed_since_the_run_is_refused_and_the_run_dir_left_as_it_was(
        cli, tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris()
    rows = [",".join([*(f"{v:g}" for v in x), str(t)]) for x, t in zip(iris.data, iris.target,
                                                                       strict=True)]
    table = tmp_path / "t.csv"
    table.write_text("a,b,c,d,y\n" + "\n".join(rows) + "\n")
    args = [*BASE, "dataset=csv", "dataset.path=t.csv", "dataset.label=y", "trainer.batch_size=8"]
    assert cli("fit", *args, "hydra.run.dir=run").returncode == 0
    table.write_text("a,b,c,d,y\n" + "\n".join(rows[:120]) + "\n")
    # the same command: not skipped as if nothing changed, and nothing written
    refused(tmp_path, ["fit", *args, "hydra.run.dir=run"], 2, "t.csv changed since")
    # an extension that only the data refuses (after the run was accepted): put back as it was
    refused(tmp_path, ["resume", "run", "trainer.max_steps=12"], 2,
            "the data now gives another preprocessing")
