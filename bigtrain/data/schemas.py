"""Schemas of the `dataset` group: one dataclass per source."""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from omegaconf import MISSING

from bigtrain.core.errors import ConfigError, check, check_choice
from bigtrain.core.schema import GroupSchema, positive, unit_interval
from bigtrain.data import columns, tokenizers

#: the image files image_folder reads (bigtrain/data/image_folder.py keeps the same list)
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
#: `dataset.vocab` kinds learned from the training split (bigtrain/data/tokenizers.py)


@dataclass
class AugmentConfig(GroupSchema):
    """Training-split augmentation, seeded per epoch and example (exact resume keeps working).
    Images (inputs of shape [H, W] or [H, W, C]): crop, flip, rotation, cutout; any
    classification data: mixup; token inputs: token_mask. 0 or false switches one off."""

    group: ClassVar[str] = "dataset.augment"
    crop: int = 0  # pad by this many pixels (reflect), then crop back at a random place
    flip: bool = False  # random left-right flip
    rotation: float = 0.0  # random rotation in [-rotation, rotation] degrees
    cutout: float = 0.0  # erase a random square with this fraction of the shorter side
    mixup: float = 0.0  # Beta(mixup, mixup) blend of example pairs and of their labels
    token_mask: float = 0.0  # replace each input token by id 0 with this probability

    def validate(self) -> None:
        check(self.crop >= 0, self.key("crop"), self.crop, "must be >= 0 (pixels)")
        check(0 <= self.rotation <= 180, self.key("rotation"), self.rotation,
              "must be in [0, 180] degrees")
        unit_interval(self, "cutout")
        check(self.mixup >= 0, self.key("mixup"), self.mixup, "must be >= 0 (Beta alpha)")
        unit_interval(self, "token_mask")

    @property
    def image_ops(self) -> bool:
        return bool(self.crop or self.flip or self.rotation or self.cutout)

    @property
    def active(self) -> bool:
        return bool(self.image_ops or self.mixup or self.token_mask)


@dataclass
class DatasetConfig(GroupSchema):
    group: ClassVar[str] = "dataset"
    takes_folds: ClassVar[bool] = False  # its examples can be cut into dataset.folds
    name: str = MISSING  # the source; each option sets it (dataset=<option>, see bigtrain ls)
    val_fraction: float = 0.1  # share of the examples held out for validation
    test_fraction: float = 0.1  # share of the examples held out for the test split
    fraction: float = 1.0  # train on this share of the training split
    # k >= 2: k-fold cross-validation, k runs each validating on a k-th of the examples
    # outside the test split, reported as mean and spread (val_fraction is then unused); 0: off
    folds: int = 0
    fold: int = 0  # the fold that validates (0-based); dataset.folds sets it for each run
    seed: int = 0  # the split and the shuffle order
    shuffle_buffer: int = 10_000  # examples the training stream shuffles among
    # multi-worker input: data (every worker reads the data and keeps its share of each global
    # batch, so the batches are the ones a single worker trains on) | off (no sharding)
    shard: str = "data"
    # training-time augmentation (dataset.augment.*)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        unit_interval(self, "val_fraction")
        unit_interval(self, "test_fraction")
        unit_interval(self, "fraction", low_open=True)
        total = self.val_fraction + self.test_fraction
        check(total < 1, self.key("val_fraction"), total,
              "val_fraction + test_fraction must leave data to train on (< 1)")
        positive(self, "shuffle_buffer")
        check_choice(self.key("shard"), self.shard, ["data", "off"])
        check(self.folds == 0 or self.folds >= 2, self.key("folds"), self.folds,
              "must be 0 (one split) or at least 2 (k-fold cross-validation)")
        check(self.folds == 0 or self.takes_folds, self.key("folds"), self.folds,
              f"dataset={self.name} has no in-memory examples to cut into folds; k-fold "
              "cross-validation is for dataset=csv, image_folder, text_classification, "
              "digits and synthetic")
        check(0 <= self.fold < max(self.folds, 1), self.key("fold"), self.fold,
              f"must be in [0, {max(self.folds, 1)})")

    def precheck(self) -> None:
        """What can be checked of the data without TensorFlow and without reading it all
        (paths exist, a header has its columns, a folder has class folders): `bigtrain fit`
        runs it before TensorFlow loads and before Hydra makes a run dir, `bigtrain validate`
        too. Raises ConfigError naming the key. Sources that read no local files check
        nothing."""


