"""Finished runs: load one back from its run dir, evaluate it, export it."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from bigtrain import rundir
from bigtrain.config.errors import ConfigError
from bigtrain.config.schema import from_resolved

log = logging.getLogger("bigtrain")


def load_run(run_dir: Path, checkpoint: str = "latest"):
    """Rebuild a run's components from its config.yaml and restore a checkpoint into them."""
    from bigtrain.train.engine import LoopState
    from bigtrain.train.fit import build

    run_dir = Path(run_dir)
    resolved = rundir.read_config(run_dir)
    if resolved is None:
        raise ConfigError("RUN_DIR", f"{run_dir} is not a bigtrain run dir (no readable "
                          "config.yaml); pass the directory a `bigtrain fit` wrote")
    config = from_resolved(resolved)
    c = build(config, run_dir)
    state = LoopState()
    path = c.checkpointer.restore(state, which=checkpoint)
    if path is None:
        raise ConfigError("--checkpoint", f"{run_dir} has no {checkpoint} checkpoint "
                          f"(looked in {c.checkpointer.directory})")
    return config, c, state.step, path


def evaluate_run(run_dir: Path, split: str = "val", checkpoint: str = "latest"
                 ) -> dict[str, Any]:
    """Metrics of a checkpoint on a split; also written to eval_<split>_<checkpoint>.json."""
    config, c, step, path = load_run(run_dir, checkpoint)
    data = c.splits.eval_batches(split, config.trainer.eval_batch_size)
    metrics = c.engine.evaluate(data, prefix=f"{split}_")
    result = {"split": split, "checkpoint": path, "step": step, "metrics": metrics,
              "time": time.time()}
    rundir.atomic_write_text(Path(run_dir) / f"eval_{split}_{checkpoint}.json",
                           json.dumps(result, indent=2) + "\n")
    return result


def export_run(run_dir: Path, fmt: str, out: Path | None = None, checkpoint: str = "latest"
               ) -> Path:
    """Write a SavedModel (serving signature `serve`) or a `.keras` file."""
    _, c, step, path = load_run(run_dir, checkpoint)
    model = c.model
    if fmt == "savedmodel":
        out = Path(out or Path(run_dir) / "export" / "savedmodel")
        model.export(str(out), format="tf_saved_model", verbose=False)
    elif fmt == "keras":
        out = Path(out or Path(run_dir) / "export" / "model.keras")
        if out.suffix != ".keras":
            raise ConfigError("--out", f"{out} must end in .keras for --format keras")
        out.parent.mkdir(parents=True, exist_ok=True)
        model.save(str(out))
    else:
        raise ConfigError("--format", f"{fmt!r} is not valid; allowed: savedmodel, keras")
    log.info("exported %s (step %d) to %s", path, step, out)
    return out
