"""Pretrained models from KerasHub presets, fine-tuned in bigtrain's own loop.

`model=hub model.preset=HANDLE` loads the preset's backbone and the KerasHub task that fits
the dataset: its `CausalLM` for a language-model corpus, its `TextClassifier` for labelled
texts (token ids), its `ImageClassifier` for images, each with the dataset's classes. The task
sits inside a functional model that takes what bigtrain's pipelines give (one tensor of token
ids or images) and builds the dict a KerasHub backbone wants (`token_ids`, `padding_mask`,
`segment_ids` where the backbone has them). Text datasets tokenize with the preset's own
tokenizer (`HubConfig.tokenizer_preset`), so ids and vocabulary always agree.

LoRA (`model.lora_rank > 0`) freezes the backbone and adds adapters to the layers named by
`model.lora_targets` (by default the attention query and value projections); the task's own
head outside the backbone stays trainable. Such a run's checkpoints hold only what it trains
(`trains_all_weights` is false) and record the base preset with a content hash (`base_record`),
so a resume or an export against another base is refused. `model.train_layers` names backbone
layers that train in full beside the adapters.

The task's Keras layers run bigtrain's fused kernels (`model.fused`, bigtrain.models.fuse).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import sys
from typing import Any

import keras
import numpy as np
from keras import ops

from bigtrain.core import transformers_folder as hf
from bigtrain.core.errors import ConfigError
from bigtrain.models import MODELS
from bigtrain.models.fuse import fuse
from bigtrain.models.schemas import HubConfig

log = logging.getLogger("bigtrain")

#: the files of a KerasHub preset whose bytes make up its content hash
_HASHED = ("config.json", "model.weights.h5", "model.safetensors")


def _preset_utils():
    from keras_hub.src.utils import preset_utils

    return preset_utils


def _is_local(handle: str) -> bool:
    return "://" not in handle and (os.sep in handle or handle.startswith(".")
                                    or os.path.exists(os.path.expanduser(handle)))


def locate(handle: str) -> str:
    """The preset handle as KerasHub takes it (a local directory expanded), once its
    config.json is readable: fetched (and cached by KerasHub) for built-in names and
    kaggle:// or hf:// handles. A handle that cannot be found or fetched is a ConfigError
    naming model.preset, with the reason."""
    utils = _preset_utils()
    if _is_local(handle):
        path = os.path.expanduser(handle)
        if not os.path.isdir(path):
            raise ConfigError("model.preset", f"{handle} is not a directory; a local preset is "
                              "a directory written by KerasHub's save_to_preset")
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ConfigError("model.preset", f"{handle} has no config.json, so it is neither "
                              "a KerasHub preset (save_to_preset writes config.json, "
                              "metadata.json and model.weights.h5) nor a Transformers folder "
                              "(config.json, model.safetensors, tokenizer files)")
        if hf.is_transformers(path):
            hf.weight_files(path)  # safetensors, never a pickle
        return path
    if "://" not in handle and handle not in utils.BUILTIN_PRESETS:
        near = sorted(n for n in utils.BUILTIN_PRESETS if handle.split("_")[0] in n)[:8]
        raise ConfigError("model.preset", f"{handle!r} is not a KerasHub preset: not a "
                          "built-in name, a kaggle:// or hf:// handle, or a local directory"
                          + (f". Built-in names like it: {', '.join(near)}" if near else ""))
    try:
        utils.get_file(handle, "config.json")
    except ImportError as ex:  # the hub's client package (kagglehub, huggingface_hub) is missing
        raise ConfigError("model.preset", f"cannot fetch {handle}: {ex}") from ex
    except FileNotFoundError as ex:
        # KerasHub says this of a preset that does not exist, and of an hf:// preset when the
        # Hugging Face hub cannot be reached: its client reports both alike
        raise ConfigError("model.preset", f"cannot fetch {handle}: {_first_line(ex)}. Check the "
                          "handle; if this machine has no network access, download the preset "
                          "once elsewhere and pass its local directory (KerasHub's "
                          "save_to_preset)") from ex
    except OSError as ex:  # connection, DNS and HTTP errors: requests' and urllib's are OSErrors
        raise ConfigError("model.preset", f"cannot fetch {handle}: the hub could not be "
                          "reached; without network access, download it once elsewhere and "
                          "pass the local preset directory (KerasHub's save_to_preset). The "
                          f"error: {_first_line(ex)}") from ex
    config = utils.load_json(handle, "config.json")
    if hf.is_transformers_config(config):
        _check_remote_weights(handle)
    return handle


def _check_remote_weights(handle: str) -> None:
    """A hub handle of a Transformers model must have safetensors weights: KerasHub's
    loader reads nothing else, and bigtrain never loads a pickle."""
    utils = _preset_utils()
    if utils.check_file_exists(handle, hf.SAFETENSORS) or \
            utils.check_file_exists(handle, hf.SAFETENSORS_INDEX):
        return
    if any(utils.check_file_exists(handle, p) for p in hf.PICKLES[:2]):
        raise ConfigError("model.preset", f"{handle} holds its weights only as "
                          "pytorch_model.bin, a Python pickle, which can run code when "
                          "loaded: bigtrain reads safetensors only. Choose a revision or a "
                          "copy of the model with model.safetensors")
    raise ConfigError("model.preset", f"{handle} has no {hf.SAFETENSORS}")


#: the longest error line quoted whole; a longer one is cut at a word, with an ellipsis
_QUOTED = 1000


def _first_line(ex: BaseException) -> str:
    """The first line of an error, whole (a connection error's reason is at its end)."""
    line = next((ln.strip() for ln in str(ex).splitlines() if ln.strip()), "")
    if not line:
        return type(ex).__name__
    if len(line) <= _QUOTED:
        return line
    return line[:_QUOTED].rsplit(" ", 1)[0] + " ..."


def base_record(handle: str) -> str:
    """What a run fine-tuned, as a JSON string: the handle, the backbone class and a SHA-256
    over the preset's config and weight files (about a second per GB)."""
    utils = _preset_utils()
    preset = locate(handle)
    digest = hashlib.sha256()
    config = utils.load_json(preset, "config.json")
    if hf.is_transformers_config(config):
        names = ["config.json"] + _remote_weight_names(preset)
        kind = f"transformers {config.get('model_type')}"
    else:
        names = [n for n in _HASHED if utils.check_file_exists(preset, n)]
        kind = config.get("class_name")
    for name in names:
        with open(utils.get_file(preset, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return json.dumps({"preset": handle, "class": kind, "sha256": digest.hexdigest()},
                      sort_keys=True)


def _remote_weight_names(preset: str) -> list[str]:
    """The safetensors files of a Transformers model (one, or the shards of its index)."""
    utils = _preset_utils()
    if _is_local(preset):
        return [p.name for p in hf.weight_files(os.path.expanduser(preset))]
    if utils.check_file_exists(preset, hf.SAFETENSORS):
        return [hf.SAFETENSORS]
    index = utils.load_json(preset, hf.SAFETENSORS_INDEX)
    return [hf.SAFETENSORS_INDEX] + sorted(set(index["weight_map"].values()))


def describe_base(record: str) -> str:
    try:
        r = json.loads(record)
    except ValueError:
        return record
    return f"{r.get('preset')} ({r.get('class')}, sha256 {str(r.get('sha256'))[:12]})"


def preset_tokenizer(handle: str):
    """The preset's own KerasHub tokenizer layer, or None if the preset has none."""
    import keras_hub

    preset = locate(handle)
    files = hf.TOKENIZER_FILES if is_transformers_preset(preset) else ("tokenizer.json",)
    if not any(_preset_utils().check_file_exists(preset, f) for f in files):
        return None
    return keras_hub.tokenizers.Tokenizer.from_preset(preset)


def transformers_folder(handle: str):
    """The local folder of a Transformers-format base (a hub handle's cached snapshot, its
    tokenizer and template files fetched), None for a KerasHub preset."""
    from pathlib import Path

    from bigtrain.models.hf_export import TOKENIZER_FILES

    preset = locate(handle)
    if not is_transformers_preset(preset):
        return None
    if _is_local(preset):
        return Path(os.path.expanduser(preset))
    utils = _preset_utils()
    for name in (*TOKENIZER_FILES, hf.CHAT_TEMPLATE):
        if utils.check_file_exists(preset, name):
            utils.get_file(preset, name)
    return Path(utils.get_file(preset, "config.json")).parent


def is_transformers_preset(preset: str) -> bool:
    """Whether a located preset is a Transformers-format model (not a KerasHub preset)."""
    return hf.is_transformers_config(_preset_utils().load_json(preset, "config.json"))


def _task_class(spec, handle: str):
    import keras_hub

    if spec.task == "lm":
        return keras_hub.models.CausalLM, "a causal language model"
    if spec.task == "classification":
        if spec.input_dtype.startswith("int"):
            return keras_hub.models.TextClassifier, "a text classifier"
        if len(spec.input_shape) in (2, 3):
            return keras_hub.models.ImageClassifier, "an image classifier"
        raise ConfigError("model.preset", f"model=hub classifies texts (token ids) and images "
                          f"([H, W] or [H, W, C]); the dataset {spec.name} gives inputs of shape "
                          f"{list(spec.input_shape)}: use model=mlp or model=transformer")
    raise ConfigError("model.preset", f"model=hub fine-tunes language models and classifiers; "
                      f"the dataset {spec.name} is a {spec.task} task")


def load_task(cfg: HubConfig, spec, num_classes: int | None = None):
    """The KerasHub task for the dataset's task, without a preprocessor (bigtrain's pipeline
    tokenizes), in the current Keras dtype policy."""
    preset = locate(cfg.preset)
    cls, what = _task_class(spec, cfg.preset)
    kwargs: dict[str, Any] = {"preprocessor": None, "load_weights": cfg.load_weights,
                              "dtype": keras.config.dtype_policy().name}
    if cls.__name__ != "CausalLM":
        kwargs["num_classes"] = num_classes or spec.num_outputs
    sub = _find_task(cls, preset)
    try:
        if "dropout" in inspect.signature(sub.__init__).parameters and cfg.dropout:
            kwargs["dropout"] = cfg.dropout
        config = _preset_utils().load_json(preset, "config.json")
        if hf.is_transformers_config(config) and "architectures" not in config:
            # KerasHub's own exporter leaves `architectures` out for some families, and its
            # Transformers loader needs it for a task: build the task on the backbone
            backbone = sub.backbone_cls.from_preset(preset, load_weights=cfg.load_weights,
                                                    dtype=kwargs["dtype"])
            rest = {k: v for k, v in kwargs.items() if k not in ("load_weights", "dtype")}
            return sub(backbone=backbone, **rest)
        return sub.from_preset(preset, **kwargs)
    except (ValueError, FileNotFoundError) as ex:
        raise ConfigError("model.preset", f"{cfg.preset} cannot be loaded as {what}: "
                          f"{_first_line(ex)}") from ex


def _find_task(cls, preset: str):
    """The task subclass of `cls` for the preset's backbone (GPT2CausalLM for a GPT2Backbone);
    a ConfigError naming the backbone when the preset has none (an image backbone on text)."""
    utils = _preset_utils()
    try:
        backbone_cls = utils.get_preset_loader(preset).check_backbone_class()
    except (ValueError, FileNotFoundError, KeyError) as ex:
        raise ConfigError("model.preset", f"{preset} is not a preset KerasHub can read: "
                          f"{_first_line(ex)}") from ex
    try:
        return utils.find_subclass(preset, cls, backbone_cls)
    except ValueError as ex:
        raise ConfigError("model.preset", f"{preset} is a {backbone_cls.__name__}, which has "
                          f"no KerasHub {cls.__name__}; the dataset needs one: choose a "
                          "preset made for it") from ex


def enable_lora(backbone, rank: int, alpha: float, targets: list[str],
                train: list[str] = ()) -> int:
    """Freeze the backbone and add rank-`rank` adapters (scale alpha / rank) to every layer
    named in `targets`, keeping the layers named in `train` trainable in full; return how many
    layers got adapters. Mirrors KerasHub's Backbone.enable_lora, which has no alpha."""
    names = list(targets) or list(backbone.default_lora_layer_names())
    layers = [lyr for lyr in backbone._flatten_layers(include_self=False) if lyr.weights]
    for lyr in layers:
        lyr.trainable = False
    if train:
        missing = sorted(set(train) - {lyr.name for lyr in layers})
        if missing:
            found = sorted({lyr.name for lyr in layers if not lyr._layers})
            raise ConfigError("model.train_layers", f"no layer of {type(backbone).__name__} "
                              f"is named {', '.join(missing)}; layers with weights: "
                              + ", ".join(found[:16]) + (" ..." if len(found) > 16 else ""))
        for lyr in layers:
            if lyr.name in train:
                lyr.trainable = True
    adapted = 0
    for lyr in layers:
        if lyr.name in names and hasattr(lyr, "enable_lora"):
            lyr.trainable = True
            lyr.enable_lora(rank, lora_alpha=alpha or None)
            adapted += 1
    if not adapted:
        found = sorted({lyr.name for lyr in layers if hasattr(lyr, "enable_lora")})
        shown = ", ".join(found[:12]) + (" ..." if len(found) > 12 else "")
        raise ConfigError("model.lora_targets" if targets else "model.lora_rank",
                          f"no layer of {type(backbone).__name__} is named "
                          f"{', '.join(names)}; layers that can take adapters: "
                          + (shown or "none (this backbone has no Dense/EinsumDense layer)"))
    return adapted


def wrap(task, spec, pad_id: int = 0, image: dict | None = None) -> keras.Model:
    """A functional model around the KerasHub task that takes bigtrain's model inputs: token
    ids, or images scaled to [0, 1] (grayscale repeated to RGB, then resized and normalized
    as the preset's image converter does to images in 0-255: `image_prep`)."""
    backbone = task.backbone
    if spec.task == "lm" or spec.input_dtype.startswith("int"):
        ids = keras.Input(shape=spec.input_shape, dtype="int32", name="tokens")
        wanted = backbone.input if isinstance(backbone.input, dict) else {}
        packed = spec.task == "lm"  # LM windows are full: every position is a real token
        inputs = {"token_ids": ids,
                  "padding_mask": ops.ones_like(ids, dtype="bool") if packed
                  else ops.not_equal(ids, pad_id)}
        if "segment_ids" in wanted:
            inputs["segment_ids"] = ops.zeros_like(ids)
        model = keras.Model(ids, task(inputs), name=f"hub_{task.name}")
    else:
        images = keras.Input(shape=spec.input_shape, dtype="float32", name="images")
        x = images
        if len(spec.input_shape) == 2:
            x = keras.layers.Reshape((*spec.input_shape, 1), name="channel")(x)
        if x.shape[-1] == 1:
            x = keras.layers.Concatenate(name="rgb")([x, x, x])
        if image is not None:
            # ops, not KerasHub's converter or Keras's Resizing layer: either makes the task
            # after it run in training mode when the model is called without `training`
            x = x * 255.0
            if image["size"]:
                x = ops.image.resize(x, image["size"], interpolation=image["interpolation"],
                                     crop_to_aspect_ratio=image["crop"])
            x = x * np.asarray(image["scale"], "float32") + np.asarray(image["offset"],
                                                                      "float32")
        model = keras.Model(images, task(x), name=f"hub_{task.name}")
    # what merged() needs to rebuild the same wrapper, kept out of Keras's tracking
    object.__setattr__(model, "_bigtrain_wrap", {"pad_id": pad_id, "image": image})
    return model


def image_prep(handle: str) -> dict | None:
    """What the preset's ImageConverter does to images in 0-255 (resize, then scale and
    offset per channel), or None if the preset has none."""
    import keras_hub

    preset = locate(handle)
    if not _preset_utils().check_file_exists(preset, "image_converter.json"):
        return None
    conv = keras_hub.layers.ImageConverter.from_preset(preset)
    resizing = conv.resizing.get_config() if conv.image_size is not None else {}
    return {"size": list(conv.image_size) if conv.image_size is not None else None,
            "interpolation": resizing.get("interpolation", "bilinear"),
            "crop": bool(resizing.get("crop_to_aspect_ratio", False)),
            "scale": 1.0 if conv.scale is None else np.asarray(conv.scale).tolist(),
            "offset": 0.0 if conv.offset is None else np.asarray(conv.offset).tolist()}


def _check_images(spec, handle: str) -> None:
    if spec.input_dtype.startswith("int") or spec.task == "lm":
        return
    if len(spec.input_shape) == 3 and spec.input_shape[-1] not in (1, 3):
        raise ConfigError("dataset", f"{handle} takes RGB images; the data's images have "
                          f"{spec.input_shape[-1]} channels (1 or 3 are allowed)")


def _check_length(backbone, spec, handle: str) -> None:
    longest = getattr(backbone, "max_sequence_length", None)
    if spec.input_dtype.startswith("int") and longest and spec.input_shape[0] > longest:
        key = "dataset.seq_len" if spec.task == "lm" else "dataset.max_len"
        unset = " (or leave dataset.max_len unset: it follows the preset)" \
            if key == "dataset.max_len" else ""
        raise ConfigError(key, f"{spec.input_shape[0]} is beyond {handle}'s maximum sequence "
                          f"length ({longest}); use {longest} or less{unset}")


def _check_vocab(backbone, spec, handle: str) -> None:
    """Token ids must be the preset's: a language model's vocabulary is the preset's exactly
    (its logits are over the preset's tokens), a classifier's ids fit in it."""
    size = getattr(backbone, "vocabulary_size", None)
    if not size:
        return
    if spec.task == "lm" and spec.num_outputs != size:
        raise ConfigError("dataset", f"the data has a vocabulary of {spec.num_outputs} tokens "
                          f"and {handle} one of {size}: a language model fine-tunes on the "
                          "preset's own tokens (dataset=text tokenizes with the preset's "
                          "tokenizer)")
    if spec.task != "lm" and spec.input_vocab > size:
        raise ConfigError("dataset", f"the data's token ids go up to {spec.input_vocab - 1}, "
                          f"beyond {handle}'s vocabulary ({size}); text datasets take the "
                          "preset's own tokenizer")


@MODELS.register(HubConfig)
def build_hub(cfg: HubConfig, spec) -> keras.Model:
    task = load_task(cfg, spec)
    if getattr(spec, "packed", False):
        from bigtrain.models import hub_packing

        log.debug("packing: %d layers take packed windows", hub_packing.enable(task))
    backbone = task.backbone
    _check_length(backbone, spec, cfg.preset)
    _check_vocab(backbone, spec, cfg.preset)
    if cfg.lora_rank:
        n = enable_lora(backbone, cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets,
                        cfg.train_layers)
        log.info("LoRA: rank %d adapters on %d layers of %s", cfg.lora_rank, n,
                 type(backbone).__name__)
    elif cfg.freeze == "backbone":
        backbone.trainable = False
    if cfg.fused:
        log.debug("fused kernels: %s", fuse(task))
    tokens = spec.input_dtype.startswith("int")
    _check_images(spec, cfg.preset)
    tokenizer = preset_tokenizer(cfg.preset) if tokens else None
    pad_id = int(getattr(tokenizer, "pad_token_id", None) or 0) if tokenizer is not None else 0
    model = wrap(task, spec, pad_id, None if tokens else image_prep(cfg.preset))
    log.info("model hub: %s (%s), %s weights", cfg.preset, type(task).__name__,
             "pretrained" if cfg.load_weights else "fresh")
    return model


def hub_task(model):
    """The KerasHub task inside a model `build_hub` made."""
    import keras_hub

    for layer in model.layers:
        if isinstance(layer, keras_hub.models.Task):
            return layer
    raise ValueError(f"{model.name} holds no KerasHub task")


def holds_hub_task(model) -> bool:
    """Whether `model` holds a KerasHub task; False at once, without importing keras_hub
    (1.6 s), when nothing has imported it: no model could hold a task then."""
    if "keras_hub" not in sys.modules:
        return False
    try:
        hub_task(model)
    except (ValueError, ImportError):
        return False
    return True


def save_preset(model, directory, base: str, sequence_length: int | None = None) -> None:
    """Write the model's KerasHub task as a preset directory, adapters merged into the weights
    (Keras saves a LoRA layer's kernel as kernel + scale * A @ B), with the base preset's
    preprocessor (its tokenizer, packing to `sequence_length`) attached when the base has a
    tokenizer: `keras_hub.models.<Task>.from_preset(directory)` then loads it in a plain
    Python process and takes raw text."""
    task = hub_task(model)
    pre_cls = getattr(type(task), "preprocessor_cls", None)
    preset = locate(base)
    attach = pre_cls is not None and task.preprocessor is None and \
        _preset_utils().check_file_exists(preset, "tokenizer.json")
    if attach:
        kwargs = {"sequence_length": sequence_length} if sequence_length else {}
        task.preprocessor = pre_cls.from_preset(preset, **kwargs)
    try:
        task.save_to_preset(str(directory))
    finally:
        if attach:
            task.preprocessor = None


def merged(model, spec, dtype: str = "float32") -> keras.Model:
    """A copy of a hub model without adapters: the task reloaded from a preset written by
    `save_preset` (merged weights, the task's head included), wrapped like `build_hub`'s, in
    `dtype`."""
    import tempfile

    task = hub_task(model)
    pad_id = _pad_id_of(model)
    with tempfile.TemporaryDirectory(prefix="bigtrain-merge-") as d:
        task.save_to_preset(d)
        plain = type(task).from_preset(d, preprocessor=None, dtype=dtype)
    _merge_in_float32(task, plain)
    return wrap(plain, spec, pad_id, model._bigtrain_wrap["image"])


def _merge_in_float32(task, plain) -> None:
    """Keras merges an adapter into its kernel in the layer's compute dtype when it saves
    (bfloat16 in a bf16 run): set each adapted kernel of `plain` to kernel + scale * A @ B
    computed in float32 from the trained variables instead."""
    adapted = {lyr.path: lyr for lyr in task._flatten_layers(include_self=False)
               if getattr(lyr, "lora_enabled", False)}
    if not adapted:
        return
    for lyr in plain._flatten_layers(include_self=False):
        source = adapted.get(lyr.path)
        if source is None:
            continue
        a = np.asarray(source.lora_kernel_a, np.float32)
        b = np.asarray(source.lora_kernel_b, np.float32)
        merged = np.asarray(source._kernel, np.float32) + \
            (float(source.lora_alpha) / source.lora_rank) * np.matmul(a, b)
        lyr._kernel.assign(merged.astype(lyr._kernel.dtype))


def _pad_id_of(model) -> int:
    return int(model._bigtrain_wrap["pad_id"])
