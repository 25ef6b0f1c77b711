"""Every results file under scripts/results/ as Markdown: one table per file, headed by the
machine, commit, date and exact command of its run.

    python -m scripts.report                      # everything, grouped by script, newest first
    python -m scripts.report --script bench bench_gpu --out performance.md

`performance_markdown()` returns the same text (the docs' performance page includes it).
Importing this module imports only the standard library: no TensorFlow.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from scripts import harness
from scripts.harness import RESULTS, UNRECORDED, payload

#: the CPU flags a heading names, as /proc/cpuinfo spells them and as people write them
FLAG_NAMES = {"amx_bf16": "AMX-BF16", "avx512_fp16": "AVX512-FP16",
              "avx512_bf16": "AVX512-BF16", "avx512f": "AVX-512", "avx2": "AVX2"}
LIBRARY_NAMES = {"tensorflow": "TensorFlow", "keras": "Keras", "keras-hub": "KerasHub",
                 "torch": "PyTorch"}


def load_records(root: Path = RESULTS) -> list[tuple[Path, dict]]:
    """(path, record) of every results file under root/<script>/ (recursively: device_check
    keeps a folder per run); files that are not records (no `script` key) are left out."""
    found = []
    for path in sorted(Path(root).glob("*/**/*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and "script" in record:
            found.append((path, record))
    return found


# ---------------------------------------------------------------------------------- cells


def cell(value) -> str:
    """A table cell: numbers to 3 significant figures (thousands grouped), lists joined."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def flatten(row: Mapping, prefix: str = "") -> dict:
    """A row with nested dicts spread into dotted columns (`estimate_mib.total`)."""
    out = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def table(rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> str:
    """A Markdown table: one line per row, the columns given or every key in the order met."""
    flat = [flatten(r) for r in rows]
    if not columns:
        columns = list(dict.fromkeys(k for r in flat for k in r))
    if not flat or not columns:
        return "(no rows)"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in flat]
    return "\n".join(lines)


def flat_rows(results: Mapping, prefix: str = "") -> list[dict]:
    """Rows for a record without a table of its own: every measured value, by its path."""
    rows = []
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += flat_rows(value, name + " / ")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                rows += flat_rows(item, f"{name} [{i}] / ")
        else:
            rows.append({"measure": name, "value": value})
    return rows


# ---------------------------------------------------------------------------------- headings


def machine_label(machine: Mapping) -> str:
    """`Intel(R) Xeon(R) Processor, 2 cores (AMX-BF16, AVX512-BF16, AVX-512), 7.8 GiB` or a
    GPU's name; `unrecorded` where the record lacks the CPU."""
    listed = machine.get("gpus") or []
    gpu = ""
    if listed:
        names = sorted({g["name"] for g in listed})
        gpu = (f"{len(listed)} x " if len(listed) > 1 else "") + ", ".join(names)
    elif machine.get("device") and machine["device"] != "CPU":
        gpu = machine["device"]
    cores = machine.get("cores") or machine.get("cpus") or machine.get("cpu_count")
    flags = [label for flag, label in FLAG_NAMES.items()
             if flag in (machine.get("cpu_flags") or ())]
    if flags and "AVX-512" in flags and "AVX2" in flags:
        flags.remove("AVX2")
    cpu = machine.get("cpu") or f"CPU {UNRECORDED}"
    parts = [cpu]
    if cores:
        parts[0] += f", {cores} cores"
    if flags:
        parts[0] += f" ({', '.join(flags)})"
    if machine.get("memory_gib"):
        parts.append(f"{machine['memory_gib']} GiB")
    text = ", ".join(parts)
    if gpu:
        return gpu if cpu == f"CPU {UNRECORDED}" else f"{gpu} (host: {text})"
    return text


