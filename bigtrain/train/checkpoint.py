"""Checkpoints of everything a run needs to continue exactly.

One `tf.train.Checkpoint` holds the model (weights, batch-norm statistics, dropout seed
states), the optimizer (slots and iteration counter), the step, the learning-rate scale and the
loop's bookkeeping (best metrics, early-stopping counter, NaN rollbacks) as a JSON string. The
epoch and the position in the data follow from the step, because every epoch's order is seeded.

TensorFlow writes a checkpoint's files first and the `checkpoint` index last, so a crash while
writing leaves the previous checkpoint the latest; a damaged latest checkpoint is skipped on
restore with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from bigtrain.core import faults
from bigtrain.core.hooks import LoopState

log = logging.getLogger("bigtrain")

# errors that mean "this checkpoint's files are damaged or gone", not "it is another model"
# (a truncated data file surfaces as IndexError "Read less bytes than requested")
_DAMAGED = (tf.errors.OpError, OSError, IndexError)


class CompiledWrites:
    """What the CheckpointManagers write through: the run's tf.train.Checkpoint, each write
    one call of a compiled function (traced at the first write, and again if variables were
    added). The eager write walks the object graph and reads every variable from Python each
    time: 50-90 ms for the digits CNN, which writes 19 checkpoints in a default run; the
    compiled one 5-10 ms, the first ~0.3 s. The manager's bookkeeping (the index file, the
    newest kept) runs after each write, as it does after an eager one."""

    def __init__(self, checkpoint: tf.train.Checkpoint, count):
        self._checkpoint, self._count = checkpoint, count  # count(): variables to save
        self._fn, self._traced_for = None, -1

    def __getattr__(self, name: str):  # save_counter, restore, sync: the checkpoint's own
        return getattr(self._checkpoint, name)

    def _write(self, file_prefix: str, options: tf.train.CheckpointOptions | None = None):
        callbacks = list(options.experimental_write_callbacks or []) if options else []
        default = tf.train.CheckpointOptions()
        if options is not None and any(getattr(options, k) != getattr(default, k)
                                       for k in type(default).__slots__
                                       if k != "experimental_write_callbacks"):
            return self._checkpoint._write(file_prefix, options=options)  # eagerly, as asked
        if self._fn is None or self._count() != self._traced_for:
            self._traced_for = self._count()
            write = self._checkpoint._write
            self._fn = tf.function(lambda prefix: write(prefix), autograph=False)
        tf.io.gfile.makedirs(os.path.dirname(file_prefix))  # the eager write makes it itself
        path = self._fn(tf.constant(file_prefix)).numpy().decode()
        for callback in callbacks:
            callback(path)
        return path


class CheckpointError(RuntimeError):
    """No usable checkpoint, a checkpoint of another model, or one that could not be written."""


class Checkpointer:
    """Saves and restores a run's checkpoints. In multi-worker runs every worker must take part
    in a save, but only the chief (`is_chief`) writes into the run dir: the others write to a
    scratch dir of their own, removed by `close()`. All restore from the run dir."""

    def __init__(self, directory: Path, model, optimizer, keep: int, lr_scale=None,
                 is_chief: bool = True, trained_only: bool = False, base: str | None = None,
                 compiled: bool = False):
        self.directory = Path(directory)
        self.is_chief = is_chief
        self._scratch: Path | None = None
        write_dir = self.directory
        if not is_chief:
            self._scratch = write_dir = Path(tempfile.mkdtemp(prefix="bigtrain-worker-ckpt-"))
        self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._state = tf.Variable("{}", dtype=tf.string, trainable=False, name="loop_state")
        # trained_only (LoRA, a frozen backbone): the weights loaded from `base` are not
        # saved; the checkpoint records `base` (bigtrain.models.hub.base_record) instead
        parts = {"optimizer": optimizer, "step": self._step, "loop_state": self._state}
        if trained_only:
            parts["trained"] = {v.path.replace("/", "."): v for v in model.trainable_variables}
        else:
            parts["model"] = model
        self._base = base or ""
        if base:
            parts["base"] = tf.Variable(self._base, dtype=tf.string, trainable=False,
                                        name="base")
        if lr_scale is not None:
            parts["lr_scale"] = lr_scale
        # Keras layers' random seed states (dropout) are model variables that tf.train does not
        # track through the layers: list them, so a resumed run draws the same masks
        seeds = [v for v in model.variables if "seed_generator" in v.path]
        if seeds:
            parts["rng_state"] = seeds
        self._ckpt = tf.train.Checkpoint(**parts)
        # compiled: writes as one compiled call each (CompiledWrites; one replica, one worker)
        writes = CompiledWrites(self._ckpt, lambda: len(model.variables) +
                                len(optimizer.variables)) if compiled else self._ckpt
        self._manager = tf.train.CheckpointManager(writes, str(write_dir),
                                                   max_to_keep=keep, checkpoint_name="ckpt")
        self._best = tf.train.CheckpointManager(writes, str(write_dir / "best"),
                                                max_to_keep=1, checkpoint_name="ckpt")
        self._last_saved = -1

    # ------------------------------------------------------------------ saving
    def _write(self, manager: tf.train.CheckpointManager, state: LoopState) -> str:
        self._step.assign(state.step)
        self._state.assign(json.dumps(state.saved()))
        try:
            faults.at("checkpoint", state.step)
            return manager.save(checkpoint_number=state.step)
        except (OSError, tf.errors.OpError) as ex:
            self._remove_partial(manager, state.step)
            previous = self._manager.latest_checkpoint
            kept = f"; the previous checkpoint {previous} is intact" if previous else ""
            reason = getattr(ex, "message", None) or str(ex)
            raise CheckpointError(f"could not write the checkpoint of step {state.step} in "
                                  f"{manager.directory}: {reason.splitlines()[0]}{kept}") from ex

    @staticmethod
    def _remove_partial(manager: tf.train.CheckpointManager, step: int) -> None:
        d = Path(manager.directory)
        partial = [*d.glob(f"ckpt-{step}.index"), *d.glob(f"ckpt-{step}.data-*"),
                   *d.glob(f"ckpt-{step}_temp*")]
        for path in partial:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def save(self, state: LoopState) -> None:
        if state.step == self._last_saved:
            return
        path = self._write(self._manager, state)
        self._last_saved = state.step
        log.debug("checkpoint %s", path)

    def save_best(self, state: LoopState) -> None:
        self._write(self._best, state)

    # ------------------------------------------------------------------ restoring
    def _check_base(self, path: str) -> None:
        """A checkpoint of adapters or a head is refused on top of another base model."""
        if not self._base:
            return
        saved = self._ckpt.base.numpy().decode()
        if _base_content(saved) != _base_content(self._base):
            from bigtrain.core.errors import ConfigError
            from bigtrain.models.hub import describe_base

            self._ckpt.base.assign(self._base)  # restored weights are not used: the run stops
            raise ConfigError("model.preset", f"checkpoint {path} trained on top of "
                              f"{describe_base(saved)}, but the base model now is "
                              f"{describe_base(self._base)}; its adapters and head fit only "
                              "their own base: use that preset, or a new hydra.run.dir")

    def has_checkpoints(self) -> bool:
        return bool(_candidates(self.directory))

    def close(self) -> None:
        """Remove a non-chief worker's scratch checkpoints."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def restore(self, state: LoopState, which: str = "latest", source: Path | None = None
                ) -> str | None:
        """Restore into the model, optimizer and `state`; return the path, or None if there is
        no checkpoint. `which` is latest or best; `source` another run's checkpoints dir.
        Damaged checkpoints are skipped (newest first) with a warning."""
        directory = Path(source) if source is not None else self.directory
        if which == "best":
            directory = directory / "best"
        candidates = _candidates(directory)
        if not candidates:
            return None
        for i, path in enumerate(candidates):
            try:
                status = self._ckpt.restore(path)
                status.assert_existing_objects_matched()
            except _DAMAGED as ex:
                reason = (getattr(ex, "message", None) or str(ex)).splitlines()[0]
                log.warning("checkpoint %s is damaged (%s); trying an older one", path, reason)
                continue
            except (AssertionError, ValueError) as ex:
                detail = str(ex).splitlines()[0].split(". Showing")[0][:300]
                raise CheckpointError(f"checkpoint {path} does not match this model and "
                                      f"optimizer (a checkpoint of another config?): "
                                      f"{detail}") from ex
            self._check_base(path)
            state.step = int(self._step.numpy())
            state.load(json.loads(self._state.numpy().decode()))
            self._last_saved = state.step if source is None and which == "latest" else -1
            if i:
                log.warning("resumed from the older checkpoint %s", path)
            return path
        raise CheckpointError(f"every checkpoint in {directory} is damaged "
                              f"({len(candidates)} tried); nothing was overwritten. Move the "
                              f"directory away to start over, or pass trainer.resume=never with "
                              f"a new hydra.run.dir")

    def restore_from(self, path: str, state: LoopState) -> None:
        """Restore exactly the checkpoint `path`, with no fallback to an older one (`eval
        --watch` reads each checkpoint as it appears). Damaged or removed files raise
        OSError, tf.errors.OpError or IndexError."""
        self._ckpt.restore(path).assert_existing_objects_matched()
        self._check_base(path)
        state.step = int(self._step.numpy())
        state.load(json.loads(self._state.numpy().decode()))
        self._last_saved = -1

    def restore_for_inference(self, state: LoopState, which: str = "best") -> tuple[str, str]:
        """Restore the checkpoint `eval`, `export`, `predict` and `generate` asked for and
        return (its path, what it is: best, latest or path). `which`: best (the best by
        `trainer.monitor`, kept in checkpoints/best/; a run without one falls back to the
        latest, with a warning), latest, or a path: a checkpoint prefix (`.../ckpt-12`, also
        relative to the checkpoints dir) or a directory of checkpoints (its newest)."""
        from bigtrain.core.errors import ConfigError

        if which in ("best", "latest"):
            path = self.restore(state, which)
            if path is None and which == "best":
                path = self.restore(state, "latest")
                if path is not None:
                    log.warning("no best checkpoint in %s (the run has not evaluated yet); "
                                "using the latest, %s", self.directory / "best", path)
                    return path, "latest"
            if path is None:
                raise ConfigError("--checkpoint", f"{self.directory.parent} has no "
                                  f"checkpoint (looked in {self.directory}); train it first")
            return path, which
        given = Path(which).expanduser()
        for place in ([given] if given.is_absolute() else [given, self.directory / given]):
            if place.is_dir() and _candidates(place):
                return self.restore(state, source=place), "path"
            if Path(f"{place}.index").is_file():
                try:
                    self.restore_from(str(place), state)
                except _DAMAGED as ex:
                    reason = (getattr(ex, "message", None) or str(ex)).splitlines()[0]
                    raise CheckpointError(f"checkpoint {place} is damaged ({reason})") from ex
                except (AssertionError, ValueError) as ex:
                    detail = str(ex).splitlines()[0].split(". Showing")[0][:300]
                    raise CheckpointError(f"checkpoint {place} does not match this model and "
                                          f"optimizer (a checkpoint of another config?): "
                                          f"{detail}") from ex
                return str(place), "path"
        raise ConfigError("--checkpoint", f"{which!r} is not a checkpoint; allowed: best, "
                          f"latest, a checkpoint prefix such as {self.directory / 'ckpt-N'}, "
                          "or a directory of checkpoints")


def _candidates(directory: Path) -> list[str]:
    """Checkpoint prefixes in `directory`, newest first (from the index file, else the files)."""
    if not directory.is_dir():
        return []
    state = tf.train.get_checkpoint_state(str(directory))
    listed = list(state.all_model_checkpoint_paths) if state else []
    found = {str(p.with_suffix("")) for p in directory.glob("ckpt-*.index")}
    paths = set(listed) | found

    def number(p: str) -> int:
        try:
            return int(p.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            return -1

    return sorted(paths, key=number, reverse=True)


def _base_content(record: str):
    """What identifies a base model in its record (bigtrain.models.hub.base_record): its
    class and content hash, not the handle it was named by (a relative path, a moved
    folder)."""
    import json

    try:
        r = json.loads(record)
    except ValueError:
        return record
    return (r.get("class"), r.get("sha256")) if isinstance(r, dict) else record
