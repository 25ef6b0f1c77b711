"""Seeded augmentation of the training split (`dataset.augment`).

Every random draw is a stateless op keyed by (epoch seed, index of the example or batch in
that epoch), so epoch `e` looks the same however often it is rebuilt: a resumed run sees the
same augmented batches as an uninterrupted one, and the parallel map stays deterministic.

Per example (images of shape [H, W] or [H, W, C]): reflect-pad and random crop, left-right
flip, rotation, cutout (random erasing of a square); token inputs: random masking to id 0.
Per batch: mixup, which turns integer labels into soft one-hot labels (the objective takes
both).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import tensorflow as tf

from bigtrain.core.errors import ConfigError
from bigtrain.data.spec import DatasetSpec

ExampleFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def check_applies(aug, spec: DatasetSpec) -> None:
    """Refuse an augmentation that does not fit the data, naming the key and the data."""
    rank = len(spec.input_shape)
    is_image = spec.input_dtype.startswith("float") and rank in (2, 3)
    for name in ("crop", "flip", "rotation", "cutout"):
        if getattr(aug, name) and not is_image:
            raise ConfigError(f"dataset.augment.{name}", f"is for images ([H, W] or [H, W, C] "
                              f"float inputs); {spec.name} has {spec.input_dtype} inputs of "
                              f"shape {list(spec.input_shape)}")
    if aug.token_mask and not spec.input_dtype.startswith("int"):
        raise ConfigError("dataset.augment.token_mask", f"is for token inputs; {spec.name} "
                          f"has {spec.input_dtype} inputs")
    if aug.token_mask and spec.packed:
        raise ConfigError("dataset.augment.token_mask", "does not take packed windows (they "
                          "carry segments and positions beside the ids); use "
                          "dataset.packing=false with it")
    if aug.mixup and spec.task != "classification":
        raise ConfigError("dataset.augment.mixup", f"needs a classification dataset; "
                          f"{spec.name} is {spec.task}")


def _seed(seed: tf.Tensor, k: int) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(seed, k)


def _rotate(image: tf.Tensor, radians: tf.Tensor) -> tf.Tensor:
    """Rotate an [H, W, C] image about its centre (bilinear, reflected edges)."""
    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    cos, sin = tf.cos(radians), tf.sin(radians)
    # output pixel (x, y) samples input at A @ (x, y) + b: rotation about the centre
    cx, cy = (w - 1) / 2, (h - 1) / 2
    b0 = cx - cos * cx + sin * cy
    b1 = cy - sin * cx - cos * cy
    transform = tf.stack([cos, -sin, b0, sin, cos, b1, 0.0, 0.0])[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform, output_shape=tf.shape(image)[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    return out[0]


def _cutout(image: tf.Tensor, fraction: float, seed: tf.Tensor) -> tf.Tensor:
    h, w = image.shape[0], image.shape[1]
    side = max(1, int(round(fraction * min(h, w))))
    cy = tf.random.stateless_uniform([], seed, 0, h, dtype=tf.int32)
    cx = tf.random.stateless_uniform([], _seed(seed, 1), 0, w, dtype=tf.int32)
    rows = tf.range(h)[:, None]
    cols = tf.range(w)[None, :]
    inside = ((rows >= cy - side // 2) & (rows < cy - side // 2 + side)
              & (cols >= cx - side // 2) & (cols < cx - side // 2 + side))
    return image * tf.cast(~inside, image.dtype)[..., None]


def example_fn(aug, spec: DatasetSpec) -> ExampleFn | None:
    """(x, y, seed) -> (x, y) applying the per-example augmentations, or None if none is on."""
    if not (aug.image_ops or aug.token_mask):
        return None
    shape = spec.input_shape

    def image(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        img = x[..., None] if len(shape) == 2 else x
        h, w = img.shape[0], img.shape[1]
        if aug.crop:
            p = aug.crop
            padded = tf.pad(img, [[p, p], [p, p], [0, 0]],
                            mode="REFLECT" if p < min(h, w) else "CONSTANT")
            img = tf.image.stateless_random_crop(padded, tf.shape(img), _seed(seed, 0))
        if aug.flip:
            img = tf.image.stateless_random_flip_left_right(img, _seed(seed, 1))
        if aug.rotation:
            limit = aug.rotation * math.pi / 180
            angle = tf.random.stateless_uniform([], _seed(seed, 2), -limit, limit)
            img = _rotate(img, angle)
        if aug.cutout:
            img = _cutout(img, aug.cutout, _seed(seed, 3))
        img = tf.ensure_shape(img, (h, w, img.shape[-1]))
        return img[..., 0] if len(shape) == 2 else img

    def tokens(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        drop = tf.random.stateless_uniform(tf.shape(x), _seed(seed, 4)) < aug.token_mask
        return tf.where(drop, tf.zeros_like(x), x)

    def apply(x, y, seed):
        x = image(x, seed) if aug.image_ops else tokens(x, seed)
        return x, y

    return apply


def batch_fn(aug, spec: DatasetSpec) -> ExampleFn | None:
    """(x, y, seed) -> (x, soft y) for a whole batch: mixup, or None if it is off."""
    if not aug.mixup:
        return None
    classes = spec.num_outputs
    alpha = float(aug.mixup)

    def mix(x, y, seed):
        n = tf.shape(x)[0]
        # Beta(a, a) as G1 / (G1 + G2) with stateless gammas
        g1 = tf.random.stateless_gamma([n], _seed(seed, 5), alpha)
        g2 = tf.random.stateless_gamma([n], _seed(seed, 6), alpha)
        lam = g1 / (g1 + g2)
        perm = tf.argsort(tf.random.stateless_uniform([n], _seed(seed, 7)))
        onehot = tf.one_hot(tf.cast(y, tf.int32), classes)
        lx = tf.reshape(lam, [-1] + [1] * (len(x.shape) - 1))
        ly = tf.reshape(lam, [-1] + [1] * (len(onehot.shape) - 1))
        x = lx * x + (1 - lx) * tf.gather(x, perm)
        return x, ly * onehot + (1 - ly) * tf.gather(onehot, perm)

    return mix
