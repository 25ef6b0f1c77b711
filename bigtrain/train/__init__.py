"""The training engine: compiled steps, the controller loop, hooks and checkpoints.

`trainer` is a config group of settings only (its schema in `schemas.py`); the loop is
what it configures, so its registry has schemas and no builders."""

from bigtrain.registry import Registry

TRAINERS: Registry = Registry("trainer", "bigtrain.train", builds=False)
