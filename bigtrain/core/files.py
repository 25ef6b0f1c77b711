"""Files that readers never see half-written: atomic text writes, directories swapped into
place, JSON without NaN, and an append-only JSON-lines writer. Used by every layer that writes
(run dirs, exports, tokenizers, the peak cache), so it knows nothing of what it writes."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """`atomic_write_text` for bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def replace_dir(out: Path, write: Callable[[Path], Any]) -> Path:
    """Make the directory `out` with `write(tmp)` into a temporary directory beside it, then
    swap it into place (a file of that name included): a reader sees the old one or the new
    one (or, between two renames, none), never half of either, and a failed `write` leaves
    the old one as it was. The new directory gets the mode a plain mkdir would (0777 less the
    umask), not mkdtemp's 0700."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    old = out.with_name(f".{out.name}.old{os.getpid()}")
    try:
        write(tmp)
        if out.exists():
            out.rename(old)
            try:
                tmp.rename(out)
            except OSError:
                old.rename(out)
                raise
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:  # a file was where the directory goes
            old.unlink(missing_ok=True)
    return out


def json_safe(value: Any) -> Any:
    """JSON-safe numbers: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class MetricsWriter:
    """Appends one JSON object per line to metrics.jsonl; flushed so a crash loses nothing."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(json_safe(record)) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
