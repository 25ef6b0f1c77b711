"""Keras Applications (MobileNetV3Small, EfficientNetV2B0, ResNet50, ...) as image classifiers:
the application's convolutional base, global average pooling, dropout and a dense head with
the dataset's classes.

The model takes the dataset's images as they are (values in [0, 1], any size, 1 or 3
channels) and adapts them itself, in float32, so exports and `bigtrain predict` need nothing
beyond preprocessing.json: grayscale is repeated to RGB, the image is resized to
`model.image_size` (by default the data's size, each side raised to the application's
minimum), scaled to [0, 255], and given the application's own preprocessing: its family's
`preprocess_input` (`keras.applications.resnet.preprocess_input`, ...), called on the symbolic
tensor so that its Keras ops are part of the graph (a .keras file keeps them), plus the
`include_preprocessing` layers of the families that have the flag (EfficientNetV2,
MobileNetV3, ConvNeXt; their `preprocess_input` is the identity, as EfficientNet's, which
always includes them).

`model.freeze=backbone` makes the base non-trainable: its batch norms then run in inference
mode (Keras's rule for a non-trainable BatchNormalization), and only the head trains.
"""

from __future__ import annotations

import inspect
import logging
import os
import traceback
import warnings

import keras

from bigtrain.core.errors import ConfigError
from bigtrain.models import MODELS
from bigtrain.models.schemas import KERAS_APPS, WEIGHTS_SUFFIXES, KerasAppConfig

log = logging.getLogger("bigtrain")


def family(name: str):
    """The module of application `name` (keras.applications.mobilenet_v3, ...): where its
    `preprocess_input` is."""
    module = getattr(keras.applications, name).__module__.rsplit(".", 1)[-1]
    return getattr(keras.applications, module)


def image_size(cfg: KerasAppConfig, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """The [height, width] the base sees: model.image_size, else the data's, each side raised
    to the application's minimum."""
    if cfg.image_size:
        return int(cfg.image_size[0]), int(cfg.image_size[1])
    low = KERAS_APPS[cfg.name]
    return max(int(input_shape[0]), low), max(int(input_shape[1]), low)


def _check_images(spec) -> None:
    shape = tuple(spec.input_shape)
    images = (spec.input_dtype.startswith("float") and spec.task != "lm"
              and (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3))))
    if not images:
        raise ConfigError("model", f"model=keras_app takes images ([height, width] or [height, "
                          f"width, 1 or 3 channels] of floats); dataset {spec.name!r} gives "
                          f"{spec.task} data of shape {list(shape)} ({spec.input_dtype}). Use "
                          "dataset=image_folder, digits, tfrecord or a TFDS image dataset, or "
                          "model=mlp, cnn, rnn or transformer")


def _fetch_failed(ex: BaseException) -> bool:
    """Whether `ex` came out of Keras's download of pretrained weights (keras.utils.get_file)."""
    return any(frame.f_code.co_name == "get_file" and "file_utils" in frame.f_code.co_filename
               for frame, _ in traceback.walk_tb(ex.__traceback__))


def _first_line(ex: BaseException, lines: int = 1) -> str:
    kept = [ln.strip() for ln in str(ex).splitlines() if ln.strip()][:lines]
    return (" ".join(kept) or type(ex).__name__)[:300]


def _weights_error(cfg: KerasAppConfig, ex: BaseException) -> ConfigError:
    cache = os.path.join(os.environ.get("KERAS_HOME", "~/.keras"), "models")
    return ConfigError("model.weights", f"imagenet weights of {cfg.name} could not be fetched "
                       f"({_first_line(ex)}). Offline? Run once with network access (Keras keeps "
                       f"them in {cache}), or use model.weights=none (fresh weights) or "
                       "model.weights=PATH (a weights file of the base)")


