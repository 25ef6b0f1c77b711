"""A job's log records wait in memory until its run is accepted: a refused job leaves an
existing run dir byte for byte as it was, and removes a run dir made for it."""

from __future__ import annotations

import logging

import pytest
from helpers import tree_digest

from bigtrain.run.admission import Admission

log = logging.getLogger("bigtrain.test")


@pytest.fixture
def log_file():
    """A delayed file handler on the root logger, as the job's logging has it."""
    handlers = []

    def add(path):
        h = logging.FileHandler(path, delay=True)
        logging.getLogger().addHandler(h)
        handlers.append(h)
        return h

    yield add
    for h in handlers:
        logging.getLogger().removeHandler(h)
        h.close()


def test_a_refused_job_writes_nothing_into_an_existing_run_dir(tmp_path, log_file):
    run = tmp_path / "run"
    run.mkdir()
    (run / "fit.log").write_text("the finished run's log\n")
    log_file(run / "fit.log")
    before = tree_digest(run)
    with pytest.raises(ValueError), Admission(run, record=False):
        log.warning("run dir: run")
        raise ValueError("refused")
    assert tree_digest(run) == before
    log.warning("after the job")  # the job's log file is no longer the root's
    assert tree_digest(run) == before


def test_an_accepted_job_logs_what_was_held_then_the_rest(tmp_path, log_file):
    run = tmp_path / "run"
    run.mkdir()
    (run / "fit.log").write_text("earlier\n")
    log_file(run / "fit.log")
    with Admission(run, record=False) as admission:
        log.warning("held")
        assert (run / "fit.log").read_text() == "earlier\n"
        admission.accept()
        log.warning("through")
    assert (run / "fit.log").read_text() == "earlier\nheld\nthrough\n"


def test_a_run_dir_made_for_a_refused_job_is_removed_unless_it_records_the_failure(
        tmp_path, log_file):
    single = tmp_path / "single"
    single.mkdir()  # as Hydra makes it, just before the task
    log_file(single / "fit.log")
    with Admission(single) as admission:
        log.warning("run dir: single")
        assert admission.fresh and not admission.records_refusal
    assert not single.exists()
    other = tmp_path / "other"  # a worker that is not the chief leaves the dir to the chief
    other.mkdir()
    with Admission(other, record=False):
        pass
    assert other.is_dir()

    job = tmp_path / "sweep" / "0"
    job.mkdir(parents=True)
    log_file(job / "fit.log")
    with Admission(job, keep_refused=True) as admission:
        log.warning("run dir: sweep/0")
        assert admission.records_refusal
        admission.accept()  # the task then writes summary.json with the failure
    assert (job / "fit.log").read_text() == "run dir: sweep/0\n"


def test_a_dir_with_files_is_not_made_for_the_job(tmp_path, log_file):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    log_file(run / "fit.log")
    with Admission(run, keep_refused=True) as admission:
        assert not admission.fresh and not admission.records_refusal
    assert tree_digest(run) == {"notes.txt": tree_digest(run)["notes.txt"]}
