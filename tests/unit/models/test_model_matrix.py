"""Every model on every dataset kind: builds, trains a few steps with falling loss; the pairs
that make no sense are refused with a message that says why."""

from __future__ import annotations

import json

import pytest

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.run.job import train  # noqa: E402

DATASETS = {
    "images": ["dataset=digits"],
    "vectors": ["dataset=synthetic", "dataset.task=classification", "dataset.num_features=16"],
    "regression": ["dataset=synthetic", "dataset.task=regression", "dataset.num_features=16"],
    "tokens_lm": ["dataset=synthetic", "dataset.task=lm", "dataset.vocab_size=32",
                  "dataset.seq_len=16", "dataset.noise=0"],
}
MODELS = {
    "mlp": ["model=mlp", "model.hidden=[64]"],
    "cnn": ["model=cnn", "model.widths=[16]"],
    "rnn": ["model=rnn", "model.units=32"],
    "transformer": ["model=transformer", "model.d_model=32", "model.num_layers=1"],
}
REFUSED = {("cnn", "tokens_lm"): "does not model language"}
COMMON = ["trainer.max_steps=40", "trainer.log_every=10", "trainer.eval_every=40",
          "trainer.progress=none", "logger=[]", "dataset.fraction=0.5",
          "trainer.batch_size=32", "optim=adam", "optim.lr=0.005", "model.dropout=0"]


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("data", sorted(DATASETS))
def test_model_trains_on_dataset_kind_or_is_refused(tmp_path, model, data):
    config = to_typed(compose([*DATASETS[data], *MODELS[model], *COMMON]))
    if (model, data) in REFUSED:
        with pytest.raises(ConfigError, match=REFUSED[(model, data)]):
            train(config, tmp_path)
        return
    summary = train(config, tmp_path)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").open()
              if '"loss"' in line and '"val_loss"' not in line]
    assert len(losses) == 4
    assert losses[-1] < losses[0], losses
    assert summary["status"] == "completed"


def test_bidirectional_rnn_language_model_is_refused(tmp_path):
    config = to_typed(compose([*DATASETS["tokens_lm"], "model=rnn",
                               "model.bidirectional=true", *COMMON]))
    with pytest.raises(ConfigError, match="must not see future tokens"):
        train(config, tmp_path)


def test_info_reports_parameters_and_analytic_flops(tmp_path):
    from bigtrain.data import build_dataset
    from bigtrain.models import build_model
    from bigtrain.models.size import measure

    config = to_typed(compose(["model=mlp", "model.hidden=[32]"]))
    spec = build_dataset(config.dataset).spec
    model = build_model(config.model, spec)
    size = measure(model, spec.input_shape, spec.input_dtype)
    assert size.trainable == model.count_params() == 64 * 32 + 32 + 32 * 10 + 10
    matmul = 2 * (64 * 32 + 32 * 10)  # a multiply-add is 2 FLOPs
    assert matmul <= size.flops_forward <= matmul * 1.1
    assert size.flops_train_step == 3 * size.flops_forward
    assert size.activation_elements >= 64 + 32 + 10
    assert size.megabytes("bf16") == pytest.approx(size.megabytes("fp32") / 2)
