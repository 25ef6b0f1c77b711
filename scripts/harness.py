"""What every measurement in scripts/ shares: the machine it ran on, the code it ran, the
alternation of the sides it compares, medians, the matmul peak, and its results file.

    python -m scripts.harness              # this machine and commit, as a results file records them
    python -m scripts.harness --run-name   # the stem a results file of a run started now gets

A results file is one run's: `scripts/results/<script>/<YYYYMMDD-HHMM>-<machine>-<commit7>.json`
(UTC; `-dirty` after the commit when tracked files differ from it), holding

    {"script", "date", "finished", "command", "machine", "commit", "rows", ...the script's own keys}

`rows` is the table `python -m scripts.report` renders (a list of flat dicts; `columns`, when
present, the ones to show). A run writes only its own file, never another run's, and a file
holds one run: runs are never merged, so a file's machine is every row's machine.

Importing this module imports only the standard library (no TensorFlow, no bigtrain): it
serves `bench_gpu --torch-only` on a machine without TensorFlow, and the report.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
RESULTS = SCRIPTS / "results"
#: the `bigtrain` command, as a child process of this Python
BIGTRAIN = [sys.executable, "-m", "bigtrain.cli.main"]
#: what a record says where its source did not record a fact (older results files)
UNRECORDED = "unrecorded"
#: the keys of a record that are not the script's own results
META = ("script", "date", "finished", "command", "machine", "commit", "migrated", "rows",
        "columns")
#: the libraries whose versions a machine description lists (installed or not)
LIBRARIES = ("tensorflow", "keras", "keras-hub", "torch", "numpy", "bigtrain")


# ------------------------------------------------------------------------------ product code


def product(name: str):
    """A bigtrain module that needs only the standard library at import (bigtrain.strategy.
    devices, bigtrain.strategy.peaks): imported as usual, or from its file in this checkout
    where bigtrain's package does not import (its dependencies missing: a GPU machine with
    PyTorch alone, where `bench_gpu --torch-only` runs)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        path = ROOT / (name.replace(".", "/") + ".py")
        spec = importlib.util.spec_from_file_location(f"_standalone_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


# ------------------------------------------------------------------------------ the machine


def cpu_flags() -> list[str]:
    """The CPU flags that matter for training (avx2, avx512f, avx512_bf16, amx_*...), as
    bigtrain's precision choice reads them."""
    return sorted(product("bigtrain.strategy.devices").cpu_flags())


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpus() -> list[dict]:
    """NVIDIA GPUs as nvidia-smi lists them (no TensorFlow, no PyTorch asked); [] without."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.strip().splitlines():
        name, memory, driver = (part.strip() for part in line.split(",")[:3])
        found.append({"name": name, "memory_mib": int(float(memory)) if memory else None,
                      "driver": driver})
    return found


def versions() -> dict[str, str | None]:
    """Python's and the libraries' versions (None: not installed), read without importing
    them."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def describe_machine() -> dict:
    """This machine as a results file records it: CPU model and flags, cores, memory, GPUs,
    load average, platform and library versions."""
    devices = product("bigtrain.strategy.devices")
    flags = cpu_flags()
    return {"cpu": devices.cpu_name(), "cpu_flags": flags,
            "native_bf16": devices.cpu_native_bf16(set(flags)),
            "cores": len(os.sched_getaffinity(0)), "cpus": os.cpu_count(),
            "memory_gib": memory_gib(), "gpus": gpus(), "platform": platform.platform(),
            "loadavg": [round(x, 2) for x in os.getloadavg()], "versions": versions()}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine_slug(machine: Mapping) -> str:
    """A short name for a machine, for results file names: the first GPU's (nvidia-h200,
    nvidia-h100-80gb-hbm3-x8), else the CPU model, its widest vector unit and its cores
    (intel-xeon-amx-2c, amd-epyc-avx512-2c); `unrecorded` for what the record lacks."""
    listed = machine.get("gpus") or []
    if listed:
        return _slug(listed[0]["name"]) + (f"-x{len(listed)}" if len(listed) > 1 else "")
    device = machine.get("device")  # older bench_gpu files: the device's name
    if device and device != "CPU":
        return _slug(device)
    cpu = machine.get("cpu") or UNRECORDED
    words = re.sub(r"\((r|tm)\)|\bprocessor\b|\bcpu\b|@.*$|\b\d+-core\b", " ", cpu.lower())
    name = _slug(words)[:32].strip("-") or UNRECORDED
    flags = set(machine.get("cpu_flags") or ())
    tier = ("amx" if flags & {"amx_bf16", "amx_tile"} else "avx512" if "avx512f" in flags
            else "avx2" if "avx2" in flags else "")
    cores = machine.get("cores") or machine.get("cpus") or machine.get("cpu_count")
    return "-".join(p for p in (name, tier, f"{cores}c" if cores else "") if p)


# ------------------------------------------------------------------------------ the code


def commit() -> dict:
    """The checkout's commit and whether tracked files differ from it (untracked ones, new
    results files among them, do not count); unrecorded outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              check=True, timeout=60).stdout.strip()
    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"sha": UNRECORDED, "dirty": None}
    return {"sha": sha, "dirty": dirty}


# ------------------------------------------------------------------------------ measuring


median = statistics.median


@dataclass
class Repetitions:
    """What `alternate` measured: every side's values in the order they ran, and the sides
    that failed (with the error), which ran no further repetitions."""

    values: dict[str, list] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def medians(self) -> dict[str, Any]:
        return {name: median(v) for name, v in self.values.items() if v}

    def best(self) -> dict[str, Any]:
        return {name: max(v) for name, v in self.values.items() if v}


def alternate(sides: Mapping[str, Callable[[], Any]], reps: int, *, rotate: bool = False,
              tolerate: Collection[str] = (),
              on_repetition: Callable[[int], None] | None = None,
              on_value: Callable[[str, Any], None] | None = None) -> Repetitions:
    """Run every side once per repetition, one after another, `reps` times, so that what
    changes on a shared machine (other processes, the load, the clock) hits every side alike;
    only values from one such run are compared. `rotate`: each repetition starts one side
    later (no side always follows the same one). `tolerate`: sides whose exceptions are
    recorded in `failed` (that side then sits out) instead of ending the run. Each call's
    value (seconds, a rate, a dict) is kept in order; the caller takes medians or the best."""
    out = Repetitions({name: [] for name in sides})
    names = list(sides)
    for rep in range(reps):
        if on_repetition:
            on_repetition(rep)
        shift = rep % len(names) if rotate and names else 0
        for name in names[shift:] + names[:shift]:
            if name in out.failed:
                continue
            try:
                value = sides[name]()
            except Exception as e:
                if name not in tolerate:
                    raise
                out.failed[name] = f"{type(e).__name__}: {e}"[:500]
                print(f"{name} failed: {out.failed[name]}", flush=True)
                continue
            out.values[name].append(value)
            if on_value:
                on_value(name, value)
    return out


def matmul_peak_gflops(precision: str) -> float:
    """GFLOP/s of a chain of square matmuls at `precision` (fp32, bf16, fp16) on this CPU,
    measured now: bigtrain.strategy.peaks.measure_cpu_peak, the ceiling MFU divides by."""
    return product("bigtrain.strategy.peaks").measure_cpu_peak(precision) / 1e9


def time_command(command: list[str], cwd: Path | str | None = None,
                 env: Mapping[str, str] | None = None) -> float:
    """Wall seconds of one run of `command` (its output captured; a failure raises)."""
    tic = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, cwd=cwd,
                   env=None if env is None else dict(env))
    return time.perf_counter() - tic


#: a small parent for each measured command: a child forked from a (large) benchmark process
#: would count that process's resident pages in its own peak
RSS_WRAPPER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], "
               "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
               "_, status, usage = os.wait4(p.pid, 0); "
               "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)")


def peak_rss_mib(command: list[str], cwd: Path | str | None = None) -> tuple[int, float]:
    """(exit status, peak resident MiB) of `command`, from the kernel's rusage of it."""
    done = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *command], capture_output=True,
                          text=True, cwd=cwd, check=True)
    code, kib = map(int, done.stdout.split())
    return code, kib / 1024  # ru_maxrss is in KiB on Linux


