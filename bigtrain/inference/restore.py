"""Trained runs: load one back from its run dir, evaluate it, export it.

A run dir's preprocessing.json holds the DatasetSpec its model is built from and everything
its inputs need, so loading a run reads neither the training data nor its path: only `eval`
on one of the training splits builds the data (on first use of `splits`). Run dirs from
before bigtrain wrote the file are rebuilt from their data, with a log line saying so.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bigtrain.config.schema import from_resolved
from bigtrain.core import files
from bigtrain.core.errors import ConfigError
from bigtrain.data import preprocess
from bigtrain.run import rundir

log = logging.getLogger("bigtrain")


class _DataOnDemand:
    """The run's data splits, built from the training data the first time they are used."""

    def __init__(self, build):
        self._build, self._splits = build, None

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if self._splits is None:
            self._splits = self._build()
        return getattr(self._splits, name)


@dataclasses.dataclass
class Restored:
    """A trained run loaded for inference: its config, its preprocessing document, the
    components built from them (model, engine, ...), and the checkpoint restored into them."""

    run_dir: Path
    config: Any
    preprocessing: dict[str, Any]
    components: Any
    step: int
    checkpoint: str  # the checkpoint's path
    kind: str  # best | latest | path: what was restored
    _serving: Any = None
    _tokenizer: Any = False  # not loaded yet

    @property
    def model(self):
        return self.components.model

    @property
    def engine(self):
        return self.components.engine

    @property
    def splits(self):
        return self.components.splits

    @property
    def spec(self):
        return preprocess.spec_of(self.preprocessing)

    def serving(self):
        """The model with its preprocessing (bigtrain.inference.serving.Serving), built once."""
        if self._serving is None:
            from bigtrain.inference.serving import Serving

            self._serving = Serving(self.preprocessing, self.model, self.tokenizer)
        return self._serving

    @property
    def tokenizer(self):
        """The run's tokenizer (`<run dir>/tokenizer/`, bigtrain.data.tokenizers), loaded
        once; None for runs without one."""
        if self._tokenizer is False:
            from bigtrain.data import tokenizers

            self._tokenizer = tokenizers.of_run(self.run_dir) \
                if preprocess.tokenizer_of(self.preprocessing) else None
        return self._tokenizer

    def ema_weights(self):
        """The weights evaluation uses (optim.ema's average, if the run kept one)."""
        return self.engine.ema_weights()

    def describe(self) -> str:
        """Which checkpoint this is, for the output: `best checkpoint PATH (step N)`."""
        what = "checkpoint" if self.kind == "path" else f"{self.kind} checkpoint"
        return f"{what} {self.checkpoint} (step {self.step})"

    @property
    def checkpoint_tag(self) -> str:
        """best, latest, or the checkpoint's name (ckpt-N): in the names of eval files."""
        return self.kind if self.kind != "path" else Path(self.checkpoint).name


def _read_config(run_dir: Path):
    resolved = rundir.read_config(run_dir)
    if resolved is None:
        raise ConfigError("RUN_DIR", f"{run_dir} is not a bigtrain run dir (no readable "
                          "config.yaml); pass the directory a `bigtrain fit` wrote")
    return from_resolved(_from_launch_dir(resolved, Path(run_dir)))


