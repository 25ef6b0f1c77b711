"""Config fuzzing: random malformed overrides and YAML files never give a traceback — exit
status 0 (valid) or 2 with a message that names a key or the override."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bigtrain.cli.main import app

KEYS = ["optim.lr", "optim.weight_decay", "trainer.batch_size", "trainer.epochs",
        "trainer.seed", "trainer.loss", "trainer.monitor_mode", "model.hidden", "model.dropout",
        "dataset.val_fraction", "dataset.fraction", "dataset.augment.rotation",
        "strategy.precision", "trainer.trial.pruner", "optim.schedule.warmup",
        "model", "optim", "dataset", "strategy", "logger", "trainer.nope", "nope", "hydra.job"]
JUNK = st.text(alphabet=string.printable.replace("\x0b", "").replace("\x0c", ""), max_size=12)
VALUES = st.one_of(
    st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(str), JUNK,
    st.sampled_from(["null", "true", "[]", "[1,2", "{a: 1}", "${oops}", "${trainer.seed}",
                     "mlp", "cnn", "???", "'quoted'", "choice(1,2)", "1e-3", "-0", ""]),
)
OVERRIDE = st.one_of(
    st.tuples(st.sampled_from(["", "+", "++", "~"]), st.sampled_from(KEYS), VALUES).map(
        lambda t: f"{t[0]}{t[1]}={t[2]}" if t[0] != "~" else f"~{t[1]}"),
    JUNK,
)
runner = CliRunner()


def check_outcome(result) -> None:
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in text
    if result.exit_code == 2:
        assert "error:" in text  # one message, naming the key or the override


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OVERRIDE, min_size=1, max_size=4))
def test_random_overrides_are_valid_or_a_named_error(overrides):
    if any(o.startswith("-") for o in overrides):  # an option flag, not an override
        return
    check_outcome(runner.invoke(app, ["validate", *overrides]))


YAML_BODIES = st.one_of(
    JUNK,
    st.sampled_from(["lr: [", "name: mlp\nhidden: {", "defaults:\n  - nope\n",
                     "a: !!python/object:os.system ls", "name: 3\n", "hidden: [a, b]\n",
                     "dropout: 2.5\n", "defaults: 7\n",
                     "\t\tbad indent", "name: mlp\nactivation: relu\nhidden: [64]\n"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(YAML_BODIES)
def test_random_yaml_in_a_users_config_dir_is_a_named_error(tmp_path, body):
    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    (model_dir / "mine.yaml").write_text("defaults:\n  - /schema/model/mlp@_here_\n  - _self_\n"
                                         + body if "defaults" not in body else body)
    check_outcome(runner.invoke(app, ["validate", "--config-dir", str(tmp_path),
                                      "model=mine"]))
