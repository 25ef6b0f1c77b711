"""model=keras_app: Keras Applications as image classifiers, with the application's own input
preprocessing inside the model, pretrained weights (imagenet or a file), a frozen base, and
exports that load without bigtrain. No network: weights are none or a file the test saves;
the imagenet download runs up to the network call, which the test makes fail."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error

import numpy as np
import pytest
from helpers import ROOT, run_cli
from serving_data import write_images

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.checks import check_config
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.data.spec import DatasetSpec

APP = "MobileNetV3Small"


def typed(*overrides: str):
    return to_typed(compose(["model=keras_app", "model.weights=none", *overrides]))


def images_spec(shape=(32, 32, 3), classes: int = 3, name: str = "image_folder") -> DatasetSpec:
    return DatasetSpec(name=name, task="classification", input_shape=shape,
                       input_dtype="float32", num_outputs=classes, num_train=64, num_val=8,
                       num_test=8)


def build(spec: DatasetSpec, *overrides: str):

    from bigtrain.models import build_model

    return build_model(typed(*overrides).model, spec)


def save_base(path, name: str = APP, seed: int = 7) -> list[np.ndarray]:
    """A weights file of the application's base, as a user would write it."""
    import keras

    keras.utils.set_random_seed(seed)
    base = getattr(keras.applications, name)(include_top=False, weights=None,
                                             input_shape=(32, 32, 3), pooling="avg")
    base.save_weights(str(path))
    return base.get_weights()


# ------------------------------------------------------------------ config (no TensorFlow)
def test_an_unknown_application_is_refused_with_the_allowed_names():
    with pytest.raises(ConfigError, match=r"model\.name: 'MobileNetV9' is not valid; allowed: "
                                          r".*EfficientNetV2B0.*MobileNetV3Small.*ResNet50"):
        typed("model.name=MobileNetV9")


def test_image_size_below_the_applications_minimum_is_refused():
    with pytest.raises(ConfigError, match=r"model\.image_size.*each >= 32 for MobileNetV3Small"):
        typed("model.image_size=[16,16]")
    with pytest.raises(ConfigError, match=r"model\.image_size.*each >= 71 for Xception"):
        typed("model.name=Xception", "model.image_size=[64,64]")
    assert typed("model.name=Xception", "model.image_size=[71,80]").model.image_size == [71, 80]


def test_a_missing_or_foreign_weights_file_is_named_before_tensorflow(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.weights: .*nope\.weights\.h5 does not exist; "
                                          r"allowed: imagenet, none, or a weights file"):
        check_config(compose(["model=keras_app", f"model.weights={tmp_path}/nope.weights.h5"]))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"model\.weights: .*notes\.txt is not a weights file"
                                          r".*\.weights\.h5"):
        check_config(compose(["model=keras_app", f"model.weights={tmp_path}/notes.txt"]))


def test_architecture_only_drops_the_pretrained_weights():
    config = typed("model.weights=imagenet")
    assert config.model.architecture_only().weights == "none"
    assert config.model.weights == "imagenet"


# ------------------------------------------------------------------ the model
def test_the_table_lists_every_keras_application():
    import keras

    from bigtrain.models.keras_app import family
    from bigtrain.models.schemas import KERAS_APPS

    constructors = {n for n in dir(keras.applications) if n[0].isupper()
                    and callable(getattr(keras.applications, n))}
    assert set(KERAS_APPS) == constructors
    for name in KERAS_APPS:  # each resolves to its family's preprocessing
        assert callable(family(name).preprocess_input)


@pytest.mark.parametrize("name", [APP, "VGG16"])
def test_the_base_sees_the_applications_own_preprocessing(name):
    """[0, 1] images in; the base gets what Keras documents for it: 0-255 pixels through its
    family's preprocess_input (VGG16's, as ResNet50's: BGR, mean subtracted), or 0-255 pixels
    into its own
    preprocessing layers (MobileNetV3's include_preprocessing)."""
    import keras

    from bigtrain.models.keras_app import family

    model = build(images_spec((32, 32, 3)), f"model.name={name}")
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    features = keras.Model(model.inputs, model.get_layer("head").input)
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    expected = backbone(family(name).preprocess_input(x * 255.0), training=False)
    np.testing.assert_allclose(features(x, training=False), expected, rtol=1e-4, atol=1e-4)
    if name == APP:
        assert any(type(layer).__name__ == "Rescaling" and layer.scale == pytest.approx(1 / 127.5)
                   for layer in backbone.layers)  # include_preprocessing=True


def test_small_grayscale_images_are_resized_and_repeated_and_freeze_trains_the_head_only():
    import keras

    model = build(images_spec((8, 8), classes=10, name="digits"), "model.freeze=backbone")
    rgb = keras.Model(model.inputs, model.get_layer("to_255").output)
    x = np.random.default_rng(1).uniform(0, 1, (2, 8, 8)).astype("float32")
    y = np.asarray(rgb(x))
    assert y.shape == (2, 32, 32, 3)  # the application's minimum side
    np.testing.assert_array_equal(y[..., 0], y[..., 1])
    np.testing.assert_array_equal(y[..., 0], y[..., 2])
    assert 200 < y.max() <= 255.0
    head = model.get_layer("head")
    assert [v.path for v in model.trainable_weights] == [v.path for v in head.trainable_weights]
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == 576 * 10 + 10
    assert model.count_params() > 900_000


