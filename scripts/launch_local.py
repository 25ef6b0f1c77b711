"""Kept for existing command lines: `python scripts/launch_local.py ARGS` runs
`bigtrain launch ARGS` (bigtrain/launch.py, shipped with the package), e.g.

    python scripts/launch_local.py --workers 2 -- bigtrain fit strategy=multi_worker ...
"""

from __future__ import annotations

import sys

from bigtrain.cli.main import app

if __name__ == "__main__":
    app(["launch", *sys.argv[1:]], prog_name="bigtrain")
