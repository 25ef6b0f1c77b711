"""Which worker of a multi-worker job this process is, read from the environment without
TensorFlow: TF_CONFIG (as `bigtrain launch` and most launchers write it) or SLURM.

The chief (TF_CONFIG task type `chief`, or worker 0 when the cluster has no chief; SLURM
rank 0) writes a run's files: config, metrics, summary, TensorBoard and checkpoints. The
other workers train with it and write nothing there but their own log file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    index: int = 0
    workers: int = 1
    chief: bool = True


TF_CONFIG_FORM = ('{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
                  '"index": 0}}')


def source(cluster: str = "auto") -> str | None:
    """Where this process's cluster is described (`strategy.cluster`: auto | tf_config |
    slurm): "tf_config", "slurm", or None when neither is set."""
    if cluster == "tf_config" or (cluster == "auto" and os.environ.get("TF_CONFIG")):
        return "tf_config"
    if cluster == "slurm" or (cluster == "auto" and "SLURM_JOB_ID" in os.environ):
        return "slurm"
    return None


def tf_config() -> dict:
    """TF_CONFIG, checked: ValueError (with the form it must have) when it is not usable."""
    try:
        spec = json.loads(os.environ.get("TF_CONFIG", ""))
        clus, task = spec["cluster"], spec["task"]
        workers = list(clus.get("worker", [])) + list(clus.get("chief", []))
        task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"TF_CONFIG is missing or not valid JSON of the form {TF_CONFIG_FORM}"
                         ) from None
    if not workers:
        raise ValueError("TF_CONFIG names no workers")
    return spec


def role(strategy_name: str, cluster: str = "auto") -> Role:
    """This process's role for a run under `strategy_name`; single-host strategies: chief."""
    if strategy_name != "multi_worker":
        return Role()
    where = source(cluster)
    if where == "tf_config":
        try:
            spec = tf_config()
        except ValueError:
            return Role()  # the strategy builder reports a malformed TF_CONFIG
        kind, index = spec["task"]["type"], int(spec["task"]["index"])
        clus = spec["cluster"]
        workers = sum(len(v) for k, v in clus.items() if k in ("chief", "worker"))
        chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in clus)
        return Role(index=index + (1 if kind == "worker" and "chief" in clus else 0),
                    workers=max(1, workers), chief=chief)
    if where == "slurm" and "SLURM_PROCID" in os.environ:
        rank = int(os.environ["SLURM_PROCID"])
        return Role(index=rank, workers=int(os.environ.get("SLURM_NTASKS", "1")),
                    chief=rank == 0)
    return Role()