def base(cfg: KerasAppConfig, size: tuple[int, int]) -> keras.Model:
    """The application's convolutional base for `size` images, its weights loaded as
    configured. A download that fails and a weights file that does not fit are ConfigErrors
    naming model.weights."""
    build = getattr(keras.applications, cfg.name)
    kwargs = {"include_top": False, "input_shape": (*size, 3), "pooling": "avg",
              "weights": "imagenet" if cfg.weights == "imagenet" else None}
    if "include_preprocessing" in inspect.signature(build).parameters:
        kwargs["include_preprocessing"] = True
    try:
        with warnings.catch_warnings():  # without the top, weights fit any input size
            warnings.filterwarnings("ignore", message=".*will be loaded as the default")
            model = build(**kwargs)
    except Exception as ex:
        if cfg.weights == "imagenet" and _fetch_failed(ex):
            raise _weights_error(cfg, ex) from None
        if isinstance(ex, ValueError):  # Keras's own input checks
            raise ConfigError("model.image_size", f"keras.applications.{cfg.name} refused "
                              f"{size[0]}x{size[1]} images ({_first_line(ex)}); set "
                              "model.image_size=[HEIGHT,WIDTH] to a size it accepts") from None
        raise
    if cfg.weights not in ("imagenet", "none"):
        _load(model, cfg)
    return model


def _load(model: keras.Model, cfg: KerasAppConfig) -> None:
    """Load a weights file into the base (what `keras.applications.X(weights=PATH)` does),
    with a mismatch said in the user's terms."""
    try:
        with warnings.catch_warnings():  # Keras warns once per layer it skips; we refuse
            warnings.simplefilter("ignore")
            model.load_weights(cfg.weights)
    except (ValueError, OSError, KeyError) as ex:
        raise ConfigError("model.weights", f"{cfg.weights} does not fit {cfg.name}'s base "
                          f"({_first_line(ex, lines=2)}). It must hold the weights of "
                          f"keras.applications.{cfg.name}(include_top=False), e.g. written by "
                          "its save_weights (" + ", ".join(WEIGHTS_SUFFIXES) + ")") from None


def fetch_weights(cfg: KerasAppConfig) -> None:
    """Build the base once with its weights (downloading imagenet weights into Keras's cache,
    reading a weights file), so a failure stops `bigtrain fit` before its run dir exists."""
    low = KERAS_APPS[cfg.name]
    base(cfg, image_size(cfg, (low, low)))
    keras.backend.clear_session()  # the run builds its own; layer names start afresh


@MODELS.register(KerasAppConfig)
def build_keras_app(cfg: KerasAppConfig, spec) -> keras.Model:
    _check_images(spec)
    size = image_size(cfg, spec.input_shape)
    inputs = keras.Input(shape=spec.input_shape, dtype=spec.input_dtype, name="inputs")
    x = inputs
    if len(spec.input_shape) == 2:
        x = keras.layers.Reshape((*spec.input_shape, 1), dtype="float32", name="channel")(x)
    if x.shape[-1] == 1:  # grayscale: the base takes RGB
        x = keras.layers.Concatenate(dtype="float32", name="to_rgb")([x, x, x])
    if tuple(x.shape[1:3]) != size:
        x = keras.layers.Resizing(*size, interpolation="bilinear", dtype="float32",
                                  name="resize")(x)
    x = keras.layers.Rescaling(255.0, dtype="float32", name="to_255")(x)
    x = family(cfg.name).preprocess_input(x)  # the application's own (Keras ops)
    backbone = base(cfg, size)
    if cfg.freeze == "backbone":
        backbone.trainable = False
        if cfg.weights == "none":
            log.warning("model.freeze=backbone with model.weights=none trains a head on the "
                        "features of a randomly initialized %s", cfg.name)
    x = backbone(x)
    if cfg.dropout > 0:
        x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(spec.num_outputs, name="head")(x)
    log.info("keras_app %s: %s weights, %dx%d inputs%s", cfg.name, cfg.weights
             if cfg.weights in ("imagenet", "none") else "file", *size,
             ", base frozen" if cfg.freeze == "backbone" else "")
    return keras.Model(inputs, outputs, name=f"keras_app_{cfg.name}")