@dataclass
class DigitsConfig(DatasetConfig):
    takes_folds: ClassVar[bool] = True
    name: str = "digits"
    normalize: bool = True  # scale pixels to [0, 1]


@dataclass
class SyntheticConfig(DatasetConfig):
    takes_folds: ClassVar[bool] = True
    name: str = "synthetic"
    task: str = "classification"  # classification | regression | lm
    num_examples: int = 4096  # examples generated, before the split
    num_features: int = 32  # features per example (tabular tasks)
    num_classes: int = 10  # classes (classification) or vocabulary (lm)
    vocab_size: int = 256  # token ids drawn from [0, vocab_size) (lm)
    seq_len: int = 64  # tokens per example (lm)
    noise: float = 0.1  # standard deviation of the noise added to the features

    def validate(self) -> None:
        super().validate()
        check_choice(self.key("task"), self.task, ["classification", "regression", "lm"])
        positive(self, "num_examples", "num_features", "vocab_size", "seq_len")
        check(self.num_classes >= 2, self.key("num_classes"), self.num_classes, "must be >= 2")
        check(self.noise >= 0, self.key("noise"), self.noise, "must be >= 0")


@dataclass
class TextConfig(DatasetConfig):
    """A language-model corpus from files: `path` is a file, a directory (every file in it,
    recursively), a glob, or `stdlib` (this Python's standard-library .py sources)."""

    name: str = "text"
    path: str = MISSING  # the text to train on: a file, a directory, a glob, or stdlib
    # byte (256 ids, any file) | char (characters of the training split) | wordpiece |
    # sentencepiece | bpe (learned from the training split, vocab_size tokens)
    vocab: str = "byte"
    vocab_size: int = 0  # tokens of a learned vocabulary (wordpiece, sentencepiece, bpe)
    tokenizer: str = ""  # reuse a saved tokenizer: a run dir, its tokenizer/, a .model, a .txt
    seq_len: int = 128  # tokens per training window
    max_chars: int = 2_000_000  # read at most this much of the corpus (files in sorted order)
    on_bad_record: str = "fail"  # fail | skip: a file that is not UTF-8 (all but byte)

    def validate(self) -> None:
        super().validate()
        check(bool(self.path), self.key("path"), self.path,
              "name a file, a directory, a glob, or stdlib")
        _check_vocab(self, ["byte", "char", *tokenizers.LEARNED])
        check(self.seq_len >= 2, self.key("seq_len"), self.seq_len, "must be >= 2")
        positive(self, "max_chars")
        check_choice(self.key("on_bad_record"), self.on_bad_record, ["fail", "skip"])

    def precheck(self) -> None:
        if self.path != "stdlib":
            _check_files(self.key("path"), self.path)
        _check_tokenizer(self)