def test_bigtrain_info_counts_total_and_trainable_parameters_with_a_frozen_base():
    from typer.testing import CliRunner

    from bigtrain.cli.main import app

    result = CliRunner().invoke(app, ["info", "model=keras_app", "model.name=MobileNet",
                                      "model.weights=none", "model.freeze=backbone"])
    assert result.exit_code == 0, result.output
    numbers = {m[1]: int(m[2].replace(",", "")) for m in
               re.finditer(r"^\s*((?:total|trainable|non-trainable) parameters)\s+([\d,]+)\s*$",
                           result.output, re.MULTILINE)}
    assert numbers["trainable parameters"] == 1024 * 10 + 10  # the head, on digits
    assert numbers["total parameters"] == numbers["trainable parameters"] + \
        numbers["non-trainable parameters"] > 3_000_000


def test_a_non_image_dataset_is_refused_naming_the_model():
    table = DatasetSpec(name="csv", task="classification", input_shape=(12,),
                        input_dtype="float32", num_outputs=2, num_train=10, num_val=2, num_test=2)
    with pytest.raises(ConfigError, match=r"^model: model=keras_app takes images.*'csv'.*\[12\]"):
        build(table)
    tokens = DatasetSpec(name="text", task="lm", input_shape=(64,), input_dtype="int32",
                         num_outputs=256, num_train=10, num_val=2, num_test=2)
    with pytest.raises(ConfigError, match=r"model=keras_app takes images"):
        build(tokens)


def test_a_weights_file_is_loaded_into_the_base(tmp_path):
    import keras

    path = tmp_path / "base.weights.h5"
    saved = save_base(path)
    model = build(images_spec((40, 40, 3)), f"model.weights={path}")
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    for got, want in zip(backbone.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_weights_file_that_does_not_fit_is_named(tmp_path):
    import keras

    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
    path = tmp_path / "other.weights.h5"
    other.save_weights(str(path))
    with pytest.raises(ConfigError, match=r"model\.weights: .*other\.weights\.h5 does not fit "
                                          r"MobileNetV3Small's base.*include_top=False"):
        build(images_spec(), f"model.weights={path}")


def test_imagenet_weights_offline_are_a_config_error_after_the_download_was_tried(
        tmp_path, monkeypatch):
    """The download code runs as for a user, with an empty Keras cache, up to the network
    call, which fails here as it does offline."""
    from keras.src.backend import config as keras_config
    from keras.src.utils import file_utils

    asked: list[str] = []

    def offline(url, *args, **kwargs):
        asked.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras"))
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    with pytest.raises(ConfigError, match=r"^model\.weights: imagenet weights of "
                                          r"MobileNetV3Small could not be fetched \(URL fetch "
                                          r"failure.*Offline\?.*model\.weights=none"):
        build(images_spec(), "model.weights=imagenet")
    assert len(asked) == 1 and asked[0].startswith("https://") and \
        "mobilenet_v3_small" in asked[0]
    with pytest.raises(ConfigError, match=r"model\.weights"):  # fit's check before its run dir
        from bigtrain.models.fetch import fetch

        fetch(typed("model.weights=imagenet").model)


@pytest.mark.slow
def test_fit_offline_with_imagenet_weights_exits_2_and_leaves_no_run_dir(tmp_path):
    """The real CLI with an empty Keras cache and every HTTP(S) request sent to a closed
    local port: the download is tried, and refused before Hydra makes the run dir."""
    write_images(tmp_path / "data", per_class=4, heldout=1)
    closed = "http://127.0.0.1:9"
    proc = run_cli("fit", "dataset=image_folder", "dataset.path=data/train", "model=keras_app",
                   "model.weights=imagenet", "hydra.run.dir=run", cwd=tmp_path,
                   env={"KERAS_HOME": str(tmp_path / "keras"), "https_proxy": closed,
                        "HTTPS_PROXY": closed, "http_proxy": closed, "no_proxy": "",
                        "NO_PROXY": ""})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "model.weights: imagenet weights of MobileNetV3Small could not be fetched" in \
        proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "outputs").exists()


def test_a_size_keras_refuses_is_named_with_model_image_size(monkeypatch):
    """Keras's own input checks stand behind the table of minimum sides."""
    from bigtrain.models import keras_app

    monkeypatch.setitem(keras_app.KERAS_APPS, "InceptionV3", 32)  # Keras wants >= 75
    with pytest.raises(ConfigError, match=r"^model\.image_size: keras\.applications\."
                                          r"InceptionV3 refused 40x40 images"):
        build(images_spec((40, 40, 3)), "model.name=InceptionV3")