def _launch_dir(run_dir: Path) -> str | None:
    """The working directory `bigtrain fit` ran in (Hydra's record), or None."""
    try:
        hydra = yaml.safe_load((Path(run_dir) / ".hydra" / "hydra.yaml").read_text())
        return hydra["hydra"]["runtime"]["cwd"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def _from_launch_dir(resolved: dict, run_dir: Path) -> dict:
    """The run's config with the relative paths of a local base model (model.preset) and
    of its answer tasks (trainer.eval_tasks) that do not exist from here looked up in the
    directory the run was launched from: a run dir works from anywhere."""
    cwd = _launch_dir(run_dir)
    if cwd is None:
        return resolved

    def moved(path):
        if not isinstance(path, str) or not path or os.path.isabs(os.path.expanduser(path)) \
                or "://" in path or _exists(path):
            return path
        there = os.path.join(cwd, os.path.expanduser(path))
        return there if _exists(there) else path

    model, trainer = resolved.get("model") or {}, resolved.get("trainer") or {}
    if "preset" in model and (os.sep in str(model["preset"])
                              or str(model["preset"]).startswith(".")
                              or os.path.exists(os.path.join(cwd, str(model["preset"])))):
        model["preset"] = moved(model["preset"])
    if isinstance(trainer.get("eval_tasks"), list):
        trainer["eval_tasks"] = [moved(p) for p in trainer["eval_tasks"]]
    return resolved


def _exists(path: str) -> bool:
    full = os.path.expanduser(path)
    if any(ch in path for ch in "*?["):
        return bool(glob.glob(full, recursive=True))
    return os.path.exists(full)


def data_config(config, run_dir: Path, pre: dict[str, Any] | None):
    """The run's config with `dataset.path` made usable from here: a relative path that
    does not exist from this directory is looked up where the run was trained (the absolute
    path preprocessing.json recorded, else Hydra's record of the working directory)."""
    ds = config.dataset
    path = getattr(ds, "path", None)
    if not isinstance(path, str) or not path or path == "stdlib" or _exists(path):
        return config
    candidates = []
    if pre and (pre.get("source") or {}).get("absolute_path"):
        candidates.append(pre["source"]["absolute_path"])
    try:
        hydra = yaml.safe_load((Path(run_dir) / ".hydra" / "hydra.yaml").read_text())
        cwd = hydra["hydra"]["runtime"]["cwd"]
        candidates.append(os.path.join(cwd, os.path.expanduser(path)))
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        pass
    for place in candidates:
        if _exists(place):
            log.info("dataset.path %r is relative to where the run was trained; reading %s",
                     path, place)
            return dataclasses.replace(config, dataset=dataclasses.replace(ds, path=place))
    return config


def _build_splits(config, run_dir: Path, pre: dict[str, Any]):
    """The training data's splits, for `eval --split` (the only command that needs them)."""
    from bigtrain.data import build_dataset

    config = data_config(config, run_dir, pre)
    recorded = (pre.get("input") or {}).get("max_len")
    if getattr(config.dataset, "max_len", None) == 0 and recorded:  # the model's window, as
        config = dataclasses.replace(  # the run found it (the run's own tokenizer has none)
            config, dataset=dataclasses.replace(config.dataset, max_len=int(recorded)))
    log.info("building the %s dataset's splits to evaluate on", config.dataset.name)
    from bigtrain.data import tokenizers

    splits = build_dataset(config.dataset, tokenizer=tokenizers.of_run(run_dir))
    splits.threads = config.trainer.threads
    changed = [k for k in preprocess.differences(pre, splits.preprocessing)
               if not k.startswith("source.")]
    if changed:
        log.warning("the training data now gives another preprocessing than %s records (%s): "
                    "it changed since the run; its splits are rebuilt from the data as it is "
                    "now", preprocess.path_in(run_dir), ", ".join(changed[:5]))
    return splits


def _has_checkpoint(run_dir: Path) -> bool:
    """Whether the run wrote a checkpoint (checkpoints/ckpt-N, or one in checkpoints/best/)."""
    place = Path(run_dir) / "checkpoints"
    return any(place.glob("ckpt-*.index")) or any(place.glob("best/ckpt-*.index"))


def refuse_unfinished(run_dir: Path, checkpoint: str = "auto") -> None:
    """Refuse a run that failed (or stopped) before its first checkpoint, with the error its
    summary.json recorded, rather than as a damaged run dir. Needs no TensorFlow: a command
    can call it before TensorFlow loads (`open_run` calls it first)."""
    run_dir = Path(run_dir)
    summary = rundir.read_summary(run_dir) or {}
    status = summary.get("status")
    if status is None or status in rundir.FINISHED or _has_checkpoint(run_dir):
        return
    if preprocess.read(run_dir) is not None and checkpoint not in ("auto", "best", "latest"):
        return  # a checkpoint path of its own is loaded as usual
    error = next((ln.strip() for ln in str(summary.get("error") or "").splitlines()
                  if ln.strip()), "")
    why = f"failed ({error})" if status == "failed" and error else f"ended {status}"
    raise ConfigError("RUN_DIR", f"{run_dir} {why}, as its summary.json records, before its "
                      "first checkpoint: it has no checkpoint to evaluate; fix that and run "
                      "`bigtrain fit` again")


def open_run(run_dir: Path, checkpoint: str = "auto") -> Restored:
    """Build a run's model from its config.yaml and preprocessing.json (no training data),
    restore the checkpoint `checkpoint` (auto, best, latest or a path) into it: auto is the
    best, or the latest when the validation split was too small to choose by."""
    refuse_unfinished(run_dir, checkpoint)
    folds = (rundir.read_summary(Path(run_dir)) or {}).get("folds")
    if folds:
        raise ConfigError("RUN_DIR", f"{run_dir} is a {folds}-fold cross-validation: its "
                          f"models are in {Path(run_dir) / 'fold-0'} ... fold-{folds - 1}; pass "
                          "one of those, or train once on all the data (without dataset.folds)")
    from bigtrain.core.hooks import LoopState
    from bigtrain.train.fit import build_from_spec

    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    # the checkpoint brings the weights: pretrained ones are neither fetched nor read again
    config = dataclasses.replace(config, model=config.model.architecture_only())
    pre = preprocess.read(run_dir)
    if pre is None:
        raise ConfigError("RUN_DIR", f"{run_dir} has no {preprocess.FILENAME}, which `bigtrain "
                          "fit` writes at the start of every run (how raw inputs become the "
                          "model's): it was removed or this is not a run dir. Copy it back, or "
                          "train the run again")
    spec = preprocess.spec_of(pre)
    c = build_from_spec(config, run_dir, spec)
    c.splits = _DataOnDemand(lambda: _build_splits(config, run_dir, pre))
    if checkpoint == "auto":
        from bigtrain.data.spec import too_small_to_choose

        why = too_small_to_choose(spec)
        checkpoint = "latest" if why else "best"
        if why:
            log.info("taking the latest checkpoint, not the best by %s: %s, too small to "
                     "choose by (--checkpoint best takes it anyway)", config.trainer.monitor, why)
    state = LoopState()
    path, kind = c.checkpointer.restore_for_inference(state, checkpoint)
    restored = Restored(run_dir, config, pre, c, state.step, path, kind)
    log.info("restored the %s", restored.describe())
    return restored


def evaluate_run(run_dir: Path, split: str = "val", checkpoint: str = "auto",
                 data: Path | None = None) -> dict[str, Any]:
    """Metrics of a checkpoint on a split of the training data, or on the labelled data at
    `data` (in the training data's format, read with the run's preprocessing); written to
    eval_<split>_<checkpoint>.json (eval_data-<name>_<checkpoint>.json)."""
    r = open_run(run_dir, checkpoint)
    batch = r.config.trainer.eval_batch_size
    if data is None:
        batches, prefix, name, examples = r.splits.eval_batches(split, batch), f"{split}_", \
            split, None
    else:
        from bigtrain.inference.predict import labelled_dataset

        dataset, examples = labelled_dataset(r, Path(data))
        batches, prefix, name = dataset.batch(batch), "", f"data-{Path(data).stem}"
    metrics = r.engine.evaluate(batches, prefix=prefix)
    result = {"split": split if data is None else None,
              "data": str(data) if data is not None else None, "examples": examples,
              "checkpoint": r.checkpoint, "checkpoint_kind": r.kind, "step": r.step,
              "metrics": metrics, "time": time.time()}
    files.atomic_write_text(Path(run_dir) / f"eval_{name}_{r.checkpoint_tag}.json",
                             json.dumps(result, indent=2) + "\n")
    return result


#: what an export leaves in a folder it writes: a later export may replace that folder
EXPORT_MARK = ".bigtrain-export"


def _check_out(out: Path, run_dir: Path, base: str | None) -> None:
    """An export replaces the folder it writes: never the run dir or the base model (or a
    folder holding either), never a folder of other files; an earlier export (it holds
    EXPORT_MARK) is replaced."""
    target = Path(out).expanduser().resolve()
    guarded = [("the run dir", Path(run_dir).resolve())]
    if base and "://" not in base and Path(base).expanduser().exists():
        guarded.append(("the base model", Path(base).expanduser().resolve()))
    for what, path in guarded:
        if target == path or target in path.parents:
            raise ConfigError("--out", f"{out} is {what} or holds it, and an export replaces "
                              "the folder it writes: choose another folder")
    if target.is_dir() and any(target.iterdir()) and not (target / EXPORT_MARK).exists():
        raise ConfigError("--out", f"{out} exists and holds files that are not an earlier "
                          "export, which an export would replace: choose a new folder (or "
                          "delete it first)")


def _marked(write: Callable[[Path], Any], fmt: str, run_dir: Path):
    """`write` for replace_dir, leaving EXPORT_MARK in the folder."""
    def marked(d: Path) -> None:
        write(d)
        (d / EXPORT_MARK).write_text(json.dumps({"run": str(Path(run_dir).resolve()),
                                                 "format": fmt}) + "\n", encoding="utf-8")
    return marked


def _turn_end_ids(r, chat: dict) -> list[int]:
    """The token id that closes an assistant turn in the run's chat template (Transformers
    stops generating at it), where it is one token; [] otherwise."""
    if not chat.get("template") or r.tokenizer is None:
        return []
    from bigtrain.train.answer_tasks import Format

    end = Format(chat["template"], dict(chat.get("specials") or {})).turn_end().strip()
    ids = r.tokenizer.encode([end])[0] if end else []
    return [int(ids[0])] if len(ids) == 1 else []


def export_run(run_dir: Path, fmt: str, out: Path | None = None, checkpoint: str = "auto"
               ) -> Path:
    """Write a SavedModel whose signatures take raw inputs (see bigtrain.inference.serving), a
    `.keras` file of standard Keras layers (with `<name>.preprocessing.json` beside it), or
    (model=hub runs) a KerasHub preset directory. LoRA adapters are merged into the weights in
    each."""
    formats = ("savedmodel", "keras", "preset", "hf", "adapter")
    if fmt not in formats:
        raise ConfigError("--format", f"{fmt!r} is not valid; allowed: {', '.join(formats)}")
    default = {"keras": "model.keras", "savedmodel": "savedmodel", "preset": "preset",
               "hf": "hf", "adapter": "adapter"}[fmt]
    out = Path(out or Path(run_dir) / "export" / default)
    if fmt == "keras" and out.suffix != ".keras":
        raise ConfigError("--out", f"{out} must end in .keras for --format keras")
    config = _read_config(Path(run_dir))
    trained = config.model.name
    _check_out(out, Path(run_dir), getattr(config.model, "preset", None))
    if fmt in ("preset", "hf", "adapter") and trained != "hub":  # before the model is built
        what = {"preset": "a KerasHub preset", "hf": "a Transformers folder",
                "adapter": "a LoRA adapter in PEFT's format"}[fmt]
        raise ConfigError("--format", f"{fmt} writes {what}, for runs of model=hub; "
                          f"{run_dir} trained model={trained}: use savedmodel or keras")
    r = open_run(run_dir, checkpoint)
    from bigtrain.inference.serving import Serving, export_savedmodel, portable_model
    from bigtrain.models import hub

    is_hub = hub.holds_hub_task(r.model)
    with r.ema_weights():
        if fmt == "adapter":
            from bigtrain.models import peft

            backbone = hub.hub_task(r.model).backbone
            written: list[str] = []

            def write(d: Path) -> None:
                written.extend(peft.save_adapter(backbone, d, r.config.model.preset,
                                                 list(r.config.model.train_layers)))

            files.replace_dir(out, _marked(write, fmt, run_dir))
            log.info("exported the %s to %s (a LoRA adapter in PEFT's format on %d modules; "
                     "the base: %s)", r.describe(), out, len(written), r.config.model.preset)
            return out
        model = hub.merged(r.model, r.spec) if is_hub else None
        if fmt == "savedmodel":
            serving = Serving(r.preprocessing, model, r.tokenizer) if is_hub else r.serving()
            names = export_savedmodel(serving, out)
            (Path(out) / EXPORT_MARK).write_text(json.dumps(
                {"run": str(Path(run_dir).resolve()), "format": fmt}) + "\n", encoding="utf-8")
            what = "signatures " + ", ".join(names)
        elif fmt == "preset":
            files.replace_dir(out, _marked(lambda d: hub.save_preset(
                model, d, r.config.model.preset, r.spec.input_shape[0]), fmt, run_dir))
            what = "a KerasHub preset, adapters merged"
        elif fmt == "hf":
            from bigtrain.models import hf_export

            hf_export.check_family(hub.hub_task(model).backbone)
            chat = (r.preprocessing.get("input") or {}).get("chat") or {}
            base = hub.transformers_folder(r.config.model.preset)
            files.replace_dir(out, _marked(lambda d: hf_export.save_transformers(
                hub.hub_task(model), d, base,
                tokenizer=r.tokenizer.layer if r.tokenizer is not None else None,
                chat_template=chat.get("template"), stop_ids=_turn_end_ids(r, chat)),
                fmt, run_dir))
            what = ("a Transformers folder (safetensors, float32), adapters merged"
                    + (f"; chat template {chat.get('template_name')}" if chat else ""))
        else:
            model = model or portable_model(r.model)
            out.parent.mkdir(parents=True, exist_ok=True)
            model.save(str(out))
            side = out.with_name(f"{out.stem}.{preprocess.FILENAME}")
            side.write_text(preprocess.dumps(r.preprocessing), encoding="utf-8")
            what = (f"KerasHub and standard Keras layers, float32; preprocessing in {side}"
                    if is_hub else f"standard Keras layers, float32; preprocessing in {side}")
    log.info("exported the %s to %s (%s)", r.describe(), out, what)
    return out