# ------------------------------------------------------------------------------ results


def arguments(script: str, doc: str | None, out: bool = True) -> argparse.ArgumentParser:
    """A script's argument parser: `python -m scripts.NAME` as its program, the first line of
    its docstring as its description and, with `out`, the `--out FILE.json` every results
    writer takes (default: a new file in the results layout)."""
    parser = argparse.ArgumentParser(prog=f"python -m scripts.{script}",
                                     description=(doc or "").strip().split("\n\n")[0] or None)
    if out:
        parser.add_argument("--out", type=Path, default=None,
                            help=f"the results file (default: a new one in "
                                 f"scripts/results/{script}/)")
    return parser


def command_line(script: str, argv: list[str] | None = None) -> str:
    """The command as it is run from the repository root: `python -m scripts.NAME ARGS`."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", "-m", f"scripts.{script}", shlex.join(args)]).rstrip()


def run_name(machine: Mapping, code: Mapping, when: datetime.datetime) -> str:
    """`<YYYYMMDD-HHMM>-<machine>-<commit7>[-dirty]`: a results file's stem."""
    sha = code.get("sha") or UNRECORDED
    short = sha[:7] if sha != UNRECORDED else UNRECORDED
    return (f"{when.astimezone(datetime.timezone.utc):%Y%m%d-%H%M}-{machine_slug(machine)}-"
            f"{short}{'-dirty' if code.get('dirty') else ''}")


