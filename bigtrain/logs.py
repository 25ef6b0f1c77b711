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