@dataclass
class ChatConfig(DatasetConfig):
    """Conversations or prompt/response pairs for instruction tuning (JSONL, Parquet or CSV),
    rendered through a chat template, with the loss on the answers only by default."""

    name: str = "chat"
    path: str = MISSING  # a .jsonl, .parquet or .csv file of conversations or pairs
    # messages: a list of {role, content} per record (system, user, assistant; several
    # turns) | pair: prompt and response columns | auto: messages if the records have them
    format: str = "auto"
    messages_field: str = "messages"  # the record's list of messages (format=messages)
    prompt_field: str = "prompt"  # the prompt's column (format=pair)
    response_field: str = "response"  # the answer's column (format=pair)
    system_field: str = ""  # a column with a system message (format=pair; "" for none)
    # auto (the checkpoint's own chat template, else chatml) | chatml | llama3 | gemma |
    # plain | the path of a Jinja template file
    template: str = "auto"
    train_on: str = "assistant"  # assistant: loss on the answers only | all: every token
    seq_len: int = 512  # tokens per training window (an example and its padding)
    # an example longer than seq_len: left (cut the oldest prompt tokens, keep the last
    # answer whole; dropped if that answer alone does not fit) | drop
    truncation: str = "left"
    # put several examples into each window (segment ids keep attention and positions
    # within each example; bigtrain's transformer) instead of padding each to seq_len
    packing: bool = False
    # byte (256 ids) | wordpiece | sentencepiece | bpe (learned from the training
    # split's rendered texts); a pretrained model (model=hub) brings its own tokenizer
    vocab: str = "byte"
    vocab_size: int = 0  # tokens of a learned vocabulary (wordpiece, sentencepiece, bpe)
    tokenizer: str = ""  # reuse a saved tokenizer: a run dir, its tokenizer/, a .model, a .txt
    # fail | skip: a record that is not JSON, lacks a field, has an unknown role or an
    # empty answer (named with file and line either way; skipped ones are counted)
    on_bad_record: str = "fail"

    def validate(self) -> None:
        super().validate()
        check(bool(self.path), self.key("path"), self.path,
              "name a .jsonl, .parquet or .csv file")
        check_choice(self.key("format"), self.format, ["auto", "messages", "pair"])
        check_choice(self.key("train_on"), self.train_on, ["assistant", "all"])
        check_choice(self.key("truncation"), self.truncation, ["left", "drop"])
        check(self.seq_len >= 8, self.key("seq_len"), self.seq_len, "must be >= 8")
        _check_vocab(self, ["byte", *tokenizers.LEARNED])
        check_choice(self.key("on_bad_record"), self.on_bad_record, ["fail", "skip"])

    def precheck(self) -> None:
        path = _existing_file(self.key("path"), self.path)
        suffix = path.suffix.lower()
        check(suffix in (".jsonl", ".json", ".parquet", ".pq", ".csv"), self.key("path"),
              self.path, "must be a .jsonl, .parquet or .csv file")
        _check_tokenizer(self)
        builtin = ("auto", "chatml", "llama3", "gemma", "plain")
        if self.template not in builtin and not Path(self.template).expanduser().is_file():
            raise ConfigError(self.key("template"), f"{self.template!r} is neither a built-in "
                              f"template nor a file; allowed: {', '.join(builtin)}, or the "
                              "path of a .jinja file")


@dataclass
class CSVConfig(DatasetConfig):
    """A table in a CSV file: one label column, numeric and categorical features."""

    takes_folds: ClassVar[bool] = True
    name: str = "csv"
    path: str = MISSING  # the CSV or Parquet file to train on
    label: str = MISSING  # the label column's name
    task: str = "auto"  # auto | classification | regression
    categorical: list[str] = field(default_factory=list)  # columns read as categories
    # per column: numeric | categorical | ignore, over the inferred type (bigtrain data shows it)
    types: dict[str, str] = field(default_factory=dict)
    # error | missing: a non-number in a numeric column is an error, or read as missing
    bad_numbers: str = "error"
    delimiter: str = ","  # the field separator of the table
    # fail | skip: a row with the wrong number of fields, a missing or non-number label or
    # a non-number in a numeric column fails the run, or is dropped and counted
    on_bad_record: str = "fail"

    def validate(self) -> None:
        super().validate()
        check(bool(self.path), self.key("path"), self.path, "name a CSV file")
        check(bool(self.label), self.key("label"), self.label, "name the label column")
        check_choice(self.key("task"), self.task, ["auto", "classification", "regression"])
        check(len(self.delimiter) == 1, self.key("delimiter"), self.delimiter,
              "must be one character")
        check_choice(self.key("on_bad_record"), self.on_bad_record, ["fail", "skip"])
        check_choice(self.key("bad_numbers"), self.bad_numbers, ["error", "missing"])
        for name, kind in self.types.items():
            check_choice(self.key(f"types.{name}"), kind, list(columns.TYPES))

    def precheck(self) -> None:
        path = _existing_file(self.key("path"), self.path)
        header = _columns(self.key("path"), path, self.delimiter)
        if header is None:  # Parquet without pyarrow: the builder says what to install
            return
        _has_column(self.key("label"), path, header, self.label)
        for c in self.categorical:
            if c not in header:
                raise ConfigError(self.key("categorical"), f"{path} has no column {c!r}")
        columns.check_types(dict(self.types), header, self.label, self.key("types"))