def test_the_recipe_command_in_its_header_composes_and_builds(tmp_path):


    recipe = ROOT / "conf" / "experiment" / "keras_app_images.yaml"
    usage = next(line for line in recipe.read_text().splitlines() if "Usage:" in line)
    args = usage.split("bigtrain fit", 1)[1].split()
    assert args == ["experiment=keras_app_images", "dataset.path=photos/"]
    write_images(tmp_path / "photos", per_class=2, heldout=1)
    args[1] = f"dataset.path={tmp_path / 'photos' / 'train'}"
    config = check_config(compose([*args, "model.weights=none"]))
    assert (config.dataset.name, config.model.name, config.model.freeze) == \
        ("image_folder", APP, "backbone")
    assert to_typed(compose(args)).model.weights == "imagenet"
    model = build(images_spec((96, 96, 3), classes=2), *args, "model.weights=none")
    assert model.input_shape == (None, 96, 96, 3) and model.output_shape == (None, 2)
    assert "resize" not in [layer.name for layer in model.layers]  # 96 is a size it takes


# ------------------------------------------------------------------ train, export, reload
PLAIN = r'''
import json, sys
try:
    import bigtrain
except ImportError:
    pass
else:
    sys.exit("bigtrain was importable")
import keras
import numpy as np
import tensorflow as tf

savedmodel, keras_file, x_file, out = sys.argv[1:5]
blobs = [open(p, "rb").read() for p in sys.argv[5:]]
x = np.load(x_file)
answer = tf.saved_model.load(savedmodel).signatures["serving_default"](images=tf.constant(blobs))
logits = keras.models.load_model(keras_file, safe_mode=True)(x, training=False)
json.dump({"probabilities": answer["probabilities"].numpy().tolist(),
           "keras_logits": np.asarray(logits).tolist()}, open(out, "w"))
'''


@pytest.mark.slow
def test_a_frozen_base_trains_and_its_exports_load_without_bigtrain(tmp_path):
    """Fine-tune the head of MobileNet (V1: its preprocess_input is Keras ops in the graph,
    and it traces fastest) on a tiny folder of 12x12 images, which the model resizes to 32x32,
    from a weights file; the base does not change. The run then exports and predicts after
    the weights file is gone (its checkpoint holds every weight), and both exports load in a
    process where bigtrain cannot be imported and agree with the restored model."""
    import keras
    import tensorflow as tf
    from omegaconf import OmegaConf

    from bigtrain.inference.restore import export_run, open_run
    from bigtrain.run import rundir
    from bigtrain.run.job import train

    train_dir, held = write_images(tmp_path / "data", per_class=12, heldout=3)
    weights = tmp_path / "base.weights.h5"
    saved = save_base(weights, "MobileNet")
    args = ["dataset=image_folder", f"dataset.path={train_dir}", "dataset.image_size=[12,12]",
            "model=keras_app", "model.name=MobileNet", f"model.weights={weights}",
            "model.freeze=backbone",
            "strategy.precision=fp32", "trainer.batch_size=8", "trainer.max_steps=2",
            "trainer.eval_every=2", "trainer.progress=none", "logger=[]", "optim.lr=0.01"]
    run = tmp_path / "run"
    rundir.write_config(run, OmegaConf.to_container(compose(args), resolve=True))
    summary = train(to_typed(compose(args)), run)
    assert summary["status"] == "completed" and summary["params"] == 1024 * 2 + 2
    weights.unlink()  # loading the run needs the checkpoint only

    r = open_run(run, "latest")
    backbone = next(layer for layer in r.model.layers if isinstance(layer, keras.Model))
    for got, want in zip(backbone.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(got, want)  # frozen: batch-norm statistics included
    assert not np.allclose(r.model.get_layer("head").get_weights()[0], 0)

    files = sorted(str(p) for p in held.rglob("*.png"))[:4]
    x = np.stack([tf.image.resize(tf.cast(tf.io.decode_image(open(p, "rb").read(), channels=3),
                                          tf.float32) / 255.0, (12, 12)).numpy()
                  for p in files])
    np.save(tmp_path / "x.npy", x)
    export_run(run, "savedmodel", checkpoint="latest")
    export_run(run, "keras", checkpoint="latest")
    script = tmp_path / "plain.py"
    script.write_text(PLAIN)
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "bigtrain.py").write_text("raise ImportError('bigtrain is not installed here')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BIGTRAIN_DEBUG")}
    env.update(PYTHONPATH=str(stub), TF_CPP_MIN_LOG_LEVEL="2")
    plain = subprocess.Popen(
        [sys.executable, str(script), str(run / "export" / "savedmodel"),
         str(run / "export" / "model.keras"), str(tmp_path / "x.npy"), str(tmp_path / "out.json"),
         *files], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)

    from bigtrain.inference import predict  # meanwhile: predict, in this process
    from bigtrain.inference.inputs import read_inputs

    data = read_inputs(r.preprocessing, files)
    predicted = predict.run(r, data).outputs["probabilities"]
    logits = np.asarray(r.model(x, training=False))
    _, err = plain.communicate(timeout=300)
    assert plain.returncode == 0, err[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    np.testing.assert_allclose(result["probabilities"], predicted, atol=1e-5)
    np.testing.assert_allclose(result["keras_logits"], logits, rtol=1e-4, atol=1e-4)
