"""Kept for existing command lines: `python scripts/launch_local.py ARGS` (or `python -m
scripts.launch_local ARGS`) runs `bigtrain launch ARGS` (bigtrain/run/launch.py, shipped with
the package), e.g.

    python scripts/launch_local.py --workers 2 -- bigtrain fit strategy=multi_worker ...

Not a measurement: it imports bigtrain alone (no scripts.harness), so it still runs from its
path, as old command lines give it.
"""

from __future__ import annotations

import sys

from bigtrain.cli.main import app

if __name__ == "__main__":
    app(["launch", *sys.argv[1:]], prog_name="bigtrain")
