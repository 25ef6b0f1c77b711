"""Every user mistake: exit status 2, a short message naming the key, no traceback."""

from __future__ import annotations

import re

import pytest

CASES = [
    # (args, words the message must contain)
    (["model=nosuch"], ["model=nosuch", "Available: cnn, hub, keras_app, mlp"]),
    (["optim.lrr=1"], ["optim.lrr", "lr"]),
    (["trainer.epochs=abc"], ["trainer.epochs", "abc"]),
    (["optim.lr=-1"], ["optim.lr", "must be > 0"]),
    (["trainer.batch_size=0"], ["trainer.batch_size", "must be > 0"]),
    (["model.dropout=1.5"], ["model.dropout", "[0, 1)"]),
    (["trainer.progress=fancy"], ["trainer.progress", "rich, plain"]),
    (["dataset.val_fraction=0.6", "dataset.test_fraction=0.5"], ["dataset.val_fraction"]),
    (["trainer.epochs=[1"], ["trainer.epochs=[1"]),
    (["-cd", "/nonexistent/conf"], ["/nonexistent/conf"]),
    # a list entry Hydra cannot load: the options listed as for `group=x`
    (["logger=[csvv]"], ["logger=csvv: no such option", "Available: csv, mlflow, tensorboard"]),
    # a logger's own name cannot be set; the keys it has are listed
    (["logger=[wandb]", "logger.wandb.name=foo"], ["logger.wandb.name", "names the logger",
                                                   "run_name"]),
    # a config group set as a key: the `/` spelling that chooses an option, and the options
    (["optim.schedule=cosine"], ["write optim/schedule=cosine", "constant, cosine"]),
    (["model=transformer", "model.size=base"], ["write model/size=base", "gpt2_small"]),
    # a list given as a scalar: the list spelling
    (["model=mlp", "model.hidden=64"], ["model.hidden", "write model.hidden=[64]"]),
    # a new entry of a map that starts empty: Hydra's `+` spelling
    (["dataset=csv", "dataset.path=t.csv", "dataset.label=y", "dataset.types.sex=categorical"],
     ["dataset.types.sex", "write +dataset.types.sex=categorical"]),
]


def _assert_clean_usage_error(proc, words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)
    ours = [ln for ln in proc.stderr.splitlines() if ln.strip() and not NOISE.match(ln)]
    assert len(ours) == 1, proc.stderr  # one line, with the fix


# TensorFlow's native start-up lines and bigtrain's own INFO log lines are not the message
NOISE = re.compile(r"^([IWE]\d{4} |WARNING: All log messages|\d\d:\d\d:\d\d INFO )")


@pytest.mark.parametrize("args,words", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_validate_rejects(cli, args, words):
    _assert_clean_usage_error(cli("validate", *args), words)


@pytest.mark.parametrize("args,words", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_fit_rejects_before_training(cli, tmp_path, args, words):
    proc = cli("fit", *args, "hydra.run.dir=run")
    _assert_clean_usage_error(proc, words)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_debug_env_shows_the_traceback(cli):
    proc = cli("validate", "optim.lr=-1", env={"BIGTRAIN_DEBUG": "1"})
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_batch_larger_than_data_is_a_config_error(cli, tmp_path):
    proc = cli("fit", "debug=smoke", "trainer.batch_size=5000", "hydra.run.dir=run")
    _assert_clean_usage_error(proc, ["trainer.batch_size", "larger than the training split"])
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert '"failed"' in summary


def test_eval_and_predict_of_a_run_that_failed_while_building_name_its_failure(cli, tmp_path):
    """No preprocessing.json and no checkpoint: refused at once with the error summary.json
    recorded, not rebuilt from the data nor called a damaged run dir."""
    assert cli("fit", "debug=smoke", "trainer.batch_size=5000",
               "hydra.run.dir=run").returncode == 2
    assert not (tmp_path / "run" / "preprocessing.json").exists()
    (tmp_path / "rows.csv").write_text("1,2\n")
    for args in (["eval", "run"], ["predict", "run", "rows.csv"], ["export", "run"]):
        proc = cli(*args)
        _assert_clean_usage_error(proc, ["run failed (ConfigError: trainer.batch_size: 5000 "
                                         "is larger than the training split",
                                         "no checkpoint to evaluate"])
        assert "preprocessing.json" not in proc.stderr, proc.stderr
