"""Structured schemas for every config group.

Each option of a group (conf/<group>/<name>.yaml) starts its defaults list with
`/schema/<group>/<name>@_here_`, so Hydra merges the YAML onto the dataclass below: unknown keys
and wrong types are rejected while composing. Ranges are checked in `__post_init__`, which runs
when the task converts the composed config to these objects (`to_typed`), before TensorFlow is
imported. A new option is one YAML, one dataclass here, and one registered builder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from omegaconf import MISSING, DictConfig, OmegaConf

from bigtrain.config.errors import ConfigError, check, check_choice


class _Validated:
    """Base for group schemas: `group` prefixes keys in error messages."""

    group: ClassVar[str] = ""

    def key(self, name: str) -> str:
        return f"{self.group}.{name}"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:  # overridden per schema
        pass


def _positive(obj: _Validated, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        check(v > 0, obj.key(n), v, "must be > 0")


def _fraction(obj: _Validated, name: str, low_open: bool = False) -> None:
    v = getattr(obj, name)
    ok = (0 < v <= 1) if low_open else (0 <= v < 1)
    check(ok, obj.key(name), v, "must be in (0, 1]" if low_open else "must be in [0, 1)")


# ----------------------------------------------------------------------------- dataset
@dataclass
class DatasetConfig(_Validated):
    group: ClassVar[str] = "dataset"
    name: str = MISSING
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    fraction: float = 1.0  # train on this share of the training split
    seed: int = 0
    shuffle_buffer: int = 10_000

    def validate(self) -> None:
        _fraction(self, "val_fraction")
        _fraction(self, "test_fraction")
        _fraction(self, "fraction", low_open=True)
        total = self.val_fraction + self.test_fraction
        check(total < 1, self.key("val_fraction"), total,
              "val_fraction + test_fraction must leave data to train on (< 1)")
        _positive(self, "shuffle_buffer")


@dataclass
class DigitsConfig(DatasetConfig):
    name: str = "digits"
    normalize: bool = True


@dataclass
class SyntheticConfig(DatasetConfig):
    name: str = "synthetic"
    task: str = "classification"  # classification | regression | lm
    num_examples: int = 4096
    num_features: int = 32
    num_classes: int = 10
    vocab_size: int = 256
    seq_len: int = 64
    noise: float = 0.1

    def validate(self) -> None:
        super().validate()
        check_choice(self.key("task"), self.task, ["classification", "regression", "lm"])
        _positive(self, "num_examples", "num_features", "vocab_size", "seq_len")
        check(self.num_classes >= 2, self.key("num_classes"), self.num_classes, "must be >= 2")
        check(self.noise >= 0, self.key("noise"), self.noise, "must be >= 0")


@dataclass
class TextConfig(DatasetConfig):
    """A language-model corpus from files: `path` is a file, a directory (every file in it,
    recursively), a glob, or `stdlib` (this Python's standard-library .py sources)."""

    name: str = "text"
    path: str = MISSING
    vocab: str = "byte"  # byte (256 ids, any file) | char (characters of the training split)
    seq_len: int = 128
    max_chars: int = 2_000_000  # read at most this much of the corpus (files in sorted order)
    on_bad_record: str = "fail"  # fail | skip: a file that is not UTF-8 (char vocabulary)

    def validate(self) -> None:
        super().validate()
        check(bool(self.path), self.key("path"), self.path,
              "name a file, a directory, a glob, or stdlib")
        check_choice(self.key("vocab"), self.vocab, ["byte", "char"])
        check(self.seq_len >= 2, self.key("seq_len"), self.seq_len, "must be >= 2")
        _positive(self, "max_chars")
        check_choice(self.key("on_bad_record"), self.on_bad_record, ["fail", "skip"])


@dataclass
class CSVConfig(DatasetConfig):
    """A table in a CSV file: one label column, numeric and categorical features."""

    name: str = "csv"
    path: str = MISSING
    label: str = MISSING  # the label column's name
    task: str = "auto"  # auto | classification | regression
    categorical: list[str] = field(default_factory=list)  # also: every non-numeric column
    delimiter: str = ","

    def validate(self) -> None:
        super().validate()
        check(bool(self.path), self.key("path"), self.path, "name a CSV file")
        check(bool(self.label), self.key("label"), self.label, "name the label column")
        check_choice(self.key("task"), self.task, ["auto", "classification", "regression"])
        check(len(self.delimiter) == 1, self.key("delimiter"), self.delimiter,
              "must be one character")


@dataclass
class ImageFolderConfig(DatasetConfig):
    """One sub-directory per class of images (jpg, png, bmp, gif), decoded in the pipeline."""

    name: str = "image_folder"
    path: str = MISSING
    image_size: list[int] = field(default_factory=lambda: [32, 32])  # height, width
    channels: int = 3  # 1 = grayscale, 3 = RGB
    on_bad_record: str = "fail"  # fail | skip: an image that does not decode

    def validate(self) -> None:
        super().validate()
        check(bool(self.path), self.key("path"), self.path, "name a directory of class folders")
        check(len(self.image_size) == 2 and min(self.image_size) > 0, self.key("image_size"),
              self.image_size, "must be [height, width], both > 0")
        check_choice(self.key("channels"), self.channels, [1, 3])
        check_choice(self.key("on_bad_record"), self.on_bad_record, ["fail", "skip"])


@dataclass
class TFDSConfig(DatasetConfig):
    """Any TensorFlow Datasets name (`dataset=tfds dataset.name=mnist`): images or text with
    integer labels. `name` is the TFDS name here; the loader is always `tfds`."""

    loader: ClassVar[str] = "tfds"
    name: str = MISSING
    data_dir: str = "~/tensorflow_datasets"  # where TFDS downloads and prepares data
    download: bool = True
    max_len: int = 256  # text: bytes kept per example (padded with 0, bytes shifted by 1)

    def validate(self) -> None:
        super().validate()
        check(bool(self.name), self.key("name"), self.name, "name a TFDS dataset, e.g. mnist")
        _positive(self, "max_len")


@dataclass
class TextClassificationConfig(DatasetConfig):
    """Texts with labels: a directory with one sub-directory of text files per class, or a
    CSV with a text column and a label column. Texts become UTF-8 bytes (ids 1..256; 0 pads)."""

    name: str = "text_classification"
    path: str = MISSING
    text_column: str = "text"  # CSV only
    label_column: str = "label"  # CSV only
    max_len: int = 256  # bytes kept per text
    on_bad_record: str = "fail"  # fail | skip: a file that is not UTF-8

    def validate(self) -> None:
        super().validate()
        check(bool(self.path), self.key("path"), self.path, "name a directory or a CSV file")
        _positive(self, "max_len")
        check_choice(self.key("on_bad_record"), self.on_bad_record, ["fail", "skip"])


# ----------------------------------------------------------------------------- model
@dataclass
class ModelConfig(_Validated):
    group: ClassVar[str] = "model"
    name: str = MISSING
    dropout: float = 0.0

    def validate(self) -> None:
        _fraction(self, "dropout")


@dataclass
class MLPConfig(ModelConfig):
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    activation: str = "relu"
    norm: str = "none"  # none | batch | layer

    def validate(self) -> None:
        super().validate()
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

    def validate(self) -> None:
        super().validate()
        check(self.vocab_size >= 0, self.key("vocab_size"), self.vocab_size, "must be >= 0")
        check(len(self.widths) > 0, self.key("widths"), self.widths, "needs at least one stage")
        for i, w in enumerate(self.widths):
            check(w > 0, self.key(f"widths[{i}]"), w, "widths must be > 0")
        _positive(self, "blocks_per_stage", "kernel_size")
        check_choice(self.key("activation"), self.activation, ACTIVATIONS)


ACTIVATIONS = ["relu", "gelu", "silu", "tanh", "elu"]


@dataclass
class RNNConfig(ModelConfig):
    name: str = "rnn"
    cell: str = "lstm"  # lstm | gru
    units: int = 128
    num_layers: int = 1
    bidirectional: bool = False  # not for language models, which must not see the future
    vocab_size: int = 0  # classification over token ids only; LMs take the dataset's

    def validate(self) -> None:
        super().validate()
        check_choice(self.key("cell"), self.cell, ["lstm", "gru"])
        _positive(self, "units", "num_layers")
        check(self.vocab_size >= 0, self.key("vocab_size"), self.vocab_size, "must be >= 0")


@dataclass
class TransformerConfig(ModelConfig):
    name: str = "transformer"
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 2
    mlp_ratio: float = 4.0
    positions: str = "learned"  # learned | sinusoidal | rotary
    pooling: str = "cls"  # cls | mean (encoders)
    tie_embeddings: bool = True  # language models: output projection = token embedding
    patch_size: int = 2  # images are cut into patch_size x patch_size patches
    vocab_size: int = 0  # classification over token ids only; LMs take the dataset's

    def validate(self) -> None:
        super().validate()
        _positive(self, "d_model", "num_heads", "num_layers", "mlp_ratio", "patch_size")
        check(self.d_model % self.num_heads == 0, self.key("d_model"), self.d_model,
              f"must be divisible by model.num_heads ({self.num_heads})")
        check_choice(self.key("positions"), self.positions, ["learned", "sinusoidal", "rotary"])
        check_choice(self.key("pooling"), self.pooling, ["cls", "mean"])
        check(self.vocab_size >= 0, self.key("vocab_size"), self.vocab_size, "must be >= 0")


# ----------------------------------------------------------------------------- optim
SCHEDULES = ["constant", "step", "exponential", "cosine", "warmup_cosine", "linear",
             "inverse_sqrt"]


@dataclass
class ScheduleConfig(_Validated):
    """One schema for every schedule kind (`optim/schedule=<name>`); kinds ignore what they
    do not use."""

    group: ClassVar[str] = "optim.schedule"
    name: str = "constant"
    warmup: float = 0.0  # steps if >= 1, else a fraction of the run's total steps
    min_lr_ratio: float = 0.0  # cosine and linear end at lr * min_lr_ratio
    decay_rate: float = 0.5  # step and exponential: multiply by this every decay_steps
    decay_steps: int = 1000

    def validate(self) -> None:
        check_choice(self.key("name"), self.name, SCHEDULES)
        check(self.warmup >= 0, self.key("warmup"), self.warmup,
              "must be >= 0 (steps if >= 1, else a fraction of training)")
        check(0 <= self.min_lr_ratio <= 1, self.key("min_lr_ratio"), self.min_lr_ratio,
              "must be in [0, 1]")
        check(0 < self.decay_rate <= 1, self.key("decay_rate"), self.decay_rate,
              "must be in (0, 1]")
        _positive(self, "decay_steps")
        if self.name == "inverse_sqrt":
            check(self.warmup > 0, self.key("warmup"), self.warmup,
                  "inverse_sqrt needs a warmup > 0 (its decay starts after it)")


@dataclass
class OptimConfig(_Validated):
    group: ClassVar[str] = "optim"
    name: str = MISSING
    lr: float = 1e-3
    weight_decay: float = 0.0  # decoupled; never applied to biases and normalization weights
    ema: float = 0.0  # > 0: keep an exponential moving average of the weights and evaluate it
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def validate(self) -> None:
        _positive(self, "lr")
        check(self.weight_decay >= 0, self.key("weight_decay"), self.weight_decay, "must be >= 0")
        check(0 <= self.ema < 1, self.key("ema"), self.ema, "must be in [0, 1); 0 turns it off")


@dataclass
class SGDConfig(OptimConfig):
    name: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.0
    nesterov: bool = False

    def validate(self) -> None:
        super().validate()
        _fraction(self, "momentum")


@dataclass
class MomentumConfig(SGDConfig):
    name: str = "momentum"
    momentum: float = 0.9


@dataclass
class AdamConfig(OptimConfig):
    name: str = "adam"
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def validate(self) -> None:
        super().validate()
        _fraction(self, "beta_1")
        _fraction(self, "beta_2")
        _positive(self, "epsilon")


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = 0.01


@dataclass
class AdagradConfig(OptimConfig):
    name: str = "adagrad"
    lr: float = 0.05
    initial_accumulator_value: float = 0.1
    epsilon: float = 1e-7

    def validate(self) -> None:
        super().validate()
        _positive(self, "epsilon")
        check(self.initial_accumulator_value >= 0, self.key("initial_accumulator_value"),
              self.initial_accumulator_value, "must be >= 0")


@dataclass
class RMSpropConfig(OptimConfig):
    name: str = "rmsprop"
    rho: float = 0.9
    momentum: float = 0.0
    epsilon: float = 1e-7
    centered: bool = False

    def validate(self) -> None:
        super().validate()
        _fraction(self, "rho")
        _fraction(self, "momentum")
        _positive(self, "epsilon")


@dataclass
class LionConfig(OptimConfig):
    name: str = "lion"
    lr: float = 1e-4
    beta_1: float = 0.9
    beta_2: float = 0.99

    def validate(self) -> None:
        super().validate()
        _fraction(self, "beta_1")
        _fraction(self, "beta_2")


@dataclass
class AdafactorConfig(OptimConfig):
    name: str = "adafactor"
    beta_2_decay: float = -0.8
    epsilon_1: float = 1e-30
    epsilon_2: float = 1e-3
    clip_threshold: float = 1.0

    def validate(self) -> None:
        super().validate()
        check(self.beta_2_decay < 0, self.key("beta_2_decay"), self.beta_2_decay, "must be < 0")
        _positive(self, "epsilon_1", "epsilon_2", "clip_threshold")


# ----------------------------------------------------------------------------- strategy
PRECISIONS = ["fp32", "bf16", "fp16"]


@dataclass
class StrategyConfig(_Validated):
    group: ClassVar[str] = "strategy"
    name: str = MISSING
    precision: str = "fp32"
    jit_compile: bool = False

    def validate(self) -> None:
        check_choice(self.key("precision"), self.precision, PRECISIONS)


@dataclass
class AutoStrategyConfig(StrategyConfig):
    name: str = "auto"


@dataclass
class CPUStrategyConfig(StrategyConfig):
    name: str = "cpu"


@dataclass
class MirroredStrategyConfig(StrategyConfig):
    """All (or the listed) local GPUs; on a machine without GPUs, `logical_cpus` splits the
    CPU into that many devices (for testing the distributed path)."""

    name: str = "mirrored"
    devices: list[int] = field(default_factory=list)  # GPU indices; empty = all
    logical_cpus: int = 0  # > 0 and no GPU: mirror over this many logical CPU devices

    def validate(self) -> None:
        super().validate()
        check(self.logical_cpus >= 0, self.key("logical_cpus"), self.logical_cpus,
              "must be >= 0")


# ----------------------------------------------------------------------------- trainer
LOSSES = ["auto", "cross_entropy", "binary_cross_entropy", "mse", "huber"]


@dataclass
class TrainerConfig(_Validated):
    group: ClassVar[str] = "trainer"
    epochs: int = 10
    max_steps: int = -1  # > 0: train exactly this many steps, whatever `epochs` says
    batch_size: int = 32  # global batch, over all replicas
    eval_batch_size: int = 256
    seed: int = 0
    log_every: int = 20
    eval_every: int = 0  # steps; 0 = at the end of every epoch
    checkpoint_every: int = 0  # steps; 0 = at the end of every epoch
    keep_checkpoints: int = 3
    steps_per_loop: int = 10  # train steps per compiled call (fewer at log/eval/checkpoint points)
    grad_accum: int = 1  # micro-batches per optimizer step; batch_size is split among them
    clip_norm: float = 0.0  # clip gradients to this global norm; 0 = off
    loss: str = "auto"  # auto | cross_entropy | binary_cross_entropy | mse | huber
    label_smoothing: float = 0.0
    huber_delta: float = 1.0
    monitor: str = "val_loss"
    monitor_mode: str = "auto"  # min | max | auto (max for accuracy-like names)
    patience: int = 0  # evaluations without improvement before stopping early; 0 = never
    min_delta: float = 0.0  # the least change of `monitor` that counts as an improvement
    on_nan: str = "stop"  # stop | rollback (to the last good checkpoint, learning rate halved)
    nan_max_rollbacks: int = 3
    progress: str = "auto"  # auto (rich on a terminal, plain lines otherwise) | rich | plain | none
    tensorboard: bool = True
    resume: str = "auto"  # auto | never | force | <run dir to continue from>
    deterministic: bool = False  # seeded + deterministic ops: a resumed run is bitwise exact

    def validate(self) -> None:
        _positive(self, "epochs", "batch_size", "eval_batch_size", "log_every", "keep_checkpoints",
                  "steps_per_loop", "grad_accum")
        check(self.batch_size % self.grad_accum == 0, self.key("grad_accum"), self.grad_accum,
              f"must divide trainer.batch_size ({self.batch_size})")
        check(self.clip_norm >= 0, self.key("clip_norm"), self.clip_norm,
              "must be >= 0 (0 turns clipping off)")
        check_choice(self.key("loss"), self.loss, LOSSES)
        _fraction(self, "label_smoothing")
        _positive(self, "huber_delta")
        check(self.patience >= 0, self.key("patience"), self.patience, "must be >= 0 (0 = off)")
        check(self.min_delta >= 0, self.key("min_delta"), self.min_delta, "must be >= 0")
        check_choice(self.key("on_nan"), self.on_nan, ["stop", "rollback"])
        check(self.nan_max_rollbacks >= 0, self.key("nan_max_rollbacks"),
              self.nan_max_rollbacks, "must be >= 0")
        if self.resume not in ("auto", "never", "force"):
            import os

            check(os.path.isdir(os.path.join(self.resume, "checkpoints")), self.key("resume"),
                  self.resume, "allowed: auto, never, force, or a run dir that has checkpoints/")
        check(self.max_steps == -1 or self.max_steps > 0, self.key("max_steps"), self.max_steps,
              "must be > 0, or -1 to train for `epochs`")
        for n in ("eval_every", "checkpoint_every"):
            v = getattr(self, n)
            check(v >= 0, self.key(n), v, "must be >= 0 (0 = every epoch)")
        check_choice(self.key("monitor_mode"), self.monitor_mode, ["auto", "min", "max"])
        check_choice(self.key("progress"), self.progress, ["auto", "rich", "plain", "none"])
        check(self.monitor.startswith(("val_", "train_")) or self.monitor == "loss",
              self.key("monitor"), self.monitor,
              "name a logged metric such as val_loss, val_accuracy or loss")


# ----------------------------------------------------------------------------- registry
#: (group, option) -> schema. The YAML of option `name` in `group` merges onto this node.
SCHEMAS: dict[tuple[str, str], type] = {
    ("dataset", "digits"): DigitsConfig,
    ("dataset", "synthetic"): SyntheticConfig,
    ("dataset", "text"): TextConfig,
    ("dataset", "text_stdlib"): TextConfig,
    ("dataset", "csv"): CSVConfig,
    ("dataset", "image_folder"): ImageFolderConfig,
    ("dataset", "text_classification"): TextClassificationConfig,
    ("dataset", "tfds"): TFDSConfig,
    ("dataset", "mnist"): TFDSConfig,
    ("dataset", "fashion_mnist"): TFDSConfig,
    ("dataset", "cifar10"): TFDSConfig,
    ("dataset", "imdb_reviews"): TFDSConfig,
    ("model", "mlp"): MLPConfig,
    ("model", "cnn"): CNNConfig,
    ("model", "transformer"): TransformerConfig,
    ("model", "rnn"): RNNConfig,
    ("optim", "sgd"): SGDConfig,
    ("optim", "momentum"): MomentumConfig,
    ("optim", "adam"): AdamConfig,
    ("optim", "adamw"): AdamWConfig,
    ("optim", "adagrad"): AdagradConfig,
    ("optim", "rmsprop"): RMSpropConfig,
    ("optim", "lion"): LionConfig,
    ("optim", "adafactor"): AdafactorConfig,
    ("strategy", "auto"): AutoStrategyConfig,
    ("strategy", "cpu"): CPUStrategyConfig,
    ("strategy", "mirrored"): MirroredStrategyConfig,
    ("trainer", "default"): TrainerConfig,
}

GROUPS = ("dataset", "model", "optim", "strategy", "trainer")


def register_schemas() -> None:
    """Store every schema under `schema/<group>/<option>` in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for (group, option), node in SCHEMAS.items():
        cs.store(group=f"schema/{group}", name=option, node=node)
    cs.store(group="schema/optim/schedule", name="schedule", node=ScheduleConfig)


@dataclass
class FitConfig:
    """The typed view of one run: what the task and builders read."""

    dataset: DatasetConfig
    model: ModelConfig
    optim: OptimConfig
    strategy: StrategyConfig
    trainer: TrainerConfig


def to_typed(cfg: DictConfig) -> FitConfig:
    """Turn a composed config into schema objects, running every range check.

    Raises ConfigError naming the first bad key.
    """
    parts: dict[str, Any] = {}
    for group in GROUPS:
        if group not in cfg:
            raise ConfigError(group, f"missing config group; choose one with `{group}=<option>` "
                              f"(see `bigtrain ls {group}`)")
        node = cfg[group]
        try:
            obj = OmegaConf.to_object(node)
        except ConfigError:
            raise
        except Exception as e:  # missing values, failed interpolations
            raise ConfigError(group, _omegaconf_message(e)) from e
        if not isinstance(obj, _Validated):
            raise ConfigError(group, "this group's config has no schema; its YAML must start with "
                              f"`defaults: [/schema/{group}/<option>@_here_, _self_]`")
        allowed = field_names(type(obj))
        unknown = [k for k in node.keys() if k not in allowed]
        if unknown:
            raise ConfigError(f"{group}.{unknown[0]}",
                              "unknown key. Allowed keys: " + ", ".join(allowed))
        parts[group] = obj
    unknown = [k for k in cfg.keys() if k not in GROUPS]
    if unknown:
        raise ConfigError(str(unknown[0]), "unknown top-level key. Allowed: " + ", ".join(GROUPS))
    return FitConfig(**parts)


def from_resolved(resolved: dict[str, Any]) -> FitConfig:
    """The typed config of a finished run, from its resolved config.yaml."""
    node = {}
    for group in GROUPS:
        part = dict(resolved.get(group) or {})
        option = part.get("name", "default")
        schema = SCHEMAS.get((group, option))
        if schema is None and group == "dataset" and "data_dir" in part:
            schema = TFDSConfig  # its `name` is the TFDS dataset's
        if schema is None:
            raise ConfigError(group, f"this bigtrain does not know {group} option {option!r}")
        node[group] = OmegaConf.merge(OmegaConf.structured(schema), part)
    return to_typed(OmegaConf.create(node))


def _omegaconf_message(e: Exception) -> str:
    msg = getattr(e, "msg", None) or str(e)
    key = getattr(e, "full_key", None)
    first = msg.splitlines()[0] if msg else type(e).__name__
    return f"{first} (key: {key})" if key else first


def field_names(schema: type) -> list[str]:
    return [f.name for f in fields(schema)]
