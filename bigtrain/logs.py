"""Console output shared by logging and progress: one rich console, so they never garble."""

from __future__ import annotations

import logging
import sys

from rich.console import Console

CONSOLE = Console(stderr=True)


def console_handler() -> logging.Handler:
    """Rich log lines on a terminal; plain 'LEVEL message' lines when piped (CI logs)."""
    if CONSOLE.is_terminal:
        from rich.logging import RichHandler

        return RichHandler(console=CONSOLE, show_path=False, rich_tracebacks=False,
                           log_time_format="[%X]")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    return handler


def quiet_tensorflow() -> None:
    """For commands outside Hydra's job logging: bigtrain's INFO lines, TensorFlow's warnings."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(console_handler())
    root.setLevel(logging.INFO)
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
