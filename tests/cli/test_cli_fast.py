"""The commands that must stay fast: no TensorFlow import, quick answers, helpful output."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK_NO_TF = """
import sys
from bigtrain.cli.main import app
args = sys.argv[1:]
try:
    app(args)
except SystemExit as e:
    code = e.code
assert "tensorflow" not in sys.modules, "TensorFlow was imported by: " + " ".join(args)
assert "keras" not in sys.modules, "Keras was imported by: " + " ".join(args)
print("EXIT", code)
"""


@pytest.mark.parametrize("args", [["--help"], ["fit", "--help"], ["ls"], ["ls", "model"],
                                  ["show"], ["show", "model=mlp"], ["validate"],
                                  ["validate", "optim.lr=-1"], ["fit", "model=nosuch"],
                                  ["launch", "--help"]])
def test_fast_commands_do_not_import_tensorflow(args, tmp_path):
    proc = subprocess.run([sys.executable, "-c", CHECK_NO_TF, *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "EXIT" in proc.stdout


def test_ls_lists_groups_options_and_descriptions(cli):
    proc = cli("ls")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for group in ("dataset", "model", "optim", "strategy", "trainer", "debug", "experiment"):
        assert group in out
    assert "cnn*" in out and "mlp" in out and "adam*" in out
    assert "bundled with scikit-learn" in out  # digits.yaml's header comment
    assert "hydra" not in out.split()


def test_ls_one_group_and_unknown_group(cli):
    proc = cli("ls", "optim")
    assert proc.returncode == 0
    assert "sgd" in proc.stdout and "digits" not in proc.stdout
    bad = cli("ls", "nosuch")
    assert bad.returncode == 2
    assert "no config group 'nosuch'" in bad.stderr and "model" in bad.stderr


def test_ls_lists_a_group_of_presets_over_another_groups_keys(cli):
    """model/size has no schema of its own (its options set model keys): listed all the same,
    as the error for an unknown model/size option says it would be."""
    proc = cli("ls", "model/size")
    assert proc.returncode == 0, proc.stderr
    assert {"tiny", "small", "base", "gpt2_small"} <= set(proc.stdout.split())
    assert "model/size" in cli("ls").stdout


def test_show_prints_the_resolved_tree(cli):
    proc = cli("show", "model=mlp", "trainer.seed=7")
    assert proc.returncode == 0, proc.stderr
    assert "hidden" in proc.stdout
    assert "seed: 7" in proc.stdout  # dataset.seed is interpolated from trainer.seed


def test_show_and_validate_name_a_required_key_with_what_it_is_for(cli):
    for command in ("show", "validate"):
        proc = cli(command, "dataset=text")
        assert proc.returncode == 2, proc.stderr
        assert "dataset.path: required; the text to train on" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and "mandatory value" not in proc.stderr


def test_validate_ok(cli):
    proc = cli("validate", "model=mlp", "optim=sgd")
    assert proc.returncode == 0 and "config is valid" in proc.stdout


def test_fit_help_has_examples(cli):
    proc = cli("fit", "--help")
    assert proc.returncode == 0
    assert "bigtrain fit -m optim=adam,sgd" in proc.stdout


def test_shell_completion_of_overrides_through_typer(tmp_path):
    """What bash gets for `bigtrain fit model=mlp model.act<TAB>` (Typer's protocol, Hydra's
    answers)."""
    env = {**__import__("os").environ, "_BIGTRAIN_COMPLETE": "complete_bash",
           "COMP_WORDS": "bigtrain fit model=mlp model.act", "COMP_CWORD": "3"}
    code = "from bigtrain.cli.main import app; app(prog_name='bigtrain')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "model.activation=" in proc.stdout.split()
    env["COMP_WORDS"], env["COMP_CWORD"] = "bigtrain fit optim=", "2"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert {"optim=adam", "optim=sgd", "optim=lion"} <= set(proc.stdout.split())
