"""Wall time of the commands that must feel instant, next to bare Python and bare TensorFlow.

    python scripts/time_cli.py [--repeats 7]

Runs each command `repeats` times, alternating, and prints the median seconds and the ratio to
`python -c pass`. The issue's target: `bigtrain --help` under 0.5 s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "bigtrain --help": [sys.executable, "-m", "bigtrain.cli.main", "--help"],
    "bigtrain ls": [sys.executable, "-m", "bigtrain.cli.main", "ls"],
    "bigtrain show": [sys.executable, "-m", "bigtrain.cli.main", "show"],
    "bigtrain validate": [sys.executable, "-m", "bigtrain.cli.main", "validate"],
    "python -c 'import tensorflow'": [sys.executable, "-c", "import tensorflow"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():  # alternate, so load changes hit all alike
            tic = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[name].append(time.perf_counter() - tic)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':34} {'median s':>9} {'min s':>7} {'x python':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:34} {med:9.3f} {min(ts):7.3f} {med / base:9.1f}")


if __name__ == "__main__":
    main()
