"""`bigtrain env`: versions, devices, CPU features and precisions — what a bug report needs."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata

import typer


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect() -> dict:
    from bigtrain.core.tensorflow_start import quiet_tensorflow
    from bigtrain.strategy import cluster, devices

    quiet_tensorflow()
    import tensorflow as tf

    flags = devices.cpu_flags()
    gpus = devices.gpu_capabilities()
    build = tf.sysconfig.get_build_info()
    role = cluster.role("multi_worker")
    return {
        "versions": {
            "bigtrain": _version("bigtrain"), "python": sys.version.split()[0],
            "tensorflow": tf.__version__, "keras": _version("keras"),
            "hydra-core": _version("hydra-core"), "numpy": _version("numpy"),
            "tensorflow-datasets": _version("tensorflow-datasets"),
            "cuda (build)": build.get("cuda_version", "none"),
            "cudnn (build)": build.get("cudnn_version", "none"),
        },
        "machine": {
            "os": platform.platform(), "cpu": devices.cpu_name(),
            "cores": os.cpu_count(), "cpu features": sorted(flags),
            # the user's flags for XLA, which compiles bigtrain's islands
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") or "not set",
        },
        "devices": {
            "gpus": [{"name": n, "compute_capability": list(c) if c else None}
                     for n, c in gpus],
            "tpu": bool(os.environ.get("TPU_NAME") or os.path.exists("/dev/accel0")),
            "strategy=auto": devices.auto_strategy_choice(len(gpus)),
        },
        "precision": devices.precision_support(gpus, flags),
        "cluster": {
            "TF_CONFIG": "set" if os.environ.get("TF_CONFIG") else "not set",
            "SLURM": os.environ.get("SLURM_JOB_ID", "not in a SLURM job"),
            "multi_worker role": f"worker {role.index} of {role.workers}"
                                 + (" (chief)" if role.chief else ""),
        },
    }


def env(
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for bug reports and CI)."),
) -> None:
    """Show versions, devices, CPU features and supported precisions."""
    from bigtrain.cli.errors import reported

    with reported():
        report = collect()
    if as_json:
        print(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, title="bigtrain env")
    table.add_column("key", style="bold")
    table.add_column("value")
    for section, values in report.items():
        table.add_section()
        for key, value in values.items():
            if isinstance(value, list):
                shown = (v if isinstance(v, str) else json.dumps(v) for v in value)
                value = ", ".join(shown) or "none"
            table.add_row(f"{section}: {key}", str(value))
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("env")(env)
