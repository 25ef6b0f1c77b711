"""Schemas of the `model` group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

from bigtrain.config.base import GroupSchema, positive, unit_interval
from bigtrain.config.errors import check, check_choice


@dataclass
class ModelConfig(GroupSchema):
    group: ClassVar[str] = "model"
    name: str = MISSING
    dropout: float = 0.0

    def validate(self) -> None:
        unit_interval(self, "dropout")


@dataclass
class MLPConfig(ModelConfig):
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    activation: str = "relu"
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
    blocks_per_stage: int = 1
    kernel_size: int = 3
    activation: str = "relu"
    vocab_size: int = 0  # classification over token ids (1-D convolutions over embeddings)
    # batch norm's moving statistics: new = m * old + (1 - m) * batch. Keras's 0.99 averages
    # over ~100 steps and leaves inference-mode outputs wrong for the first few hundred steps
    # of a short run; 0.9 tracks the training weights within a few dozen steps.
    bn_momentum: float = 0.9

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
    units: int = 128
    num_layers: int = 2
    bidirectional: bool = False  # not for language models, which must not see the future
    vocab_size: int = 0  # classification over token ids only; LMs take the dataset's

    def validate(self) -> None:
        super().validate()
        check_choice(self.key("cell"), self.cell, ["lstm", "gru"])
        positive(self, "units", "num_layers")
        check(self.vocab_size >= 0, self.key("vocab_size"), self.vocab_size, "must be >= 0")


@dataclass
class TransformerConfig(ModelConfig):
    name: str = "transformer"
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    mlp_ratio: float = 4.0
    positions: str = "learned"  # learned | sinusoidal | rotary
    pooling: str = "cls"  # cls | mean (encoders)
    tie_embeddings: bool = True  # language models: output projection = token embedding
    patch_size: int = 4  # images are cut into patch_size x patch_size patches
    vocab_size: int = 0  # classification over token ids only; LMs take the dataset's

    def validate(self) -> None:
        super().validate()
        positive(self, "d_model", "num_heads", "num_layers", "mlp_ratio", "patch_size")
        check(self.d_model % self.num_heads == 0, self.key("d_model"), self.d_model,
              f"must be divisible by model.num_heads ({self.num_heads})")
        check_choice(self.key("positions"), self.positions, ["learned", "sinusoidal", "rotary"])
        check_choice(self.key("pooling"), self.pooling, ["cls", "mean"])
        check(self.vocab_size >= 0, self.key("vocab_size"), self.vocab_size, "must be >= 0")
