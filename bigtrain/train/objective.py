"""Loss and metrics per task, as sums that add up exactly across steps, replicas and workers.

Each step returns one vector of sums (loss, count, correct, top-k correct, score histograms);
the loop adds vectors and `finalize` turns a total into metrics, so nothing depends on Keras
metric state under a strategy. AUC comes from histograms of the positive-class score over
`AUC_BUCKETS` buckets (exact up to the bucket width).

Losses: `auto` picks sparse cross-entropy for classification and language models and MSE for
regression; `cross_entropy` (with label smoothing), `binary_cross_entropy` (one logit, from
logits, with label smoothing; two-class data only), `mse` and `huber` can be chosen. A
regression loss is computed on targets standardized by the training split's deviation (the
model's outputs and MAE stay in the targets' own units).

Beside every score, a baseline that needs no model (when the dataset counted its training
labels, `DatasetSpec.target_mean` / `label_counts`): `baseline_mae` and `baseline_loss` of
predicting the training mean (regression), `baseline_accuracy` of the training split's most
frequent class and `baseline_loss` of its class prior (classification), and
`baseline_perplexity` of the training unigram distribution (language models); priors add one
to every count.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from bigtrain.core.errors import ConfigError

AUC_BUCKETS = 200
TOP_K = 5


def resolve_loss(loss: str, task: str, num_outputs: int) -> str:
    if loss == "auto":
        return "mse" if task == "regression" else "cross_entropy"
    if task == "regression" and loss not in ("mse", "huber"):
        raise ConfigError("trainer.loss", f"{loss!r} does not fit a regression dataset; "
                          "allowed: auto, mse, huber")
    if task != "regression" and loss in ("mse", "huber"):
        raise ConfigError("trainer.loss", f"{loss!r} is for regression; this dataset's task is "
                          f"{task}: use auto, cross_entropy or binary_cross_entropy")
    if loss == "binary_cross_entropy" and (task != "classification" or num_outputs != 2):
        raise ConfigError("trainer.loss", "binary_cross_entropy needs a two-class "
                          f"classification dataset (this one: {task}, {num_outputs} outputs)")
    return loss


def model_outputs(loss: str, num_outputs: int) -> int:
    """How many outputs the model needs: one logit for binary cross-entropy."""
    return 1 if loss == "binary_cross_entropy" else num_outputs


class Objective:
    def __init__(self, task: str, num_outputs: int, loss: str = "auto",
                 label_smoothing: float = 0.0, huber_delta: float = 1.0,
                 target_mean: tuple = (), target_std: tuple = (), label_counts: tuple = (),
                 masked: bool = False):
        self.task, self.num_classes = task, num_outputs
        # targets below 0 take no loss and count for no metric (instruction data)
        self.masked = masked and task == "lm"
        self.loss = resolve_loss(loss, task, num_outputs)
        self.smoothing, self.delta = label_smoothing, huber_delta
        regression = task == "regression"
        self.scale = np.asarray(target_std, np.float32) if regression and target_std else None
        self.mean = np.asarray(target_mean, np.float32) if regression and target_mean else None
        counts = np.asarray(label_counts, np.float64) if not regression else np.zeros(0)
        self.prior = None
        if len(counts) == num_outputs and counts.sum() > 0:
            self.prior = np.log((counts + 1) / (counts.sum() + num_outputs)).astype(np.float32)
            self.majority = int(np.argmax(counts))
        self.binary = task == "classification" and num_outputs == 2
        self.top_k = task != "regression" and num_outputs > TOP_K
        names = ["loss_sum", "count", "abs_err" if task == "regression" else "correct"]
        if self.top_k:
            names.append(f"top{TOP_K}_correct")
        if self.binary:
            names += [f"pos_{i}" for i in range(AUC_BUCKETS)]
            names += [f"neg_{i}" for i in range(AUC_BUCKETS)]
        if self.mean is not None or self.prior is not None:
            names += ["baseline_loss_sum", "baseline_mae_sum" if regression
                      else "baseline_correct"]
        self.stat_names = names

    # ------------------------------------------------------------------ losses
    def per_example_loss(self, y: tf.Tensor, out: tf.Tensor) -> tf.Tensor:
        out = tf.cast(out, tf.float32)
        if self.task == "regression":
            y = tf.cast(tf.reshape(y, tf.shape(out)), tf.float32)
            err = out - y
            if self.scale is not None:
                err = err / self.scale
            if self.loss == "huber":
                a = tf.abs(err)
                quad = tf.minimum(a, self.delta)
                return tf.reduce_mean(0.5 * quad**2 + self.delta * (a - quad), axis=-1)
            return tf.reduce_mean(tf.square(err), axis=-1)
        soft = _is_soft(y)
        if self.loss == "binary_cross_entropy":
            target = y[..., 1] if soft else y
            target = tf.cast(tf.reshape(target, tf.shape(out)), tf.float32)
            target = target * (1.0 - self.smoothing) + 0.5 * self.smoothing
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(target, out), axis=-1)
        if soft:  # mixed labels (dataset.augment.mixup): a distribution over the classes
            ce = tf.nn.softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.float32),
                                                         logits=out)
        else:
            labels = tf.cast(y, tf.int32)
            if self.masked:
                labels = tf.maximum(labels, 0)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=out)
        if self.smoothing > 0:
            uniform = -tf.reduce_mean(tf.nn.log_softmax(out, axis=-1), axis=-1)
            ce = (1.0 - self.smoothing) * ce + self.smoothing * uniform
        if self.masked:
            ce = ce * self.weights(y)
        return ce

    def weights(self, y: tf.Tensor) -> tf.Tensor:
        """1.0 where a target takes loss, 0.0 where it does not (masked targets < 0)."""
        return tf.cast(tf.greater_equal(y, 0), tf.float32)

    def trained_count(self, y: tf.Tensor) -> tf.Tensor:
        """How many targets of `y` take loss (float32)."""
        return tf.reduce_sum(self.weights(y))

    # ------------------------------------------------------------------ statistics
    def _positive_score(self, out: tf.Tensor) -> tf.Tensor:
        if self.loss == "binary_cross_entropy":
            return tf.sigmoid(tf.reshape(out, [-1]))
        return tf.nn.softmax(out, axis=-1)[..., 1]

    def stats(self, y: tf.Tensor, out: tf.Tensor, per_example: tf.Tensor) -> tf.Tensor:
        out = tf.cast(out, tf.float32)
        count = self.trained_count(y) if self.masked else tf.cast(tf.size(per_example),
                                                                   tf.float32)
        parts = [tf.reduce_sum(per_example), count]
        if self.task == "regression":
            y = tf.cast(tf.reshape(y, tf.shape(out)), tf.float32)
            parts.append(tf.reduce_sum(tf.reduce_mean(tf.abs(out - y), axis=-1)))
            if self.mean is not None:
                base = y - self.mean
                scaled = base / self.scale if self.scale is not None else base
                parts += [tf.reduce_sum(tf.reduce_mean(tf.square(scaled), axis=-1)),
                          tf.reduce_sum(tf.reduce_mean(tf.abs(base), axis=-1))]
            return tf.stack(parts)
        # accuracy of mixed labels counts the dominant class
        labels = tf.argmax(y, axis=-1, output_type=tf.int32) if _is_soft(y) else tf.cast(
            y, tf.int32)
        if self.loss == "binary_cross_entropy":
            pred = tf.cast(tf.reshape(out, tf.shape(labels)) > 0, tf.int32)
        else:
            pred = tf.argmax(out, axis=-1, output_type=tf.int32)
        w = self.weights(labels) if self.masked else None
        if self.masked:
            labels = tf.maximum(labels, 0)

        def total(hit):
            hit = tf.cast(hit, tf.float32)
            return tf.reduce_sum(hit if w is None else hit * tf.reshape(w, tf.shape(hit)))

        parts.append(total(tf.equal(pred, labels)))
        vec = tf.stack(parts)
        if self.top_k:
            flat_logits = tf.reshape(out, [-1, self.num_classes])
            hit = tf.math.in_top_k(tf.reshape(labels, [-1]), flat_logits, TOP_K)
            vec = tf.concat([vec, [total(hit)]], 0)
        if self.binary:
            score = self._positive_score(out)
            bucket = tf.minimum(tf.cast(score * AUC_BUCKETS, tf.int32), AUC_BUCKETS - 1)
            positive = tf.reshape(labels, [-1]) == 1
            pos = tf.math.bincount(tf.boolean_mask(bucket, positive), minlength=AUC_BUCKETS,
                                   maxlength=AUC_BUCKETS, dtype=tf.float32)
            neg = tf.math.bincount(tf.boolean_mask(bucket, ~positive), minlength=AUC_BUCKETS,
                                   maxlength=AUC_BUCKETS, dtype=tf.float32)
            vec = tf.concat([vec, pos, neg], 0)
        if self.prior is not None:
            if _is_soft(y):
                base_loss = -tf.reduce_sum(tf.cast(y, tf.float32) * self.prior)
            elif w is not None:
                base_loss = -tf.reduce_sum(tf.gather(self.prior, labels) * w)
            else:
                base_loss = -tf.reduce_sum(tf.gather(self.prior, labels))
            hits = total(tf.equal(labels, self.majority))
            vec = tf.concat([vec, [base_loss, hits]], 0)
        return vec

    def finalize(self, totals: np.ndarray, prefix: str = "", baseline: bool = True
                 ) -> dict[str, float]:
        """Metrics of summed statistics; `baseline`: with the baselines (the training loop's
        own metrics leave them out: on the training split they are no yardstick)."""
        totals = np.asarray(totals, dtype=np.float64)
        loss_sum, count, third = totals[:3]
        if count == 0:
            return {}
        loss = loss_sum / count
        out = {f"{prefix}loss": float(loss)}
        if self.task == "regression":
            out[f"{prefix}mae"] = float(third / count)
            if self.mean is not None and baseline:
                out[f"{prefix}baseline_loss"] = float(totals[-2] / count)
                out[f"{prefix}baseline_mae"] = float(totals[-1] / count)
            return out
        out[f"{prefix}accuracy"] = float(third / count)
        i = 3
        if self.top_k:
            out[f"{prefix}top{TOP_K}_accuracy"] = float(totals[i] / count)
            i += 1
        if self.binary:
            out[f"{prefix}auc"] = auc_from_histograms(totals[i:i + AUC_BUCKETS],
                                                      totals[i + AUC_BUCKETS:i + 2 * AUC_BUCKETS])
        if self.task == "lm":
            out[f"{prefix}perplexity"] = math.exp(min(loss, 50.0))
        if self.prior is not None and baseline:
            base_loss = float(totals[-2] / count)
            out[f"{prefix}baseline_loss"] = base_loss
            out[f"{prefix}baseline_accuracy"] = float(totals[-1] / count)
            if self.task == "lm":
                out[f"{prefix}baseline_perplexity"] = math.exp(min(base_loss, 50.0))
        return out


def check_monitor(objective: Objective, monitor: str) -> None:
    """`trainer.monitor` must name a metric this run reports: a misspelt one would choose no
    best checkpoint, stop nothing early and leave a sweep nothing to optimize."""
    ones = np.ones(len(objective.stat_names))
    known = [k for prefix in ("val_", "test_", "") for k in objective.finalize(ones, prefix)]
    if monitor not in known:
        raise ConfigError("trainer.monitor", f"{monitor!r} is not a metric of this run "
                          f"({objective.task}); allowed: {', '.join(known)}")


def _is_soft(y) -> bool:
    """Labels given as class probabilities (float, one more axis than integer labels)."""
    return tf.as_dtype(y.dtype).is_floating and len(y.shape) >= 2


def auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> float | None:
    """P(score of a positive > score of a negative), ties in a bucket counted as half."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return None
    neg_below = np.cumsum(neg) - neg  # negatives in lower buckets
    wins = np.sum(pos * (neg_below + 0.5 * neg))
    return float(wins / (n_pos * n_neg))
