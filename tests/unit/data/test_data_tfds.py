"""TFDS datasets through TFDS's own mock data: no network, real loader code."""

from __future__ import annotations

import pytest
import tensorflow_datasets as tfds
from omegaconf import OmegaConf

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.data import build_dataset  # noqa: E402
from bigtrain.run.job import train  # noqa: E402

FAST = ["trainer.max_steps=4", "trainer.eval_every=4", "trainer.progress=none",
        "logger=[]", "trainer.batch_size=16"]


def test_mnist_images_train(tmp_path):
    with tfds.testing.mock_data(num_examples=48):
        config = to_typed(compose(["dataset=mnist", "model=cnn", "model.widths=[8]", *FAST]))
        spec = build_dataset(config.dataset).spec
        assert spec.input_shape == (28, 28, 1) and spec.num_outputs == 10
        summary = train(config, tmp_path)
    assert summary["steps"] == 4 and summary["final"]["val_loss"] > 0


def test_imdb_reviews_are_bytes_for_a_token_model(tmp_path):
    with tfds.testing.mock_data(num_examples=48):
        config = to_typed(compose(["dataset=imdb_reviews", "dataset.max_len=32",
                                   "model=transformer", "model.d_model=16", *FAST]))
        spec = build_dataset(config.dataset).spec
        assert spec.input_shape == (32,) and spec.input_vocab == 257 and spec.num_outputs == 2
        summary = train(config, tmp_path)  # model.vocab_size comes from the spec
    assert summary["status"] == "completed"


def test_any_tfds_name_and_eval_of_the_run(tmp_path):
    from bigtrain.inference.restore import evaluate_run
    from bigtrain.run import rundir

    args = ["dataset=tfds", "dataset.name=fashion_mnist", "model=mlp", *FAST]
    with tfds.testing.mock_data(num_examples=48):
        rundir.write_config(tmp_path, OmegaConf.to_container(compose(args), resolve=True))
        train(to_typed(compose(args)), tmp_path)
        result = evaluate_run(tmp_path, "test")  # the run's config maps back to TFDS
    assert "test_accuracy" in result["metrics"]


def test_unknown_tfds_name_is_a_config_error():
    with pytest.raises(ConfigError, match="TFDS has no dataset 'no_such_dataset'"):
        build_dataset(to_typed(compose(["dataset=tfds", "dataset.name=no_such_dataset"]))
                      .dataset)


def test_a_dataset_without_a_test_split_has_no_test_examples(monkeypatch):
    """TFDS answers 'Unknown split' for a split a dataset lacks: no test split then, and no
    other error is taken for that answer."""
    from tensorflow_datasets.core import dataset_builder

    as_dataset = dataset_builder.DatasetBuilder.as_dataset

    def only_train(self, split=None, **kw):
        if split == "test":
            raise ValueError('Unknown split "test". Should be one of [\'train\'].')
        return as_dataset(self, split=split, **kw)

    monkeypatch.setattr(dataset_builder.DatasetBuilder, "as_dataset", only_train)
    config = to_typed(compose(["dataset=mnist", "model=mlp", *FAST]))
    with tfds.testing.mock_data(num_examples=48):
        spec = build_dataset(config.dataset).spec
    assert spec.num_test == 0 and spec.num_train > 0
