"""Which worker of a multi-worker job this process is, read from the environment without
TensorFlow: TF_CONFIG (as scripts/launch_local.py and most launchers write it) or SLURM.

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


def role(strategy_name: str, cluster: str = "auto") -> Role:
    """This process's role for a run under `strategy_name`; single-host strategies: chief."""
    if strategy_name != "multi_worker":
        return Role()
    raw = os.environ.get("TF_CONFIG", "")
    if raw and cluster in ("auto", "tf_config"):
        try:
            spec = json.loads(raw)
            task = spec.get("task", {})
            kind, index = task.get("type", "worker"), int(task.get("index", 0))
            clus = spec.get("cluster", {})
        except (ValueError, TypeError, AttributeError):
            return Role()  # the strategy builder reports a malformed TF_CONFIG
        workers = sum(len(v) for k, v in clus.items() if k in ("chief", "worker"))
        chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in clus)
        return Role(index=index + (1 if kind == "worker" and "chief" in clus else 0),
                    workers=max(1, workers), chief=chief)
    if "SLURM_PROCID" in os.environ and cluster in ("auto", "slurm"):
        rank = int(os.environ["SLURM_PROCID"])
        return Role(index=rank, workers=int(os.environ.get("SLURM_NTASKS", "1")),
                    chief=rank == 0)
    return Role()
