"""TensorFlow imported without its start-up chatter on the console.

TensorFlow's start-up chatter (absl's "All log messages before absl::InitializeLog()", the
oneDNN and cudart notices, `failed call to cuInit` on a machine without a GPU) is written by
C++ straight to file descriptor 2, before Python's logging exists and whatever
TF_CPP_MIN_LOG_LEVEL says. `import_tensorflow` therefore points fd 2 at a buffer while
TensorFlow loads and looks for GPUs, then puts what it caught in the run's log file (never on
the console). `BIGTRAIN_DEBUG=1` leaves TensorFlow's output alone.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from bigtrain.core.console import console_handler, debug_enabled

log = logging.getLogger("bigtrain")


def quiet_tensorflow() -> None:
    """For commands outside Hydra's job logging: bigtrain's INFO lines, TensorFlow's warnings,
    and TensorFlow imported without its start-up chatter."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(console_handler())
    root.setLevel(logging.INFO)
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import_tensorflow()


@contextmanager
def fd2_to_buffer() -> Iterator[list[str]]:
    """Point file descriptor 2 at a temporary file; yield a list that receives its lines."""
    caught: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (a closed stderr): nothing to keep clean
        yield caught
        return
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            yield caught
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            caught += buf.read().decode("utf-8", errors="replace").splitlines()


def import_tensorflow() -> None:
    """Import TensorFlow and let it look for GPUs with its native start-up output caught; the
    output goes to the log file(s) of the root logger, a GPU that the machine has but
    TensorFlow cannot use is said in bigtrain's words. Idempotent; the first caller wins."""
    if "tensorflow" in sys.modules:
        return
    if debug_enabled():
        import tensorflow  # noqa: F401  # everything on the console, as TensorFlow prints it
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's later C++ INFO lines
    caught: list[str] = []
    try:
        with fd2_to_buffer() as caught:
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")  # cuInit and its messages: now
    except Exception:  # an import that fails shows everything TensorFlow said
        if caught:
            sys.stderr.write("\n".join(caught) + "\n")
        raise
    except BaseException:  # Ctrl-C while TensorFlow loads: not its failure, so its chatter
        to_log_files(caught, "tensorflow start-up (interrupted)")  # stays off the console
        raise
    to_log_files(caught, "tensorflow start-up")
    if not gpus and nvidia_driver() and not gpus_hidden():
        why = next((ln for ln in caught if "cuInit" in ln or "cuda" in ln.lower()), "")
        log.warning("this machine has an NVIDIA driver but TensorFlow found no GPU it can use%s;"
                    " TensorFlow runs on the CPU (`bigtrain env` lists the devices, "
                    "BIGTRAIN_DEBUG=1 shows TensorFlow's messages)",
                    f" ({why.split('] ', 1)[-1][:160]})" if why else "")


def nvidia_driver() -> bool:
    """Whether an NVIDIA kernel driver is loaded (a GPU was meant to be used)."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


def gpus_hidden() -> bool:
    """CUDA_VISIBLE_DEVICES set to hide every GPU: no GPU is the user's own choice."""
    return os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")


def to_log_files(lines: list[str], what: str) -> None:
    """Write `lines` to the root logger's file handlers only (the run's fit.log), never to
    the console."""
    if not lines:
        return
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    text = f"{what} (native output, {len(lines)} lines):\n" + "\n".join(lines)
    record = logging.LogRecord("tensorflow", logging.INFO, __file__, 0, text, None, None)
    for h in files:
        h.handle(record)
