"""Experiment loggers (`logger=[tensorboard,csv,mlflow]`), each builder registered with its
schema; each builds a training hook. metrics.jsonl is always written besides them."""

from __future__ import annotations

from bigtrain.core.registry import Registry

LOGGERS: Registry = Registry("logger", "bigtrain.loggers")


def build_loggers(config, run_dir) -> list:
    """One hook per configured logger (`config.logger`, in the order given)."""
    return [LOGGERS.build(cfg, run_dir, config) for cfg in config.logger.values()]


__all__ = ["LOGGERS", "build_loggers"]
