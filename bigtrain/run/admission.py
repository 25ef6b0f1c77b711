"""Nothing is written into a run dir before its run is accepted.

Hydra, before it calls the task, would save its record of the job (`.hydra/`) and open the
job's log file in the run dir; a command the task then refuses (a live run holds the dir, the
dir holds a run of another config, the config has a mistake, the run is already finished)
would have rewritten a finished run's record and added to its log. So conf/fit.yaml sets
`hydra.output_subdir: null` (Hydra saves no record), bigtrain.cli.hydra_glue makes Hydra's
log files open only when first written to, and the task holds the job's log records in
memory (`Admission`) until it accepts the run. `accept` then writes Hydra's record as Hydra
would (`.hydra/config.yaml`, `hydra.yaml`, `overrides.yaml`) and lets the held records and
the rest of the log through to the file.

A refused job drops its held records (the console showed them) and leaves an existing run
dir byte for byte as it was. A run dir that Hydra made for this job (empty when the task
began) is removed, except a sweep job's: that one keeps its failure (summary.json, the log,
the record), since the sweep table reads it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from bigtrain.core.files import atomic_write_bytes, atomic_write_text

#: the folder of Hydra's record of a job in its run dir (`bigtrain runs` reads overrides.yaml)
RECORD = ".hydra"


def write_record(run_dir: Path, task_cfg: Any) -> None:
    """Hydra's record of the running job, as Hydra's run_job writes it: the job's config
    (unresolved), the `hydra` node and the command line's task overrides."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.instance().cfg
    if hydra_cfg is None:  # not under Hydra (tests, embedding code): no record
        return
    for name, node in (("config.yaml", task_cfg), ("hydra.yaml", hydra_cfg),
                       ("overrides.yaml", hydra_cfg.hydra.overrides.task)):
        atomic_write_text(Path(run_dir) / RECORD / name, OmegaConf.to_yaml(node))


def _snapshot(run_dir: Path, logs: list[Path]) -> tuple[dict, dict, bool]:
    """What accepting a run may rewrite in `run_dir`: the run's config and Hydra's record (their
    bytes, None where absent), the log files (their sizes) and whether the record existed."""
    files = [run_dir / "config.yaml", *(run_dir / RECORD / n for n in
                                        ("config.yaml", "hydra.yaml", "overrides.yaml"))]
    return ({p: p.read_bytes() if p.is_file() else None for p in files},
            {p: p.stat().st_size if p.is_file() else None for p in logs},
            (run_dir / RECORD).is_dir())


class _Held(logging.Handler):
    """Keeps the records that the log file would get, until the run is accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Admission:
    """Holds a job's writes to its run dir until `accept`.

    `record`: the chief of a job Hydra runs, which owns the dir: it writes Hydra's record on
    acceptance, and removes a dir made for it if refused. `keep_refused`: a refused job in a
    run dir made for it records its failure there instead (a sweep job). `task_cfg`: the
    job's config, for the record."""

    def __init__(self, run_dir: Path, task_cfg: Any = None, *, record: bool = True,
                 keep_refused: bool = False):
        self.run_dir = Path(run_dir)
        self.task_cfg = task_cfg
        self.record = record
        self.keep_refused = keep_refused
        self.accepted = False
        self._before: tuple[dict, dict, bool] | None = None  # see accept and undo
        self._held = _Held()
        self._files: list[logging.FileHandler] = []
        self.fresh = False

    def __enter__(self) -> Admission:
        root = logging.getLogger()
        self._files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
        for h in self._files:
            root.removeHandler(h)
        root.addHandler(self._held)
        # made by Hydra for this job: empty, but for a log file a launcher opened already
        logs = {Path(h.baseFilename) for h in self._files}
        self.fresh = self.run_dir.is_dir() and all(
            p in logs and p.stat().st_size == 0 for p in self.run_dir.iterdir())
        return self

    @property
    def records_refusal(self) -> bool:
        """Whether a refused job records its failure in the run dir (a new sweep job's)."""
        return self.keep_refused and self.fresh and self.record

    def accept(self) -> None:
        """The run is accepted: write Hydra's record, and let the log through to its file."""
        if self.accepted:
            return
        self.accepted = True
        self._before = _snapshot(self.run_dir, [Path(h.baseFilename) for h in self._files])
        if self.record and self.task_cfg is not None:
            write_record(self.run_dir, self.task_cfg)
        root = logging.getLogger()
        root.removeHandler(self._held)
        for h in self._files:
            root.addHandler(h)
            for r in self._held.records:
                if r.levelno >= h.level:
                    h.handle(r)
        self._held.records.clear()

    def undo(self) -> bool:
        """A refusal that only the data shows, after acceptance (the data changed since the
        run, a batch larger than a split): put back what the run's record and log were, so an
        existing run dir is left as it was. False for a dir made for this job (its failure is
        recorded there) or a job not accepted."""
        if not self.accepted or self.fresh or self._before is None:
            return False
        files, logs, had_record = self._before
        root = logging.getLogger()
        for h in self._files:  # the log file stops here
            root.removeHandler(h)
            h.close()
        for path, old in files.items():
            if old is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write_bytes(path, old)
        for path, size in logs.items():
            if size is None:
                path.unlink(missing_ok=True)
            elif path.exists():
                os.truncate(path, size)
        record = self.run_dir / RECORD
        if not had_record and record.is_dir() and not any(record.iterdir()):
            record.rmdir()
        return True

    def __exit__(self, *exc: object) -> None:
        if self.accepted:
            return
        logging.getLogger().removeHandler(self._held)
        self._held.records.clear()
        for h in self._files:  # never opened (delayed), or opened by a launcher: closed
            h.close()
        if self.fresh and self.record and not self.keep_refused:
            try:
                os.rmdir(self.run_dir)  # only if still empty: nothing else wrote into it
            except OSError:
                pass