def _when(date: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(date)
    except (TypeError, ValueError):
        return f"date {date or UNRECORDED}"
    if moment.tzinfo is None:
        return f"{moment:%Y-%m-%d %H:%M}"
    return f"{moment.astimezone(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"


def _load(machine: Mapping) -> str:
    start = machine.get("loadavg")
    end = machine.get("loadavg_end")
    first = start[0] if isinstance(start, list) and start else start
    last = end[0] if isinstance(end, list) and end else end
    if first is None:
        return ""
    return f"load average {first:.2f}" + (f" to {last:.2f}" if last is not None else "")


def heading(record: Mapping) -> tuple[str, list[str]]:
    """The title line of a record's table and the lines under it (command, versions, load,
    notes)."""
    machine = record.get("machine") or {}
    code = record.get("commit") or {}
    sha = code.get("sha") or UNRECORDED
    short = sha[:7] if sha != UNRECORDED else UNRECORDED
    dirty = " (with uncommitted changes)" if code.get("dirty") else ""
    title = (f"{_when(record.get('date', UNRECORDED))} · {machine_label(machine)} · "
             f"commit {short}{dirty}")
    command = record.get("command") or UNRECORDED
    lines = [f"`{command}`" if command != UNRECORDED else f"command {UNRECORDED}"]
    found = machine.get("versions") or {
        k: machine.get(k) for k in LIBRARY_NAMES if machine.get(k)}
    libraries = [f"{LIBRARY_NAMES[k]} {v}" for k, v in found.items()
                 if k in LIBRARY_NAMES and v]
    facts = [", ".join(libraries), _load(machine)]
    if any(facts):
        lines.append("; ".join(f for f in facts if f))
    migrated = record.get("migrated")
    if migrated:
        lines.append(f"Moved from `{migrated['from']}`, which was last committed on "
                     f"{migrated.get('last_committed', UNRECORDED)} in "
                     f"{migrated.get('last_commit', UNRECORDED)}. "
                     f"{migrated.get('note', '')}".strip())
    if record.get("notes"):
        lines.append(f"Notes: {record['notes']}")
    return title, lines


def record_markdown(record: Mapping, level: int = 3, path: Path | None = None) -> str:
    """One results file: its heading, then its table (its `rows`, else every value)."""
    title, lines = heading(record)
    if path is not None:
        try:
            path = Path(path).resolve().relative_to(harness.ROOT)
        except ValueError:
            pass
        lines.append(f"Results file: `{path}`")
    rows = record.get("rows")
    if not (isinstance(rows, list) and all(isinstance(r, Mapping) for r in rows)):
        rows = flat_rows(payload(record))
    return "\n\n".join([f"{'#' * level} {title}", *lines, table(rows, record.get("columns"))])


def _newest_first(item: tuple[Path, dict]):
    path, record = item
    date = record.get("date", UNRECORDED)
    recorded = date not in (None, UNRECORDED)
    committed = (record.get("migrated") or {}).get("last_committed", "")
    return (recorded, str(date) if recorded else str(committed), path.name)


def performance_markdown(root: Path = RESULTS, scripts: Iterable[str] | None = None,
                         level: int = 2) -> str:
    """Every results file under `root` as Markdown: a section per script (`level`), in it a
    table per results file, newest first (files with no recorded date after those with one,
    by the commit that last changed them)."""
    wanted = set(scripts) if scripts else None
    by_script: dict[str, list[tuple[Path, dict]]] = {}
    for path, record in load_records(root):
        if wanted is None or record["script"] in wanted:
            by_script.setdefault(record["script"], []).append((path, record))
    out = []
    for script in sorted(by_script):
        out.append(f"{'#' * level} `{script}`")
        for path, record in sorted(by_script[script], key=_newest_first, reverse=True):
            out.append(record_markdown(record, level + 1, path))
    return "\n\n".join(out) + "\n"


def main() -> None:
    parser = harness.arguments("report", __doc__, out=False)
    parser.add_argument("--script", nargs="*", default=None, help="these scripts' files only")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results folder")
    parser.add_argument("--out", type=Path, default=None, help="write here, not to stdout")
    args = parser.parse_args()
    text = performance_markdown(args.results, args.script)
    if args.out:
        args.out.write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
