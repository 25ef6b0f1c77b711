"""Strategies: which tf.distribute strategy a run trains under, each builder registered with
its schema.

`cluster` (who is the chief, read from TF_CONFIG or SLURM) and `devices` (CPU features,
GPUs, native precisions) need no TensorFlow at import; `builders` builds the strategies.
"""

from __future__ import annotations

from bigtrain.core.registry import Registry

STRATEGIES: Registry = Registry("strategy", "bigtrain.strategy")


__all__ = ["STRATEGIES"]
