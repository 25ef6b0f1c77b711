"""Models are right in inference mode from the first epochs, not only in the training loop."""

from __future__ import annotations

import pytest
from helpers import read_json, read_jsonl


@pytest.mark.slow
def test_eval_on_train_split_tracks_the_loop_after_three_epochs(cli, tmp_path):
    """Batch norm's moving statistics follow the weights: after 3 epochs of the default CNN on
    digits, `eval --split train` (inference mode) is within 5 points of the loop's own
    training accuracy (with Keras's momentum 0.99 it was 0.34 against 0.99)."""
    fit = cli("fit", "trainer.epochs=3", "hydra.run.dir=run")
    assert fit.returncode == 0, fit.stderr
    train_records = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")
                     if "accuracy" in r]
    loop_accuracy = train_records[-1]["accuracy"]
    ev = cli("eval", "run", "--split", "train", "--checkpoint", "latest")
    assert ev.returncode == 0, ev.stderr
    # what was evaluated is one line of its own, not a title wrapped to the table's width
    assert any(line.startswith("run · latest checkpoint ckpt-") and line.endswith("· train")
               for line in ev.stdout.splitlines()), ev.stdout
    result = read_json(tmp_path / "run" / "eval_train_latest.json")
    assert loop_accuracy > 0.9
    assert abs(result["metrics"]["train_accuracy"] - loop_accuracy) < 0.05, (
        result["metrics"], loop_accuracy)


def test_bn_momentum_is_a_model_key_with_a_range():
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed
    from bigtrain.core.errors import ConfigError
    from bigtrain.models.schemas import CNNConfig

    # the CNN's default, in its YAML and its schema (0.9 lagged on a 96-image folder)
    assert to_typed(compose([])).model.bn_momentum == CNNConfig().bn_momentum == 0.8
    assert to_typed(compose(["model=mlp", "model.norm=batch",
                             "model.bn_momentum=0.5"])).model.bn_momentum == 0.5
    with pytest.raises(ConfigError, match="model.bn_momentum"):
        to_typed(compose(["model.bn_momentum=1.5"]))
