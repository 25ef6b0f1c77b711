"""tf.data pipelines shared by every source: splits, seeded per-epoch shuffle, batching.

The training order of epoch `e` depends only on (seed, e), so a resumed run rebuilds the same
epoch and skips the batches it already trained on: exact resume without saving an iterator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from bigtrain.data.spec import DatasetSpec


@dataclass
class Splits:
    """Unbatched, finite, fixed-order datasets of (x, y) pairs, and their spec."""

    spec: DatasetSpec
    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    seed: int = 0
    shuffle_buffer: int = 10_000
    # (x, y, seed) -> (x, y): per-example and per-batch training augmentation (augment.py)
    augment: Callable | None = None
    augment_batch: Callable | None = None
    shard: str = "data"  # multi-worker auto-sharding: data | off
    threads: int = 0  # > 0: tf.data's private thread pool size (trainer.threads)
    # what the builder computed to turn raw inputs into model inputs ({"input", "classes"
    # or "targets"}); build_dataset completes it into preprocessing.json (preprocess.py)
    preprocessing: dict | None = None
    # text through a tokenizer (bigtrain.data.tokenizers.Tokenizer): saved in the run dir;
    # tokens per character of the training split
    tokenizer: object | None = None
    tokens_per_char: float | None = None
    # what the builder decided about its columns and task, and why (dataset=csv:
    # bigtrain/data/columns.py); shown by `bigtrain data` and at the start of `fit`
    report: dict | None = None

    def train_batches(self, batch_size: int, epoch: int) -> tf.data.Dataset:
        """Epoch `epoch` of training: shuffled with a seed of its own, full batches only.
        Augmentation draws from (epoch seed, position in the epoch), never from global state."""
        seed = _epoch_seed(self.seed, epoch)
        buffer = max(1, min(self.shuffle_buffer, self.spec.num_train))
        ds = self.train.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
        if self.augment is not None:
            fn = self.augment
            ds = ds.enumerate().map(
                lambda i, xy: fn(xy[0], xy[1], _stateless_seed(seed, 0, i)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=True)
        if self.augment_batch is not None:
            bfn = self.augment_batch
            ds = ds.enumerate().map(lambda i, xy: bfn(xy[0], xy[1], _stateless_seed(seed, 1, i)),
                                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return self._options(ds).prefetch(tf.data.AUTOTUNE)

    def eval_batches(self, split: str, batch_size: int) -> tf.data.Dataset:
        ds = {"val": self.val, "test": self.test, "train": self.train}[split]
        return self._options(ds.batch(batch_size)).prefetch(tf.data.AUTOTUNE)

    def _options(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        policy = {"data": tf.data.experimental.AutoShardPolicy.DATA,
                  "off": tf.data.experimental.AutoShardPolicy.OFF}[self.shard]
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = policy
        # no autotune thread: deleting an iterator waits for that thread's next wake-up,
        # which comes later the older the iterator (10 ms doubling, up to 60 s): up to an
        # epoch's time at each epoch's end and after each evaluation. Parallel maps keep
        # their default parallelism (the cores) and prefetch its own buffer tuning.
        options.autotune.enabled = False
        if self.threads > 0:
            options.threading.private_threadpool_size = self.threads
        return ds.with_options(options)

    def steps_per_epoch(self, batch_size: int) -> int:
        return self.spec.num_train // batch_size


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919) % (2**31 - 1)


def _stateless_seed(epoch_seed: int, stream: int, index: tf.Tensor) -> tf.Tensor:
    """A stateless-op seed for element `index` of one stream (examples 0, batches 1)."""
    return tf.stack([tf.constant(epoch_seed * 2 + stream, tf.int64), tf.cast(index, tf.int64)])


def split_arrays(num_examples: int, val_fraction: float, test_fraction: float, seed: int,
                 fraction: float = 1.0, folds: int = 0, fold: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic index split; `fraction` keeps a share of the training part only. With
    `folds` >= 2, the examples outside the test split are cut into `folds` parts, and part
    `fold` validates (k-fold cross-validation: the test split is the same for every fold)."""
    order = np.random.default_rng(seed).permutation(num_examples)
    n_test = int(round(num_examples * test_fraction))
    if folds >= 2:
        test, rest = order[:n_test], order[n_test:]
        parts = np.array_split(rest, folds)
        val = parts[fold]
        train = np.concatenate([p for i, p in enumerate(parts) if i != fold])
    else:
        n_val = int(round(num_examples * val_fraction))
        val, test, train = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
    train = train[: max(1, int(round(len(train) * fraction)))]
    return train, val, test


def split_for(num_examples: int, cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The split a dataset config asks for (fractions, seed, and its fold of dataset.folds)."""
    return split_arrays(num_examples, cfg.val_fraction, cfg.test_fraction, cfg.seed,
                        cfg.fraction, cfg.folds, cfg.fold)


#: token counts of a language model's training split are kept (for its unigram baseline) up
#: to this vocabulary size: beyond it preprocessing.json would grow by megabytes
MAX_COUNTED_VOCAB = 65_536


def label_statistics(task: str, y_train: np.ndarray, num_outputs: int) -> dict:
    """The DatasetSpec fields that describe the training labels (see DatasetSpec)."""
    if task == "regression":
        y = np.asarray(y_train, np.float64).reshape(len(y_train), -1)
        std = y.std(axis=0) if len(y) else np.ones(y.shape[1])
        return {"target_mean": tuple(float(v) for v in y.mean(axis=0)) if len(y) else (),
                "target_std": tuple(float(v) if v > 0 else 1.0 for v in std) if len(y) else ()}
    if num_outputs > MAX_COUNTED_VOCAB or y_train.dtype.kind not in "iu":
        return {}
    counts = np.bincount(np.asarray(y_train).reshape(-1), minlength=num_outputs)
    return {"label_counts": tuple(int(c) for c in counts[:num_outputs])}


def from_arrays(name: str, task: str, x: np.ndarray, y: np.ndarray, num_outputs: int, cfg,
                input_vocab: int = 0, skipped: int = 0, preprocessing: dict | None = None
                ) -> Splits:
    """Splits of in-memory arrays, following the dataset config's fractions and seed."""
    train, val, test = split_for(len(x), cfg)
    spec = DatasetSpec(name=name, task=task, input_shape=tuple(x.shape[1:]),
                       input_dtype=str(x.dtype), num_outputs=num_outputs,
                       num_train=len(train), num_val=len(val), num_test=len(test),
                       input_vocab=input_vocab, skipped=skipped,
                       **label_statistics(task, y[train], num_outputs))

    def ds(idx: np.ndarray) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((x[idx], y[idx]))

    return Splits(spec, ds(train), ds(val), ds(test), seed=cfg.seed,
                  shuffle_buffer=cfg.shuffle_buffer, preprocessing=preprocessing)
