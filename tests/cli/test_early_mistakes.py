"""Issue #18, mistakes caught early with nothing left behind: a required key named with what it
is for; data mistakes found before TensorFlow loads (fit and validate), leaving no run dir; a
comma list explained as a sweep; BIGTRAIN_DEBUG=1 keeps exit status 2; Ctrl-C in plain words."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import read_json, run_cli, start_cli

#: runs `bigtrain ARGS` in this process and fails if TensorFlow was imported on the way
NO_TF = """
import sys
from bigtrain.cli.main import app
try:
    app(sys.argv[1:])
except SystemExit as e:
    code = e.code
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
print("EXIT", code)
"""


def run_without_tf(args: list[str], cwd, env: dict | None = None):
    import os

    full = {k: v for k, v in os.environ.items() if k not in ("BIGTRAIN_DEBUG",
                                                               "HYDRA_FULL_ERROR")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-c", NO_TF, *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120)


def our_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def test_a_missing_required_key_says_what_it_is(cli, tmp_path):
    proc = cli("fit", "dataset=csv", "dataset.label=label")
    assert proc.returncode == 2, proc.stderr
    assert our_lines(proc.stderr) == [
        "bigtrain: error: dataset.path: required; the CSV or Parquet file to train on"]
    assert "Error executing job" not in proc.stdout + proc.stderr
    assert not (tmp_path / "outputs").exists()
    both = cli("validate", "dataset=tfrecord", "dataset.path=x.tfrecord")
    assert both.returncode == 2
    assert our_lines(both.stderr) == [
        "bigtrain: error: dataset.input: required; the input's feature name in the records "
        "(also required: dataset.label)"]


def test_every_missing_key_of_every_schema_is_reported_the_same_way():
    from omegaconf import MISSING, OmegaConf

    from bigtrain.config.checks import check_required, field_help
    from bigtrain.config.schema import REGISTRIES
    from bigtrain.core.errors import ConfigError

    seen = 0
    for group, registry in REGISTRIES.items():
        for sub, options in registry.all_schemas().items():
            for option, schema in options.items():
                for f in dataclasses.fields(schema):
                    if f.default is not MISSING:
                        continue
                    if group == "dataset":  # what a user types: each one says what it is
                        assert field_help(schema, f.name), (schema.__name__, f.name)
                    node = OmegaConf.structured(schema)
                    node[f.name] = MISSING
                    path = sub.split(".")
                    cfg = OmegaConf.create({})
                    OmegaConf.update(cfg, ".".join(path), node, force_add=True)
                    with pytest.raises(ConfigError) as err:
                        check_required(cfg)
                    assert str(err.value).startswith(f"{sub}.") and ": required; " in \
                        str(err.value), (option, str(err.value))
                    seen += 1
    assert seen >= 9  # every `???` of the shipped schemas


@pytest.fixture
def data(tmp_path):
    """A CSV with columns x,y; an empty folder; a folder of loose images; a text folder."""
    (tmp_path / "t.csv").write_text("x,y\n1,a\n2,b\n3,a\n4,b\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"\x89PNG")
    (tmp_path / "one" / "cat").mkdir(parents=True)
    (tmp_path / "one" / "dog").mkdir(parents=True)
    (tmp_path / "one" / "cat" / "c.png").write_bytes(b"\x89PNG")
    (tmp_path / "texts" / "pos").mkdir(parents=True)
    (tmp_path / "texts" / "neg").mkdir(parents=True)
    (tmp_path / "texts" / "pos" / "p.txt").write_text("good")
    return tmp_path


DATA_MISTAKES = [
    (["dataset=csv", "dataset.path=nope.csv", "dataset.label=y"],
     "dataset.path: nope.csv does not exist"),
    (["dataset=csv", "dataset.path=t.csv", "dataset.label=label"],
     "dataset.label: t.csv has no column 'label'. Columns: x, y"),
    (["dataset=csv", "dataset.path=t.csv", "dataset.label=y", "dataset.categorical=[z]"],
     "dataset.categorical: t.csv has no column 'z'"),
    (["dataset=image_folder", "dataset.path=/nope/"], "dataset.path: /nope does not exist"),
    (["dataset=image_folder", "dataset.path=empty"],
     "dataset.path: empty needs one sub-directory per class (at least 2); found 0"),
    (["dataset=image_folder", "dataset.path=flat"], "move each class's files into a folder"),
    (["dataset=image_folder", "dataset.path=one"], "class directory one/dog has no images"),
    (["dataset=text", "dataset.path=texts/*.md"],
     "dataset.path: no files found in the glob 'texts/*.md'"),
    (["dataset=text", "dataset.path=empty"], "dataset.path: no files found in empty"),
    (["dataset=text_classification", "dataset.path=texts"],
     "dataset.path: class directory texts/neg has no files"),
    (["dataset=text_classification", "dataset.path=t.csv"],
     "dataset.text_column: t.csv has no column 'text'. Columns: x, y"),
    (["dataset=tfrecord", "dataset.path=none/*.tfrecord", "dataset.input=x", "dataset.label=y"],
     "dataset.path: no files found in the glob 'none/*.tfrecord'"),
]


@pytest.mark.parametrize("command", ["fit", "validate"])
@pytest.mark.parametrize("args,words", DATA_MISTAKES, ids=[" ".join(a[:2])
                                                           for a, _ in DATA_MISTAKES])
def test_data_mistakes_are_found_before_tensorflow_and_leave_nothing(data, command, args,
                                                                     words):
    proc = run_without_tf([command, *args], cwd=data)
    assert "EXIT 2" in proc.stdout, (proc.stdout, proc.stderr)
    lines = our_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("bigtrain: error: dataset."), proc.stderr
    assert words.format(tmp=data) in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert not (data / "outputs").exists()  # no run dir with a failed summary left behind


def test_valid_data_passes_validate(data):
    proc = run_without_tf(["validate", "dataset=csv", "dataset.path=t.csv", "dataset.label=y"],
                          cwd=data)
    assert "EXIT None" in proc.stdout or "EXIT 0" in proc.stdout, proc.stderr
    assert "config is valid" in proc.stdout


def test_a_sweep_without_m_says_what_a_comma_list_is(cli):
    proc = cli("fit", "optim.lr=1e-3,1e-2")
    assert proc.returncode == 2
    (line,) = our_lines(proc.stderr)
    assert "Ambiguous" not in line
    assert "optim.lr=1e-3,1e-2: a comma list is a sweep; add -m" in line
    assert "optim.lr=[1e-3,1e-2]" in line  # a list value
    ranged = cli("validate", "trainer.seed=range(3)")
    assert ranged.returncode == 2
    assert "trainer.seed=range(3): a sweep runs one job per value; add -m" in ranged.stderr


def test_debug_shows_the_traceback_and_keeps_the_exit_status(cli, tmp_path):
    for args in (["validate", "optim.lr=-1"], ["fit", "dataset=csv", "dataset.label=y"]):
        proc = cli(*args, env={"BIGTRAIN_DEBUG": "1"})
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr
        assert proc.stderr.rstrip().splitlines()[-1].startswith("bigtrain: error: ")
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_ctrl_c_is_the_users_choice_in_plain_words(tmp_path):
    args = ["debug=smoke", "trainer.max_steps=100000", "trainer.epochs=1000",
            "trainer.log_every=1", "trainer.checkpoint_every=100000", "trainer.eval_every=100000",
            "trainer.progress=none"]
    proc = start_cli("fit", *args, cwd=tmp_path)
    try:
        deadline = time.time() + 120
        metrics = []
        while time.time() < deadline and proc.poll() is None:
            metrics = [p for p in (tmp_path / "outputs").glob("*/*/metrics.jsonl")
                       if p.stat().st_size > 0]
            if metrics:
                break
            time.sleep(0.2)
        assert proc.poll() is None and metrics, proc.communicate(timeout=5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 75, err  # still the status a scheduler requeues on
    run = metrics[0].parent
    step = read_json(run / "summary.json")["steps"]
    rel = run.relative_to(tmp_path)
    assert f"bigtrain: stopped at step {step}, checkpoint written; continue with: " \
           f"bigtrain resume {rel}" in err, err
    assert "error" not in err.lower() and "SIGINT" not in err and "requeue" not in err, err
    assert (run / "checkpoints" / f"ckpt-{step}.index").exists()
    # the command it names, as printed (a little longer: the run's own length is 100000)
    again = run_cli("resume", str(rel), f"trainer.max_steps={step + 2}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"at step {step}" in again.stderr and f"done: {step + 2} steps" in again.stderr


@pytest.mark.slow
def test_ctrl_c_while_tensorflow_starts_leaves_only_bigtrains_line(tmp_path):
    """Ctrl-C while TensorFlow loads in a fresh process, once it has written native lines
    (bigtrain points fd 2 at a buffer while it loads: sent when that buffer has text): no
    native TensorFlow line reaches the terminal, only bigtrain's own; they go to fit.log."""
    from helpers import TF_NOISE

    proc = start_cli("fit", "debug=smoke", "hydra.run.dir=run", cwd=tmp_path, fresh=True)
    fd2 = Path(f"/proc/{proc.pid}/fd/2")
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                if "pipe:" not in os.readlink(fd2) and fd2.stat().st_size > 0:
                    break  # fd 2 is the buffer, and TensorFlow has written to it
            except OSError:  # the buffer was closed while we looked
                pass
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert not TF_NOISE.search(err), err
    assert "tensorflow start-up (interrupted)" in (tmp_path / "run" / "fit.log").read_text()
    ours = [ln for ln in err.splitlines() if ln.strip() and " INFO " not in ln]
    assert ours == ["bigtrain: error: interrupted"], err
