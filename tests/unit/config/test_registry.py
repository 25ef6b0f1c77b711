"""The group registries: one schema and one builder per option, and everything that lists
options (ConfigStore, `bigtrain ls`, error messages) reads them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bigtrain.config.catalog import catalog
from bigtrain.config.schema import REGISTRIES, option_schemas
from bigtrain.core.errors import ConfigError
from bigtrain.core.registry import Registry
from bigtrain.optim.schedule_kinds import SCHEDULES

#: options whose schema refuses them with the reason, so they have no builder
REFUSED = {("strategy", "parameter_server")}


@pytest.mark.parametrize("group", sorted(REGISTRIES))
def test_every_option_has_one_schema_one_builder_and_a_yaml(group):
    registry = REGISTRIES[group]
    yaml_options = {o for (g, o) in option_schemas() if g == group}
    assert yaml_options == set(catalog()[group]), f"a conf/{group} YAML names no schema"
    used = {option_schemas()[(group, o)] for o in yaml_options}
    for option, schema in registry.schemas().items():
        assert schema in used, f"{group} option {option} has a schema but no conf/{group} YAML"
        if registry.builds and (group, option) not in REFUSED:
            cfg = schema.__new__(schema)  # a bare instance: only its type picks the builder
            assert callable(registry.builder(cfg)), f"{group} option {option} has no builder"


def test_schedule_kinds_are_the_yaml_options_and_the_schema_choices():
    assert set(SCHEDULES.names()) == set(catalog()["optim/schedule"])
    with pytest.raises(ConfigError, match="optim.schedule.name.*Available: constant, step"):
        SCHEDULES.get("nosuch")


def test_an_unknown_option_is_named_with_the_registered_ones():
    with pytest.raises(ConfigError) as info:
        REGISTRIES["model"].schema("nosuch")
    assert info.value.key == "model.name"
    names = REGISTRIES["model"].names()
    assert {"cnn", "keras_app", "mlp", "rnn", "transformer"} <= set(names)
    assert "Available: " + ", ".join(names) in str(info.value)


def test_a_new_option_is_a_schema_and_a_decorated_builder(tmp_path, monkeypatch):
    """What the floor plan (docs/explanation/architecture.md) promises a contributor: a schema
    in the group's schemas.py and a builder naming it; the registry finds both, Hydra's
    ConfigStore gets the schema."""
    pkg = tmp_path / "mygroup"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from bigtrain.core.registry import Registry
        THINGS = Registry("thing", "mygroup")
    """))
    (pkg / "schemas.py").write_text(textwrap.dedent("""
        from dataclasses import dataclass
        from typing import ClassVar
        from omegaconf import MISSING
        from bigtrain.core.schema import GroupSchema

        @dataclass
        class ThingConfig(GroupSchema):
            group: ClassVar[str] = "thing"
            name: str = MISSING

        @dataclass
        class WidgetConfig(ThingConfig):
            name: str = "widget"
            size: int = 3
    """))
    (pkg / "widget.py").write_text(textwrap.dedent("""
        from mygroup import THINGS
        from mygroup.schemas import WidgetConfig

        @THINGS.register(WidgetConfig)
        def build_widget(cfg):
            return ("widget", cfg.size)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    from mygroup import THINGS
    from mygroup.schemas import WidgetConfig

    assert isinstance(THINGS, Registry) and THINGS.names() == ["widget"]
    assert THINGS.build(WidgetConfig(size=5)) == ("widget", 5)


def test_registries_and_configstore_need_no_tensorflow(tmp_path):
    code = ("import sys\n"
            "from bigtrain.config.schema import register_schemas\n"
            "from bigtrain.config.schema import REGISTRIES, option_schemas\n"
            "register_schemas(); option_schemas()\n"
            "from hydra.core.config_store import ConfigStore\n"
            "repo = ConfigStore.instance().repo['schema']\n"
            "assert 'mnist' not in repo['dataset'] and 'tfds.yaml' in repo['dataset'], repo\n"
            "assert 'schedule.yaml' in repo['optim']['schedule']\n"
            "assert 'tensorflow' not in sys.modules\n")
    # from another directory: the installed package, not the source tree (whose conf/ is
    # mapped to bigtrain.conf only by the install)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_every_key_of_every_option_says_what_it_is():
    """The config reference and the errors quote the comment on a schema field: a new key
    without one would show up there unexplained."""
    import dataclasses

    from bigtrain.config.checks import field_help
    from bigtrain.config.schema import REGISTRIES

    unexplained = sorted(f"{group}.{f.name} ({option})"
                         for registry in REGISTRIES.values()
                         for group, options in registry.all_schemas().items()
                         for option, schema in options.items()
                         for f in dataclasses.fields(schema)
                         if f.name != "name" and not field_help(schema, f.name))
    assert unexplained == []