def payload(record: Mapping) -> dict:
    """A record's results without the harness's keys (machine, commit, rows...)."""
    return {k: v for k, v in record.items() if k not in META}


def _jsonable(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


class Run:
    """One run of a script: the machine, commit, command and start time, taken when it
    starts; `write` puts them with the results into the run's own file (again after each
    part, if the script writes as it goes: the same file)."""

    def __init__(self, script: str, out: str | Path | None = None,
                 argv: list[str] | None = None):
        self.script = script
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.command = command_line(script, argv)
        self.machine = describe_machine()
        self.commit = commit()
        self.out = Path(out) if out else None
        self.path: Path | None = None

    def record(self, results: Mapping, rows=None, columns=None) -> dict:
        clash = set(results) & (set(META) - {"rows"})
        if clash or (rows is not None and "rows" in results):
            raise ValueError(f"{self.script}: results use the harness's keys {sorted(clash)}")
        now = datetime.datetime.now(datetime.timezone.utc)
        record = {"script": self.script, "date": self.started.isoformat(timespec="seconds"),
                  "finished": now.isoformat(timespec="seconds"), "command": self.command,
                  "machine": {**self.machine,
                              "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
                  "commit": self.commit, **results}
        if callable(rows):
            rows = rows(record)
        if rows is not None:
            record["rows"] = rows
        if columns:
            record["columns"] = list(columns)
        return record

    def _claim(self) -> Path:
        """The run's file: --out as given, else a new name in the results layout (a suffix
        where one started in the same minute on the same machine and commit has it)."""
        if self.out:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            return self.out
        folder = RESULTS / self.script
        folder.mkdir(parents=True, exist_ok=True)
        stem = run_name(self.machine, self.commit, self.started)
        for n in range(1, 1000):
            path = folder / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
            try:
                with open(path, "x"):
                    return path
            except FileExistsError:
                continue
        raise RuntimeError(f"no free results file name for {stem}")

    def write(self, results: Mapping, rows=None, columns=None) -> Path:
        """Write the record (the machine, commit, command, dates and `results`; `rows`: the
        table, or a function of the record giving it) to this run's file; returns its path."""
        record = self.record(results, rows, columns)
        if self.path is None:
            self.path = self._claim()
        self.path.write_text(json.dumps(record, indent=2, default=_jsonable) + "\n")
        return self.path


def main() -> None:
    parser = arguments("harness", __doc__, out=False)
    parser.add_argument("--run-name", action="store_true",
                        help="print the stem a results file of a run started now gets")
    args = parser.parse_args()
    machine, code = describe_machine(), commit()
    name = run_name(machine, code, datetime.datetime.now(datetime.timezone.utc))
    if args.run_name:
        print(name)
        return
    print(json.dumps({"run_name": name, "machine": machine, "commit": code}, indent=2))


if __name__ == "__main__":
    main()
