"""Untrusted input: a config cannot make bigtrain import or call code outside bigtrain, Hydra
and its plugins unless the user allows it; job configs cannot name callables at all;
.keras files load with safe_mode; a checkpoint of another model is refused, not half-loaded."""

from __future__ import annotations

import pytest
from helpers import run_cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("args, key", [
    (["+hydra.callbacks.evil._target_=os.system", "+hydra.callbacks.evil.command=true"],
     "hydra.callbacks.evil._target_"),
    (["hydra.job_logging.handlers.file.class=subprocess.Popen"],
     "hydra.job_logging.handlers.file.class"),
    (["hydra.job_logging.handlers.file.filename=ext://os.environ"],
     "hydra.job_logging.handlers.file.filename"),
])
def test_a_config_cannot_name_code_outside_bigtrain(cli, tmp_path, args, key):
    r = cli("fit", "debug=smoke", *args, "hydra.run.dir=run")
    assert r.returncode == 2 and key in r.stderr, r.stderr[-1500:]
    assert "BIGTRAIN_ALLOW_TARGETS" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()  # refused before anything ran or was written


def test_a_config_file_cannot_either_and_the_user_can_opt_in(cli, tmp_path):
    conf = tmp_path / "myconf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment" / "evil.yaml").write_text(
        "# @package _global_\nhydra:\n  callbacks:\n    evil:\n"
        "      _target_: collections.OrderedDict\n")
    r = cli("fit", "-cd", str(conf), "experiment=evil", "debug=smoke", "hydra.run.dir=run")
    assert r.returncode == 2 and "collections.OrderedDict" in r.stderr
    (conf / "hydra" / "job_logging").mkdir(parents=True)
    (conf / "hydra" / "job_logging" / "evil.yaml").write_text(
        "version: 1\nhandlers:\n  console:\n    (): os.getcwd\n"
        "root:\n  handlers: [console]\n")
    r = cli("fit", "-cd", str(conf), "hydra/job_logging=evil", "debug=smoke",
            "hydra.run.dir=run2")
    assert r.returncode == 2 and "hydra.job_logging.handlers.console.()" in r.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "run2").exists()
    ok = cli("fit", "-cd", str(conf), "experiment=evil", "debug=smoke", "hydra.run.dir=run",
             env={"BIGTRAIN_ALLOW_TARGETS": "collections"})
    assert ok.returncode == 0, ok.stderr[-1500:]


@pytest.mark.parametrize("override", ["+model._target_=os.system",
                                      "+trainer.callback._target_=os.system",
                                      "+optim._target_=builtins.eval"])
def test_job_groups_reject_target_keys(cli, override):
    r = cli("validate", override)
    assert r.returncode == 2 and "unknown key" in r.stderr


def test_exported_keras_loads_in_safe_mode_and_other_checkpoints_are_refused(tmp_path):
    for name, model in (("a", "mlp"), ("b", "cnn")):
        r = run_cli("fit", "debug=smoke", f"model={model}", f"hydra.run.dir={name}",
                    cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-1500:]
    ex = run_cli("export", "a", "--format", "keras", "--out", "a.keras", cwd=tmp_path)
    assert ex.returncode == 0, ex.stderr[-1500:]
    import keras

    import bigtrain.models  # noqa: F401  (registers bigtrain's layers with Keras)

    model = keras.models.load_model(tmp_path / "a.keras", safe_mode=True)
    assert model.count_params() > 0
    # run a's dir with run b's checkpoints: a clear mismatch, no partial load
    import shutil

    shutil.rmtree(tmp_path / "a" / "checkpoints")
    shutil.copytree(tmp_path / "b" / "checkpoints", tmp_path / "a" / "checkpoints")
    ev = run_cli("eval", "a", cwd=tmp_path)
    assert ev.returncode in (1, 2) and "does not match" in ev.stderr, ev.stderr[-1500:]
    assert "Traceback" not in ev.stderr
