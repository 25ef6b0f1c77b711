"""Config composition with Hydra's compose API: defaults, interpolation, every option valid."""

from __future__ import annotations

import pytest

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.catalog import catalog, defaults
from bigtrain.config.schema import option_schemas, to_typed
from bigtrain.core.errors import ConfigError

SCHEMAS = {k: v for k, v in option_schemas().items() if "/" not in k[0]}  # top-level groups


def test_defaults_are_digits_cnn_adam():
    cfg = to_typed(compose([]))
    assert (cfg.dataset.name, cfg.model.name, cfg.optim.name) == ("digits", "cnn", "adam")
    assert cfg.strategy.name == "auto" and cfg.trainer.batch_size == 32
    assert defaults() == {"dataset": "digits", "model": "cnn", "optim": "adam",
                          "strategy": "auto", "trainer": "default",
                          "logger": "tensorboard"}
    assert list(cfg.logger) == ["tensorboard"]


def test_dataset_seed_is_interpolated_from_trainer_seed():
    cfg = compose(["trainer.seed=11"])
    assert cfg.dataset.seed == 11  # typed once, in trainer


# options whose YAML leaves a value for the user to fill in (`???`)
REQUIRED = {("dataset", "text"): ["dataset.path=corpus.txt"],
            ("dataset", "csv"): ["dataset.path=t.csv", "dataset.label=y"],
            ("dataset", "image_folder"): ["dataset.path=photos"],
            ("dataset", "tfds"): ["dataset.name=mnist"],
            ("dataset", "text_classification"): ["dataset.path=reviews"],
            ("dataset", "chat"): ["dataset.path=pairs.jsonl"],
            ("model", "hub"): ["model.preset=gpt2_base_en"],
            ("dataset", "tfrecord"): ["dataset.path=d", "dataset.input=x", "dataset.label=y"]}


@pytest.mark.parametrize("group,option", sorted(set(SCHEMAS) - {("strategy", "parameter_server")}))
def test_every_option_composes_validates_and_has_its_schema(group, option):
    extra = REQUIRED.get((group, option), [])
    chosen = f"{group}=[{option}]" if group == "logger" else f"{group}={option}"
    cfg = to_typed(compose([chosen, *extra]))
    part = getattr(cfg, group)
    if group == "logger":  # a group that takes a list of options
        part = part[option]
    assert isinstance(part, SCHEMAS[(group, option)])
    if extra:  # and without them, the missing value is named
        with pytest.raises(ConfigError, match="(dataset|model).*(path|label|name|input|preset)"):
            to_typed(compose([f"{group}={option}"]))


def test_parameter_server_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="not supported: Keras 3.*multi_worker"):
        to_typed(compose(["strategy=parameter_server"]))


def test_every_yaml_has_a_description_and_every_group_option_a_schema():
    cat = catalog()
    for group in ("dataset", "model", "optim", "strategy", "trainer"):
        for option, desc in cat[group].items():
            assert desc, f"conf/{group}/{option}.yaml needs a header comment"
            assert (group, option) in SCHEMAS, f"conf/{group}/{option}.yaml has no schema"


def test_debug_smoke_shrinks_the_run():
    cfg = to_typed(compose(["debug=smoke"]))
    assert cfg.trainer.max_steps <= 10 and cfg.dataset.fraction < 1


def test_experiment_preset_switches_groups():
    cfg = to_typed(compose(["experiment=digits_mlp"]))
    assert cfg.model.name == "mlp" and cfg.optim.name == "sgd"
    assert cfg.trainer.monitor == "val_accuracy"


def test_structured_schema_rejects_added_group_keys():
    with pytest.raises(ConfigError, match="trainer.nosuch"):
        to_typed(compose(["+trainer.nosuch=1"]))


def test_completion_uses_hydra(tmp_path):
    from bigtrain.cli.hydra_glue import complete

    assert {"model", "model."} & set(complete([], "mod"))  # a group with a subgroup (size)
    assert {"model=cnn", "model=mlp"} <= set(complete([], "model="))
    assert "model.activation=" in complete(["model=mlp"], "model.acti")


def test_transformer_size_presets_and_explicit_values_win():
    cfg = to_typed(compose(["model=transformer", "model/size=small"])).model
    assert (cfg.d_model, cfg.num_layers, cfg.num_heads) == (128, 4, 4)
    cfg = to_typed(compose(["model=transformer", "model/size=base", "model.num_layers=2"])).model
    assert (cfg.d_model, cfg.num_layers) == (256, 2)
    with pytest.raises(Exception, match="model/size"):
        compose(["model=mlp", "model/size=small"])