@dataclass
class ImageFolderConfig(DatasetConfig):
    """One sub-directory per class of images (jpg, png, bmp, gif), decoded in the pipeline."""

    takes_folds: ClassVar[bool] = True
    name: str = "image_folder"
    path: str = MISSING  # a directory with one sub-directory of images per class
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

    def precheck(self) -> None:
        root = _existing_dir(self.key("path"), self.path)
        for d in _class_dirs(self.key("path"), root, IMAGE_EXTENSIONS):
            if not _any_file(d, IMAGE_EXTENSIONS):
                raise ConfigError(self.key("path"), f"class directory {d} has no images ("
                                  + ", ".join(IMAGE_EXTENSIONS) + ")")


@dataclass
class TFDSConfig(DatasetConfig):
    """Any TensorFlow Datasets name (`dataset=tfds dataset.name=mnist`): images or text with
    integer labels. `name` is the TFDS name here; the loader is always `tfds`."""

    option: ClassVar[str] = "tfds"  # `name` is the TFDS dataset's
    name: str = MISSING  # the TensorFlow Datasets name, e.g. mnist, kmnist, imdb_reviews
    data_dir: str = "~/tensorflow_datasets"  # where TFDS downloads and prepares data
    download: bool = True  # download and prepare the dataset into data_dir when missing
    max_len: int = 256  # text: bytes kept per example (padded with 0, bytes shifted by 1)

    def validate(self) -> None:
        super().validate()
        check(bool(self.name), self.key("name"), self.name, "name a TFDS dataset, e.g. mnist")
        positive(self, "max_len")


@dataclass
class TextClassificationConfig(DatasetConfig):
    """Texts with labels: a directory with one sub-directory of text files per class, or a
    CSV with a text column and a label column. Texts become UTF-8 bytes (ids 1..256; 0 pads),
    or the tokens of a learned vocabulary."""

    takes_folds: ClassVar[bool] = True
    name: str = "text_classification"
    path: str = MISSING  # a directory with a sub-directory of text files per class, or a CSV
    text_column: str = "text"  # CSV only
    label_column: str = "label"  # CSV only
    # byte (UTF-8 bytes + 1) | wordpiece | sentencepiece | bpe (learned from the training split)
    vocab: str = "byte"
    vocab_size: int = 0  # tokens of a learned vocabulary (wordpiece, sentencepiece, bpe)
    tokenizer: str = ""  # reuse a saved tokenizer: a run dir, its tokenizer/, a .model, a .txt
    # bytes (or tokens, start and end ids included) kept per text; 0: the model's window (a
    # model=hub preset's maximum sequence length), else 256
    max_len: int = 0
    on_bad_record: str = "fail"  # fail | skip: a file that is not UTF-8

    def validate(self) -> None:
        super().validate()
        check(bool(self.path), self.key("path"), self.path, "name a directory or a CSV file")
        _check_vocab(self, ["byte", *tokenizers.LEARNED])
        check(self.max_len >= 0, self.key("max_len"), self.max_len,
              "must be > 0, or 0 for the model's window")
        check_choice(self.key("on_bad_record"), self.on_bad_record, ["fail", "skip"])

    def precheck(self) -> None:
        path = Path(self.path).expanduser()
        if not path.exists():
            raise ConfigError(self.key("path"), f"{path} does not exist")
        _check_tokenizer(self)
        if path.is_dir():
            for d in _class_dirs(self.key("path"), path, None):
                if not _any_file(d, None):
                    raise ConfigError(self.key("path"), f"class directory {d} has no files")
            return
        header = _columns(self.key("path"), path, ",") or []
        _has_column(self.key("text_column"), path, header, self.text_column)
        _has_column(self.key("label_column"), path, header, self.label_column)


