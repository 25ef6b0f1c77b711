"""`bigtrain resume`'s plan, read from a run dir's own record: the recorded config with only
overrides that extend the run, the run's overrides kept for its record (no TensorFlow)."""

from __future__ import annotations

import json

import pytest
import yaml
from omegaconf import OmegaConf

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.checks import check_config
from bigtrain.core.errors import ConfigError
from bigtrain.run import resume

RECORDED = ["model=mlp", "debug=smoke", "trainer.resume=/elsewhere", "trainer.rerun=true"]


@pytest.fixture
def run(tmp_path):
    """A run dir as `bigtrain fit model=mlp debug=smoke ...` leaves it (config and record)."""
    cfg = compose(RECORDED)
    d = tmp_path / "run"
    (d / ".hydra").mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(OmegaConf.to_container(cfg, resolve=True),
                                                  sort_keys=False))
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(RECORDED))
    (d / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
        {"hydra": {"runtime": {"choices": {"model": "mlp", "optim": "adam"}}}}))
    return d


def test_the_plan_is_the_recorded_config_extended(run):
    plan = resume.plan(run, ["trainer.max_steps=20", "trainer.log_every=5"])
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert plan.config["trainer"]["max_steps"] == 20 and plan.config["trainer"]["log_every"] == 5
    assert plan.config["model"] == recorded["model"] and plan.config["optim"] == recorded["optim"]
    # its own checkpoints, never another run's, and never from scratch
    assert plan.config["trainer"]["resume"] == "auto" and plan.config["trainer"]["rerun"] is False
    assert plan.overrides == [*RECORDED, "trainer.max_steps=20", "trainer.log_every=5"]
    assert plan.choices == {"model": "mlp", "optim": "adam"}
    assert plan.complete is None
    # the same value of a key that may not change is no change
    assert resume.plan(run, [f"optim.lr={recorded['optim']['lr']}"]).config == \
        resume.plan(run, []).config


def test_a_given_override_replaces_the_recorded_one_of_its_key(run):
    plan = resume.plan(run, ["trainer.resume=force"])
    assert plan.config["trainer"]["resume"] == "force"
    assert plan.overrides == ["model=mlp", "debug=smoke", "trainer.rerun=true",
                              "trainer.resume=force"]


@pytest.mark.parametrize("overrides, named", [
    (["model=cnn", "optim.lr=0.5", "trainer.max_steps=9"], "model=cnn, optim.lr=0.5: would "
                                                           "change the run"),
    (["trainer.seed=1"], "trainer.seed=1: would change the run"),
    (["+trainer.foo=1"], "+trainer.foo=1: would change the run"),
    (["~optim.lr"], "~optim.lr: would change the run"),
    (["trainer.max_steps=9,10"], "trainer.max_steps=9,10: would change the run"),
    (["trainer.resume=never"], "trainer.resume: 'never' is not valid here"),
    (["trainer.rerun=true"], "trainer.rerun: resume continues the run"),
])
def test_overrides_that_change_the_run_are_refused_by_name(run, overrides, named):
    with pytest.raises(ConfigError, match="^" + named.replace("+", r"\+")) as err:
        resume.plan(run, overrides)
    if "would change" in named:
        assert "trainer.max_steps" in str(err.value)  # what it takes instead


def test_a_finished_run_is_complete_unless_extended(run):
    (run / "summary.json").write_text(json.dumps({"status": "completed", "steps": 6}))
    assert resume.plan(run, []).complete["steps"] == 6
    assert resume.plan(run, ["trainer.log_every=1"]).complete is not None  # no longer
    assert resume.plan(run, ["trainer.max_steps=12"]).complete is None
    assert resume.plan(run, ["trainer.epochs=3"]).complete is None
    (run / "summary.json").write_text(json.dumps({"status": "preempted", "steps": 4}))
    assert resume.plan(run, []).complete is None


def test_a_dir_without_a_config_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="is not a bigtrain run dir"):
        resume.plan(tmp_path, [])
    (tmp_path / "multirun.yaml").write_text("{}")
    with pytest.raises(ConfigError, match="it is a sweep dir"):
        resume.plan(tmp_path, [])


def test_the_job_nodes_are_the_typed_config_hydra_would_hand_the_task(run):
    plan = resume.plan(run, ["trainer.max_steps=20"])
    cfg = OmegaConf.create(resume.job_nodes(plan.config))
    config = check_config(cfg)
    assert config.model.name == "mlp" and config.trainer.max_steps == 20
    assert OmegaConf.to_container(cfg, resolve=True) == plan.config
    assert list(cfg.keys()) == list(plan.config)  # config.yaml keeps its order
