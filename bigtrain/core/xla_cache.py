"""XLA's persistent compilation cache for bigtrain's commands.

bigtrain's models run small XLA-compiled islands (bigtrain.models.transformer, and under a
KerasHub preset's layers bigtrain.models.fuse); compiling them is most of a Transformer run's
first step and first evaluation (about 2 s of 3 on a small LM here). TensorFlow can keep the
compiled code on disk and load it the next time the same computation (the exact HLO, checked
on load) is compiled. `enable()` points it, when `BIGTRAIN_XLA_CACHE` asks for it, at

    BIGTRAIN_XLA_CACHE=DIR          DIR
    BIGTRAIN_XLA_CACHE=on           $XDG_CACHE_HOME/bigtrain/xla, else ~/.cache/bigtrain/xla

in a subdirectory named after the TensorFlow version, the CPU (model and instruction set)
and XLA_FLAGS, so a home directory shared by machines of different kinds never hands one
machine another's code. It is off unless asked for: loading an entry makes TensorFlow print two
ERROR lines on the console (it first tries to parse the binary file as text, and its loader
warns of CPU "features" such as +prefer-no-scatter that are tuning hints, on the very
machine that compiled it), which no log level short of hiding TensorFlow's real errors
removes. A TF_XLA_FLAGS that already names a persistent cache is the user's and is left
alone.

TensorFlow fails the computation when it cannot write a cache entry, so the cache is only
written where the directory is writable, its disk has `MIN_FREE` bytes free and the cache
holds less than `MAX_SIZE`; otherwise it is read only (or, where it cannot be made, not
used). Must run before TensorFlow starts its runtime (the flags are read once).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
from pathlib import Path

log = logging.getLogger("bigtrain")

OFF = {"", "0", "off", "false", "no", "none"}
ON = {"1", "on", "true", "yes"}
MIN_FREE = 1 << 30  # bytes free on the cache's disk for bigtrain to write to it
MAX_SIZE = 2 << 30  # a cache this large is only read from
_FLAG = "--tf_xla_persistent_cache_directory"


def machine_key(environ=os.environ) -> str:
    """TensorFlow's version, the CPU this runs on and XLA_FLAGS, as a directory name."""
    try:
        from importlib.metadata import version

        tf_version = version("tensorflow")
    except Exception:  # noqa: BLE001 - a build without metadata
        tf_version = "unknown"
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            wanted = {"model name", "flags", "Features", "CPU part"}
            seen: dict[str, str] = {}
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in wanted and key not in seen:
                    seen[key] = value.strip()
                if not line.strip() and seen:
                    break  # the first processor's block is enough
            cpu = "|".join(f"{k}={seen[k]}" for k in sorted(seen))
    except OSError:
        cpu = platform.processor()
    # XLA_FLAGS change the code XLA emits (a vector width, an ISA cap)
    codegen = environ.get("XLA_FLAGS", "")
    digest = hashlib.sha256(f"{platform.machine()}|{cpu}|{codegen}".encode()).hexdigest()[:12]
    return f"tf{tf_version}-{platform.machine()}-{digest}"


def default_base(environ=os.environ) -> Path:
    setting = environ.get("BIGTRAIN_XLA_CACHE", "").strip()
    if setting and setting.lower() not in ON:
        return Path(setting).expanduser()
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "bigtrain" / "xla"


def _size(path: Path) -> int:
    total = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


def enable(environ=os.environ) -> str | None:
    """Add the persistent cache to TF_XLA_FLAGS in `environ` where BIGTRAIN_XLA_CACHE asks
    for it; return its directory, or None where it is off or cannot be used. Idempotent."""
    if environ.get("BIGTRAIN_XLA_CACHE", "").strip().lower() in OFF:
        return None
    flags = environ.get("TF_XLA_FLAGS", "")
    if "tf_xla_persistent_cache_directory" in flags:
        return None  # the user's own (or an earlier call's)
    path = default_base(environ) / machine_key(environ)
    if any(ch.isspace() for ch in str(path)):
        return None  # TF_XLA_FLAGS is split at whitespace
    try:
        path.mkdir(parents=True, exist_ok=True)
        writable = (os.access(path, os.W_OK | os.X_OK)
                    and shutil.disk_usage(path).free >= MIN_FREE and _size(path) < MAX_SIZE)
    except OSError as ex:
        log.debug("XLA compilation cache not used: %s", ex)
        return None
    extra = [f"{_FLAG}={path}"]
    if not writable:
        extra.append("--tf_xla_persistent_cache_read_only=true")
    environ["TF_XLA_FLAGS"] = " ".join([flags.strip(), *extra]).strip()
    return str(path)