@dataclass
class TFRecordConfig(DatasetConfig):
    """Sharded TFRecord files of tf.train.Example records, read as a stream (data larger than
    memory). The feature spec names the input and label features with their shapes and
    types; `input_dtype=image` is an encoded PNG/JPEG/BMP/GIF decoded to [H, W, C] floats."""

    name: str = "tfrecord"
    path: str = MISSING  # a file, a directory (every *.tfrecord* in it) or a glob
    compression: str = ""  # "" | GZIP | ZLIB
    task: str = "classification"  # classification | regression | lm
    input: str = MISSING  # the input's feature name in the records
    input_shape: list[int] = field(default_factory=list)  # [] for a scalar
    input_dtype: str = "float32"  # float32 | int64 | image
    label: str = MISSING  # the label's feature name in the records (lm: the target tokens)
    label_shape: list[int] = field(default_factory=list)  # [] for one label per example
    label_dtype: str = "int64"  # int64 | float32
    num_classes: int = 0  # classification: classes; lm: vocabulary (0: largest label + 1)
    on_bad_record: str = "fail"  # fail | skip: a record that does not match the spec

    def validate(self) -> None:
        super().validate()
        check(bool(self.path), self.key("path"), self.path,
              "name a TFRecord file, a directory or a glob")
        check_choice(self.key("compression"), self.compression, ["", "GZIP", "ZLIB"])
        check_choice(self.key("task"), self.task, ["classification", "regression", "lm"])
        check_choice(self.key("input_dtype"), self.input_dtype, ["float32", "int64", "image"])
        check_choice(self.key("label_dtype"), self.label_dtype, ["int64", "float32"])
        for name in ("input_shape", "label_shape"):
            shape = getattr(self, name)
            check(all(d > 0 for d in shape), self.key(name), shape, "dimensions must be > 0")
        check(self.input_dtype != "image" or len(self.input_shape) == 3
              and self.input_shape[2] in (1, 3), self.key("input_shape"), self.input_shape,
              "an image input needs [height, width, channels] with 1 or 3 channels")
        check(self.task == "regression" or self.label_dtype == "int64", self.key("label_dtype"),
              self.label_dtype, f"must be int64 for task {self.task}")
        check(self.num_classes >= 0, self.key("num_classes"), self.num_classes, "must be >= 0")
        check_choice(self.key("on_bad_record"), self.on_bad_record, ["fail", "skip"])

    def precheck(self) -> None:
        _check_files(self.key("path"), self.path)


