"""Console output shared by logging and progress: one rich console, so they never garble;
the log handler, paths as the user types them, and a run's closing line. What TensorFlow
prints while it starts is kept off this console by bigtrain/core/tensorflow_start.py.
"""

from __future__ import annotations

import logging
import os
import sys

from rich.console import Console

CONSOLE = Console(stderr=True)
DEBUG_ENV = "BIGTRAIN_DEBUG"
log = logging.getLogger("bigtrain")


def debug_enabled() -> bool:
    """`BIGTRAIN_DEBUG=1`: tracebacks and TensorFlow's own start-up output."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def console_handler() -> logging.Handler:
    """Rich log lines on a terminal; plain 'LEVEL message' lines when piped (CI logs)."""
    if CONSOLE.is_terminal:
        from rich.logging import RichHandler

        return RichHandler(console=CONSOLE, show_path=False, rich_tracebacks=False,
                           log_time_format="[%X]")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    return handler


def shown_path(path) -> str:
    """A path as the user would type it: relative to the current dir when under it."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


#: the metrics the closing line shows (with the monitored one); the rest are in summary.json
HEADLINE = ("loss", "accuracy", "mae")
#: the closing line shows a baseline beside the first of these scores it shows
BASELINES = ("mae", "perplexity", "accuracy")


def closing_line(steps: int, wall_s: float, final: dict, run_dir, monitor: str = "") -> str:
    """The last line of a run: its length, the validation and test result (loss, accuracy or
    mae, and the monitored metric), and where it is; short enough for one line of a
    160-column terminal (every metric is in summary.json)."""
    watched = monitor.split("_", 1)[1] if monitor.startswith(("val_", "test_")) else monitor
    names = [*HEADLINE, *([watched] if watched and watched not in HEADLINE else [])]
    parts = [f"done: {steps} steps, {wall_s:.1f}s"]
    for split in ("val", "test"):
        shown = [n for n in names if isinstance(final.get(f"{split}_{n}"), int | float)]
        beside = next((n for n in BASELINES if n in shown
                       and isinstance(final.get(f"{split}_baseline_{n}"), int | float)), None)
        values = [f"{n} {final[f'{split}_{n}']:.4g}" + (
            f" (baseline {final[f'{split}_baseline_{n}']:.4g})" if n == beside else "")
            for n in shown]
        if values:
            parts.append(f"{split} " + " ".join(values))
    parts.append(shown_path(run_dir))
    return "; ".join(parts)
