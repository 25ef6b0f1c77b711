"""Learning-rate schedules, and the scale the NaN guard halves.

`Schedule` is one Keras LearningRateSchedule for every kind registered in
`schedule_kinds.SCHEDULES` (conf/optim/schedule/): a factor of the base rate, computed from
the optimizer's step with TensorFlow ops, so it runs inside the compiled step and is saved
with the optimizer's iteration counter. Warmup is linear from lr/warmup_steps to lr, in steps
or as a fraction of the run's total steps.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bigtrain.optim.schedule_kinds import SCHEDULES, At


def warmup_steps(warmup: float, total_steps: int) -> int:
    return int(warmup) if warmup >= 1 else int(round(warmup * total_steps))


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, name: str, lr: float, total_steps: int, warmup: float = 0.0,
                 min_lr_ratio: float = 0.0, decay_rate: float = 0.5, decay_steps: int = 1000):
        self.name, self.lr, self.total_steps = name, float(lr), int(total_steps)
        self.warmup = float(warmup)
        self.warmup_steps = warmup_steps(warmup, total_steps)
        self.min_lr_ratio, self.decay_rate = float(min_lr_ratio), float(decay_rate)
        self.decay_steps = int(decay_steps)

    def factor(self, step):
        """The multiplier of `lr` at optimizer step `step` (0-based)."""
        s = tf.cast(step, tf.float32)
        w = float(self.warmup_steps)
        after = tf.maximum(s - w, 0.0)  # steps since warmup ended
        span = float(max(1, self.total_steps - self.warmup_steps))
        at = At(step=s, after=after, progress=tf.minimum(after / span, 1.0),
                warmup_steps=self.warmup_steps, min_lr_ratio=self.min_lr_ratio,
                decay_rate=self.decay_rate, decay_steps=self.decay_steps)
        f = SCHEDULES.get(self.name)(at, tf)
        if self.warmup_steps > 0:
            f = f * tf.minimum(1.0, (s + 1.0) / w)
        return f

    def __call__(self, step):
        return self.lr * self.factor(step)

    def get_config(self) -> dict:
        return {"name": self.name, "lr": self.lr, "total_steps": self.total_steps,
                "warmup": self.warmup, "min_lr_ratio": self.min_lr_ratio,
                "decay_rate": self.decay_rate, "decay_steps": self.decay_steps}


class ScaledLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """A base value or schedule times a scale variable (saved in checkpoints)."""

    def __init__(self, base, scale: float = 1.0):
        self.base = base
        self.scale = tf.Variable(float(scale), dtype=tf.float32, trainable=False, name="lr_scale")

    def __call__(self, step):
        base = self.base(step) if callable(self.base) else self.base
        return tf.cast(base, tf.float32) * self.scale

    def get_config(self) -> dict:
        base = self.base
        if isinstance(base, keras.optimizers.schedules.LearningRateSchedule):
            base = base.get_config()
        return {"base": base, "scale": float(self.scale.numpy())}


def build_learning_rate(cfg, total_steps: int, replicas: int = 1) -> ScaledLearningRate:
    """The learning rate of `optim` config `cfg` over a run of `total_steps` steps;
    `optim.lr_scaling=linear` multiplies it by the replica count (never done silently)."""
    s = cfg.schedule
    lr = cfg.lr * replicas if cfg.lr_scaling == "linear" else cfg.lr
    base = Schedule(s.name, lr, total_steps, s.warmup, s.min_lr_ratio, s.decay_rate,
                    s.decay_steps)
    return ScaledLearningRate(base)