def _check_vocab(cfg, choices: list[str]) -> None:
    """`vocab`, `vocab_size` and `tokenizer` of a text source agree with each other."""
    check_choice(cfg.key("vocab"), cfg.vocab, choices)
    check(cfg.vocab_size >= 0, cfg.key("vocab_size"), cfg.vocab_size, "must be >= 0")
    if cfg.vocab in tokenizers.LEARNED:
        check(cfg.vocab_size > 0 or bool(cfg.tokenizer), cfg.key("vocab_size"),
              cfg.vocab_size, f"dataset.vocab={cfg.vocab} learns a vocabulary: set "
              "dataset.vocab_size to its size (e.g. 4096), or reuse a saved one with "
              "dataset.tokenizer=PATH")
        return
    check(cfg.vocab_size == 0, cfg.key("vocab_size"), cfg.vocab_size,
          f"only learned vocabularies ({', '.join(tokenizers.LEARNED)}) take a size; "
          f"dataset.vocab={cfg.vocab} has its own")
    check(not cfg.tokenizer, cfg.key("tokenizer"), cfg.tokenizer,
          "a saved tokenizer needs dataset.vocab set to its kind ("
          + ", ".join(tokenizers.LEARNED) + ")")


def _check_tokenizer(cfg) -> None:
    if cfg.tokenizer:
        tokenizers.check_path(cfg.tokenizer, cfg.vocab, cfg.key("tokenizer"))


# ---- TF-free checks of the files a config names (used by the schemas' `precheck`)


def _any_file(root: Path, suffixes: tuple[str, ...] | None) -> bool:
    """Whether `root` holds (recursively) a file, of one of `suffixes` if given; stops at
    the first one, so a large folder costs little."""
    for _dirpath, _dirs, files in os.walk(root):
        if any(suffixes is None or os.path.splitext(f)[1].lower() in suffixes for f in files):
            return True
    return False


def _check_files(key: str, path: str) -> None:
    """A file, a directory with files in it, or a glob matching files (text, tfrecord)."""
    if any(ch in path for ch in "*?["):
        if not any(os.path.isfile(p)
                   for p in glob.iglob(os.path.expanduser(path), recursive=True)):
            raise ConfigError(key, f"no files found in the glob {path!r}")
        return
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(key, f"{p} does not exist")
    if p.is_dir() and not _any_file(p, None):
        raise ConfigError(key, f"no files found in {p}")


def _existing_file(key: str, path: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(key, f"{p} does not exist" if not p.exists() else f"{p} is not a file")
    return p


def _existing_dir(key: str, path: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ConfigError(key, f"{p} does not exist" if not p.exists()
                          else f"{p} is not a directory")
    return p


def _class_dirs(key: str, root: Path, suffixes: tuple[str, ...] | None) -> list[Path]:
    """The class sub-directories of `root` (at least 2), in sorted order."""
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(dirs) < 2:
        loose = any(f.is_file() and (suffixes is None or f.suffix.lower() in suffixes)
                    for f in root.iterdir())
        raise ConfigError(key, f"{root} needs one sub-directory per class (at least 2); found "
                          f"{len(dirs)}" + ("; its files lie in it directly: move each "
                                            "class's files into a folder named after the class"
                                            if loose else ""))
    return dirs


def _columns(key: str, path: Path, delimiter: str) -> list[str] | None:
    """The column names of a CSV (its header) or Parquet file; None for Parquet without
    pyarrow."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return None
        try:
            return [str(n) for n in pq.read_schema(path).names]
        except Exception as ex:  # pyarrow's own error types for damaged files
            raise ConfigError(key, f"{path} is not a readable Parquet file: "
                              f"{str(ex).splitlines()[0][:200]}") from ex
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f, delimiter=delimiter), None)
    except UnicodeDecodeError as ex:
        raise ConfigError(key, f"{path} is not UTF-8 text ({ex.reason} at byte "
                          f"{ex.start})") from ex
    except csv.Error as ex:
        raise ConfigError(key, f"{path}: {ex}") from ex
    except OSError as ex:
        raise ConfigError(key, f"cannot read {path}: {ex.strerror}") from ex
    if not header:
        raise ConfigError(key, f"{path} is empty")
    return [h.strip() for h in header]


def _has_column(key: str, path: Path, header: list[str], column: str) -> None:
    if column not in header:
        raise ConfigError(key, f"{path} has no column {column!r}. Columns: "
                          + ", ".join(header))
