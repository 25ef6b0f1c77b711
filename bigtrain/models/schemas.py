"""Schemas of the `model` group."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from omegaconf import MISSING

from bigtrain.core import transformers_folder as hf
from bigtrain.core.errors import ConfigError, check, check_choice
from bigtrain.core.schema import GroupSchema, positive, unit_interval


@dataclass
class ModelConfig(GroupSchema):
    group: ClassVar[str] = "model"
    name: str = MISSING
    dropout: float = 0.0  # dropout rate where the architecture applies it

    def validate(self) -> None:
        unit_interval(self, "dropout")

    def precheck(self) -> None:
        """What can be checked of the files the model's config names without TensorFlow (a
        weights file exists): run after the dataset's precheck, by `bigtrain fit` before Hydra
        makes a run dir and by `bigtrain validate`. Raises ConfigError naming the key."""

    def architecture_only(self) -> ModelConfig:
        """This config without pretrained weights to load: what eval, export and predict build
        before they restore a checkpoint that holds every weight, so a run loads where its
        pretrained weights can no longer be fetched or read."""
        return self

    @property
    def tokenizer_preset(self) -> str | None:
        """A model that brings its own tokenizer (a pretrained preset) names it here; text
        datasets then tokenize with it instead of their `dataset.vocab`."""
        return None

    @property
    def trains_all_weights(self) -> bool:
        """False when most weights stay as loaded (LoRA, a frozen backbone): checkpoints then
        hold only the trainable variables, and the base the rest came from."""
        return True

    @property
    def base(self) -> str | None:
        """Where the weights that are not trained come from, for checkpoints to record."""
        return None

    @property
    def recurrent(self) -> bool:
        """True for models built of recurrent layers, whose many small per-time-step ops make
        bf16 slower than fp32 on a CPU: `strategy.precision=auto` then picks fp32 there."""
        return False


@dataclass
class MLPConfig(ModelConfig):
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [256, 128])  # units of each hidden layer
    activation: str = "relu"  # relu | gelu | silu | tanh | elu, after each hidden layer
    norm: str = "none"  # none | batch | layer
    bn_momentum: float = 0.9  # norm=batch: moving statistics' momentum (see CNNConfig)

    def validate(self) -> None:
        super().validate()
        unit_interval(self, "bn_momentum")
        for i, h in enumerate(self.hidden):
            check(h > 0, self.key(f"hidden[{i}]"), h, "layer sizes must be > 0")
        check_choice(self.key("activation"), self.activation, ACTIVATIONS)
        check_choice(self.key("norm"), self.norm, ["none", "batch", "layer"])


@dataclass
class CNNConfig(ModelConfig):
    name: str = "cnn"
    widths: list[int] = field(default_factory=lambda: [32, 64])  # one stage per width
    blocks_per_stage: int = 1  # residual blocks at each width
    kernel_size: int = 3  # square convolution kernels
    activation: str = "relu"  # relu | gelu | silu | tanh | elu, after each hidden layer
    vocab_size: int = 0  # classification over token ids (1-D convolutions over embeddings)
    # batch norm's moving statistics: new = m * old + (1 - m) * batch. Keras's 0.99 averages
    # over ~100 steps and leaves inference-mode outputs wrong for the first few hundred steps
    # of a short run; 0.8 (~5 steps) tracks the training weights even in the 36 steps of 12
    # epochs over a 96-image folder, where 0.9 (~10 steps) still lagged on one seed in three
    # (scripts/bench_models.py image_folder: 1.0 against 0.67); digits is unchanged (0.989).
    bn_momentum: float = 0.8

    def validate(self) -> None:
        super().validate()
        unit_interval(self, "bn_momentum")
        check(self.vocab_size >= 0, self.key("vocab_size"), self.vocab_size, "must be >= 0")
        check(len(self.widths) > 0, self.key("widths"), self.widths, "needs at least one stage")
        for i, w in enumerate(self.widths):
            check(w > 0, self.key(f"widths[{i}]"), w, "widths must be > 0")
        positive(self, "blocks_per_stage", "kernel_size")
        check_choice(self.key("activation"), self.activation, ACTIVATIONS)


ACTIVATIONS = ["relu", "gelu", "silu", "tanh", "elu"]


@dataclass
class RNNConfig(ModelConfig):
    name: str = "rnn"
    cell: str = "gru"  # lstm | gru
    units: int = 128  # units of each recurrent layer
    num_layers: int = 2  # stacked layers
    bidirectional: bool = False  # not for language models, which must not see the future
    vocab_size: int = 0  # classification over token ids only; LMs take the dataset's

    def validate(self) -> None:
        super().validate()
        check_choice(self.key("cell"), self.cell, ["lstm", "gru"])
        positive(self, "units", "num_layers")
        check(self.vocab_size >= 0, self.key("vocab_size"), self.vocab_size, "must be >= 0")

    @property
    def recurrent(self) -> bool:
        return True


#: Keras Applications by constructor name (keras.applications.<name>), with the smallest image
#: side each accepts (Keras's own input checks); model=keras_app resizes smaller images to it
KERAS_APPS = {
    **dict.fromkeys(["ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge",
                     "ConvNeXtXLarge"], 32),
    **dict.fromkeys(["DenseNet121", "DenseNet169", "DenseNet201"], 32),
    **dict.fromkeys([f"EfficientNetB{i}" for i in range(8)], 32),
    **dict.fromkeys([f"EfficientNetV2{v}" for v in ("B0", "B1", "B2", "B3", "S", "M", "L")], 32),
    "InceptionResNetV2": 75,
    "InceptionV3": 75,
    **dict.fromkeys(["MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large"], 32),
    **dict.fromkeys(["NASNetMobile", "NASNetLarge"], 32),
    **dict.fromkeys(["ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2",
                     "ResNet152V2"], 32),
    **dict.fromkeys(["VGG16", "VGG19"], 32),
    "Xception": 71,
}
#: the weights files Keras's load_weights reads
WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")


@dataclass
class KerasAppConfig(ModelConfig):
    """A Keras Applications model as an image classifier: the application's convolutional base
    (`include_top=False`), global average pooling and a dense head with the dataset's classes.
    The application's own input preprocessing runs inside the model (bigtrain/models/
    keras_app.py), so the images are configured once, in the dataset."""

    option: ClassVar[str] = "keras_app"  # `name` is the application's
    name: str = "MobileNetV3Small"  # the application, e.g. MobileNetV3Small, EfficientNetV2B0
    # imagenet (Keras's pretrained weights, downloaded once into ~/.keras/models), none (fresh
    # weights), or a file of the base's weights (what the application's save_weights writes)
    weights: str = "imagenet"
    freeze: str = "none"  # none | backbone (train the head only)
    # [height, width] the base sees; empty: the data's size, each side raised to the
    # application's minimum (32; Xception 71; InceptionV3, InceptionResNetV2 75)
    image_size: list[int] = field(default_factory=list)
    dropout: float = 0.2  # before the head

    def validate(self) -> None:
        super().validate()
        check_choice(self.key("name"), self.name, KERAS_APPS)
        check(bool(self.weights), self.key("weights"), self.weights,
              "imagenet, none, or the path of a weights file")
        check_choice(self.key("freeze"), self.freeze, ["none", "backbone"])
        low = KERAS_APPS[self.name]
        check(not self.image_size or (len(self.image_size) == 2 and min(self.image_size) >= low),
              self.key("image_size"), self.image_size, f"[height, width], each >= {low} for "
              f"{self.name}, or [] for the data's size")

    def precheck(self) -> None:
        if self.weights in ("imagenet", "none"):
            return
        path = Path(self.weights).expanduser()
        if not path.is_file():
            raise ConfigError(self.key("weights"), f"{self.weights} "
                              + ("is not a file" if path.exists() else "does not exist")
                              + "; allowed: imagenet, none, or a weights file of "
                              f"{self.name}'s base (" + ", ".join(WEIGHTS_SUFFIXES) + ")")
        if not path.name.endswith(WEIGHTS_SUFFIXES):
            raise ConfigError(self.key("weights"), f"{self.weights} is not a weights file "
                              "Keras reads; its name must end in " + ", ".join(WEIGHTS_SUFFIXES))

    def architecture_only(self) -> ModelConfig:
        return dataclasses.replace(self, weights="none")


@dataclass
class TransformerConfig(ModelConfig):
    name: str = "transformer"
    d_model: int = 64  # width of the residual stream (embeddings, attention)
    num_heads: int = 4  # attention heads; must divide d_model
    num_layers: int = 2  # stacked layers
    mlp_ratio: float = 4.0  # the MLP's width over d_model
    positions: str = "learned"  # learned | sinusoidal | rotary
    pooling: str = "cls"  # cls | mean (encoders)
    tie_embeddings: bool = True  # language models: output projection = token embedding
    patch_size: int = 4  # images are cut into patch_size x patch_size patches
    vocab_size: int = 0  # classification over token ids only; LMs take the dataset's
    # recompute each block's activations in the backward pass (tf.recompute_grad): only the
    # blocks' inputs are kept, for ~1/3 more compute; dropout masks are redrawn alike
    remat: bool = False

    def validate(self) -> None:
        super().validate()
        positive(self, "d_model", "num_heads", "num_layers", "mlp_ratio", "patch_size")
        check(self.d_model % self.num_heads == 0, self.key("d_model"), self.d_model,
              f"must be divisible by model.num_heads ({self.num_heads})")
        check_choice(self.key("positions"), self.positions, ["learned", "sinusoidal", "rotary"])
        check_choice(self.key("pooling"), self.pooling, ["cls", "mean"])
        check(self.vocab_size >= 0, self.key("vocab_size"), self.vocab_size, "must be >= 0")


@dataclass
class HubConfig(ModelConfig):
    """A pretrained KerasHub preset, fine-tuned: the head follows the dataset (a causal LM for
    a language-model corpus, a classifier with the dataset's classes otherwise), text is
    tokenized with the preset's own tokenizer. `lora_rank > 0` trains low-rank adapters only
    (plus the head); `freeze=backbone` trains the head only."""

    name: str = "hub"
    # a KerasHub preset: a built-in name (gpt2_base_en, bert_tiny_en_uncased, ...), a
    # kaggle://... or hf://... handle, a local preset directory (save_to_preset's), or a
    # Hugging Face Transformers folder (config.json, model.safetensors, tokenizer files)
    preset: str = MISSING
    load_weights: bool = True  # false: the preset's architecture with fresh weights
    lora_rank: int = 0  # > 0: low-rank adapters of this rank on lora_targets; 0: off
    lora_alpha: float = 0.0  # adapter scale alpha / rank; 0: alpha = rank (scale 1)
    # the layers that get adapters, by name; empty: the backbone's default (attention
    # query and value projections)
    lora_targets: list[str] = field(default_factory=list)
    # backbone layers trained in full beside the adapters, by name (layer norms, the token
    # embedding: what shifts a preset to a new corpus cheaply); LoRA only
    train_layers: list[str] = field(default_factory=list)
    freeze: str = "none"  # none | backbone (head-only training)
    # bigtrain's fused kernels under the preset's Keras layers (bigtrain.models.fuse): the
    # same weights, Keras's results outside training, faster steps (dropout draws its own
    # masks); false runs Keras's own layer calls
    fused: bool = True

    def validate(self) -> None:
        super().validate()
        check(bool(self.preset), self.key("preset"), self.preset,
              "name a KerasHub preset: a built-in name, kaggle://..., hf://..., or a "
              "local preset directory")
        check(self.lora_rank >= 0, self.key("lora_rank"), self.lora_rank,
              "must be >= 0 (0: no adapters)")
        check(self.lora_alpha >= 0, self.key("lora_alpha"), self.lora_alpha,
              "must be >= 0 (0: alpha = rank)")
        check_choice(self.key("freeze"), self.freeze, ["none", "backbone"])
        check(not (self.lora_rank and self.freeze == "backbone"), self.key("freeze"),
              self.freeze, "backbone trains the head only; with model.lora_rank > 0 the "
              "adapters train too: use model.freeze=none with LoRA")
        check(not self.train_layers or self.lora_rank > 0, self.key("train_layers"),
              self.train_layers, "names layers to train in full beside LoRA adapters; set "
              "model.lora_rank > 0 (without adapters every layer trains)")

    def precheck(self) -> None:
        if "://" in self.preset:
            return
        path = Path(self.preset).expanduser()
        looks_local = os.sep in self.preset or self.preset.startswith(".")
        if looks_local and not path.is_dir():
            raise ConfigError(self.key("preset"), f"{self.preset} is not a directory; a local "
                              "preset is a directory written by KerasHub's save_to_preset")
        if path.is_dir() and not (path / "config.json").is_file():
            raise ConfigError(self.key("preset"), f"{self.preset} has no config.json, so it is "
                              "neither a KerasHub preset (save_to_preset writes config.json, "
                              "metadata.json and model.weights.h5) nor a Transformers folder "
                              "(config.json, model.safetensors, tokenizer files)")
        if path.is_dir() and hf.is_transformers(path):
            hf.weight_files(path, self.key("preset"))

    def architecture_only(self) -> ModelConfig:
        # a run that trained every weight has them all in its checkpoints; LoRA and a frozen
        # backbone need the base's weights under the trained ones
        return dataclasses.replace(self, load_weights=False) if self.trains_all_weights \
            else self

    @property
    def tokenizer_preset(self) -> str | None:
        return self.preset

    @property
    def trains_all_weights(self) -> bool:
        return self.lora_rank == 0 and self.freeze == "none"

    @property
    def base(self) -> str | None:
        return self.preset if self.load_weights and not self.trains_all_weights else None
