"""One training run, top to bottom: seed, data, strategy, model, optimizer, loop, summary.

The hooks are given (bigtrain.run.job picks them); the summary is returned, not written."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigtrain.config.schema import FitConfig
from bigtrain.core import files
from bigtrain.core.errors import ConfigError
from bigtrain.core.hooks import Hook, LoopState

log = logging.getLogger("bigtrain")

def _trim_metrics(run_dir: Path, step: int) -> None:
    """After a resume at `step`, drop records of the steps that will be trained again."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except ValueError:  # a line cut short by a crash
            continue
    files.atomic_write_text(path, "".join(k + "\n" for k in kept))


def _resume(config: FitConfig, run_dir: Path, checkpointer, state) -> None:
    """`trainer.resume`: auto and force continue this run dir's newest checkpoint; never starts
    fresh (and refuses to mix with existing checkpoints); a path continues another run's."""
    mode = config.trainer.resume
    if mode == "never":
        if checkpointer.has_checkpoints():
            raise ConfigError("trainer.resume", f"is 'never' but {run_dir} already holds "
                              "checkpoints; pick a new hydra.run.dir or use trainer.resume=auto")
        return
    if mode in ("auto", "force"):
        path = checkpointer.restore(state)
    else:
        path = checkpointer.restore(state, source=Path(mode) / "checkpoints")
        if path is None:
            raise ConfigError("trainer.resume", f"{mode} has no checkpoint to continue from")
    if path is not None:
        log.info("resumed from %s at step %d", path, state.step)
    if checkpointer.is_chief:  # also the records of a run killed before its first checkpoint
        _trim_metrics(run_dir, state.step)


def _limit_threads(threads: int) -> None:
    """`trainer.threads`: TensorFlow's op thread pools (before the runtime starts)."""
    if threads <= 0:
        return
    import tensorflow as tf

    inter = 1 if threads <= 2 else 2
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # a reused worker process: TensorFlow already runs
        if tf.config.threading.get_intra_op_parallelism_threads() != threads:
            log.warning("trainer.threads=%d not applied: TensorFlow already runs in this "
                        "process with %d", threads,
                        tf.config.threading.get_intra_op_parallelism_threads())
        return
    log.info("threads: %d intra-op, %d inter-op", threads, inter)


@dataclass
class Components:
    """Everything a run trains or evaluates with, built from its config."""

    splits: Any
    strategy: Any
    model: Any
    optimizer: Any
    lr: Any
    engine: Any
    checkpointer: Any
    params: int
    total_steps: int


def build(config: FitConfig, run_dir: Path, chief: bool = True) -> Components:
    """Seed, data, strategy, model, optimizer, engine and checkpointer for `config`. `chief`:
    whether this process writes the run dir's checkpoints (the task decides, once per run)."""
    import keras
    import tensorflow as tf

    from bigtrain.data import build_dataset
    from bigtrain.strategy.builders import build_strategy

    t, s = config.trainer, config.strategy
    _limit_threads(t.threads)
    strategy = build_strategy(s)  # first: splitting a CPU must precede any TensorFlow op
    keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()

    splits = build_dataset(config.dataset, tokenizer=data_tokenizer(config, run_dir))
    splits.threads = t.threads
    spec = splits.spec
    if splits.steps_per_epoch(t.batch_size) == 0:
        raise ConfigError("trainer.batch_size", f"{t.batch_size} is larger than the training "
                          f"split ({spec.num_train} examples); use a smaller batch")
    log.info("data %s: %s, input %s, %d train / %d val / %d test", spec.name, spec.task,
             spec.input_shape, spec.num_train, spec.num_val, spec.num_test)
    from bigtrain.data.spec import too_small_to_choose

    small = too_small_to_choose(spec)
    if small and chief:
        log.warning("%s: too small to choose the best checkpoint by %s (eval, predict and "
                    "export take the latest) or to rank a sweep's jobs%s", small, t.monitor,
                    "" if config.dataset.folds else "; dataset.folds=k cross-validates instead")
    if splits.report and "columns" in splits.report:
        from bigtrain.data import columns

        for line in columns.summary(splits.report):
            log.info("data: %s", line)
        for line in columns.warnings(splits.report):
            log.warning("data: %s", line)
    return _assemble(config, run_dir, strategy, splits, spec, chief)


def data_tokenizer(config: FitConfig, run_dir: Path | None = None):
    """The tokenizer the text dataset must use, if not its own choice: a pretrained model's
    (model=hub: the preset's), else on a resume into `run_dir` the one the checkpoints were
    trained with. `bigtrain info` and `bigtrain data` (no run dir) read the data with it as
    `fit` does."""
    from bigtrain.data import takes_tokenizer, tokenizers

    handle = config.model.tokenizer_preset
    if handle and takes_tokenizer(config.dataset):
        ds = config.dataset
        if getattr(ds, "tokenizer", "") or getattr(ds, "vocab", "byte") in tokenizers.LEARNED:
            chosen = f"dataset.tokenizer={ds.tokenizer}" if getattr(ds, "tokenizer", "") \
                else f"dataset.vocab={ds.vocab}"
            raise ConfigError("dataset", f"{chosen} conflicts with model={config.model.name}, "
                              f"which tokenizes with its preset's own tokenizer ({handle}); "
                              "leave dataset.vocab and dataset.tokenizer unset")
        return tokenizers.load(handle, key="model.preset")
    if run_dir is None:
        return None
    return tokenizers.for_run(config.dataset, run_dir, config.trainer.resume)


def build_from_spec(config: FitConfig, run_dir: Path, spec) -> Components:
    """The run's model, optimizer, engine and checkpointer from the DatasetSpec recorded in
    its preprocessing.json, without reading the data (`eval`, `export`, `predict` and
    `generate` of a trained run); `splits` is None. Runs under the default strategy: a run
    trained on GPUs or several workers is evaluated and exported where the command runs."""
    import keras
    import tensorflow as tf

    t = config.trainer
    _limit_threads(t.threads)
    keras.utils.set_random_seed(t.seed)
    return _assemble(config, run_dir, tf.distribute.get_strategy(), None, spec, chief=True)


def task_evaluation(t, c: Components):
    """What trainer.eval_tasks adds to each evaluation: the answer tasks scored with the
    model as it trains (its training precision), through the data's chat template; None
    without task files."""
    if not t.eval_tasks:
        return None
    import numpy as np

    from bigtrain.train import answer_tasks

    splits = c.splits
    if splits.spec.task != "lm":
        raise ConfigError("trainer.eval_tasks", f"answer tasks score a language model; this "
                          f"dataset's task is {splits.spec.task}")
    items = {Path(p).expanduser(): answer_tasks.read_items(Path(p).expanduser())
             for p in t.eval_tasks}
    names = [f"val_task_{answer_tasks.task_name(path)}_{metric}" for path, its in items.items()
             for metric in answer_tasks.metric_names(its)]
    if t.monitor.startswith("val_task_") and t.monitor not in names:
        raise ConfigError("trainer.monitor", f"{t.monitor!r} is not a metric of "
                          f"trainer.eval_tasks; allowed: {', '.join(names)}")
    chat = ((splits.preprocessing or {}).get("input") or {}).get("chat") or {}
    fmt = answer_tasks.Format(chat.get("template"), dict(chat.get("specials") or {}))
    tok = splits.tokenizer
    if tok is not None:
        def encode(text):
            return tok.encode([text])[0] if text else []
        decode, pad = tok.decode, tok.pad_id
    else:  # bytes
        def encode(text):
            return list(text.encode("utf-8"))

        def decode(ids):
            return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")
        pad = 0
    model = c.model

    def logits(x):
        return np.asarray(model(x, training=False), np.float32)

    scorer = answer_tasks.Scorer(logits, encode, decode, splits.spec.input_shape[0], fmt,
                                 pad_id=pad)

    def evaluation() -> dict:
        out = {}
        for path, its in items.items():
            for k, v in scorer.score(its, t.eval_task_shots).items():
                if not k.endswith("_items"):  # counts, not metrics
                    out[f"val_task_{answer_tasks.task_name(path)}_{k}"] = v
        return out

    return evaluation


def _warn_if_too_big(model, batch: int, precision: str, optim) -> None:
    """Warn before the first step when bigtrain.models.size estimates that a step needs
    more memory than the device has (GPU memory where known, else host memory)."""
    import tensorflow as tf

    from bigtrain.models.size import memory_warning

    warning = memory_warning(model, batch, precision, optim,
                             gpu=bool(tf.config.list_physical_devices("GPU")))
    if warning:
        log.warning("%s", warning)


def _assemble(config: FitConfig, run_dir: Path, strategy, splits, spec, chief: bool
              ) -> Components:
    """Model, optimizer, engine and checkpointer for the dataset described by `spec`."""
    import keras
    import tensorflow as tf

    from bigtrain.models import build_model
    from bigtrain.optim import build_optimizer
    from bigtrain.optim.builders import exclude_from_decay
    from bigtrain.optim.schedules import build_learning_rate
    from bigtrain.strategy.builders import per_replica_batch
    from bigtrain.train.checkpoint import Checkpointer
    from bigtrain.train.engine import Engine, StepConfig
    from bigtrain.train.objective import Objective, check_monitor, model_outputs

    t, s = config.trainer, config.strategy
    per_replica = per_replica_batch(t.batch_size, strategy)
    if per_replica % t.grad_accum:
        raise ConfigError("trainer.grad_accum", f"{t.grad_accum} must divide the per-replica "
                          f"batch ({per_replica})")

    steps_per_epoch = max(1, spec.num_train // t.batch_size)
    total_steps = steps_per_epoch * t.epochs if t.max_steps <= 0 else t.max_steps
    from bigtrain.strategy.devices import auto_precision

    precision, why = ((s.precision, "") if s.precision != "auto" else
                      auto_precision(s.name, recurrent=config.model.recurrent))
    objective = Objective(spec.task, spec.num_outputs, t.loss, t.label_smoothing,
                          t.huber_delta, target_mean=spec.target_mean,
                          target_std=spec.target_std, label_counts=spec.label_counts,
                          masked=spec.masked)
    if not (t.eval_tasks and t.monitor.startswith("val_task_")):  # named after task files
        check_monitor(objective, t.monitor)
    model_spec = dataclasses.replace(spec, num_outputs=model_outputs(objective.loss,
                                                                     spec.num_outputs))
    with strategy.scope():
        model = build_model(config.model, model_spec, precision)
        lr = build_learning_rate(config.optim, total_steps, strategy.num_replicas_in_sync)
        optimizer = build_optimizer(config.optim, learning_rate=lr)
        exclude_from_decay(optimizer, model)
        if precision == "fp16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    params = int(sum(int(tf.size(v)) for v in model.trainable_variables))
    if config.optim.lr_scaling == "linear":
        log.info("optim.lr_scaling=linear: learning rate %g x %d replicas = %g",
                 config.optim.lr, strategy.num_replicas_in_sync,
                 config.optim.lr * strategy.num_replicas_in_sync)
    log.info("model %s: %s trainable parameters, precision %s", config.model.name,
             f"{params:,}", precision + (f" (auto: {why})" if why else ""))
    _warn_if_too_big(model, per_replica // t.grad_accum, precision, config.optim)
    engine = Engine(strategy, model, optimizer, objective, StepConfig(
        global_batch=t.batch_size, tokens_per_example=spec.tokens_per_example,
        grad_accum=t.grad_accum, clip_norm=t.clip_norm, jit_compile=s.jit_compile,
        loss_scaling=precision == "fp16", packed=spec.packed))
    base = config.model.base
    if base:
        from bigtrain.models.hub import base_record

        base = base_record(base)
    checkpointer = Checkpointer(run_dir / "checkpoints", model, optimizer, t.keep_checkpoints,
                                lr_scale=lr.scale, is_chief=chief,
                                trained_only=not config.model.trains_all_weights, base=base,
                                compiled=engine.replicas == 1 and not engine.multi_worker)
    return Components(splits, strategy, model, optimizer, lr, engine, checkpointer, params,
                      total_steps)


def fit(config: FitConfig, run_dir: Path, make_hooks: Callable[[], list[Hook]],
        chief: bool = True, origin: float | None = None) -> dict[str, Any]:
    """Train as configured, telling the hooks what happens; return the summary (the job,
    bigtrain.run.job, picks the hooks and writes summary.json). `make_hooks` is called once
    the strategy is built and the run resumed: a logger may start TensorFlow's runtime (which
    must come after a CPU is split), and metrics.jsonl is cut back to the resumed step before
    it is opened. `chief` is False in the other workers of a multi-worker run; `origin`: when
    the job began (time.time()), what the summary's timing counts start-up from (default:
    now)."""
    from bigtrain.core.timing import Timing
    from bigtrain.train.loop import fit_loop

    t = config.trainer
    start = time.time()
    timing = Timing(start if origin is None else origin)
    c = build(config, run_dir, chief=chief)
    splits, engine, checkpointer = c.splits, c.engine, c.checkpointer
    steps_per_epoch = splits.steps_per_epoch(t.batch_size)
    total_steps = c.total_steps
    state = LoopState(total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                      total_epochs=-(-total_steps // steps_per_epoch), timing=timing)
    preprocessing = _preprocessing_to_record(config, run_dir, splits.preprocessing,
                                             checkpointer) if chief else None
    _resume(config, run_dir, checkpointer, state)
    if preprocessing is not None:
        from bigtrain.data import preprocess

        preprocess.write(run_dir, preprocessing)
        if splits.tokenizer is not None:
            from bigtrain.data import tokenizers

            tokenizers.save_in_run(splits.tokenizer, run_dir)

    hooks: list[Hook] = []
    try:
        hooks = make_hooks()
        from bigtrain.train.mfu import Mfu

        mfu = Mfu(c.model, splits.spec, c.strategy, config.strategy.peak_flops)
        fit_loop(engine, splits, t, state, hooks, checkpointer, c.lr.scale, mfu=mfu,
                 trace_dir=str(run_dir / "tb") if chief else None,
                 more_eval=task_evaluation(t, c))
        summary = _summarize(config, run_dir, c, state, hooks, start, mfu)
        for h in hooks:
            h.on_summary(summary, model=c.model)
    finally:
        for h in hooks:
            h.close()
        checkpointer.close()
    return summary


def _preprocessing_to_record(config: FitConfig, run_dir: Path, new: dict | None, checkpointer
                             ) -> dict | None:
    """What preprocessing.json will hold: the data's preprocessing as built now; on a resume of
    this run dir's checkpoints, the recorded file unchanged, refused if the data now gives
    another preprocessing (trainer.resume=force takes the new one). Written after `_resume`."""
    from bigtrain.data import preprocess

    if new is None:
        return None
    try:
        old = preprocess.read(run_dir)
    except ConfigError as ex:
        log.warning("%s; writing it again", ex)
        old = None
    if old is None or config.trainer.resume not in ("auto", "force") or \
            not checkpointer.has_checkpoints():
        return new
    changed = [k for k in preprocess.differences(old, new) if not k.startswith("source.")]
    if not changed:
        return old  # the same preprocessing, perhaps from another directory: keep the file
    if config.trainer.resume == "force":
        log.warning("the data's preprocessing differs from the recorded one (%s); "
                    "trainer.resume=force: continuing with the new one", ", ".join(changed[:5]))
        return new
    raise ConfigError("trainer.resume", f"the data now gives another preprocessing than the "
                      f"one {run_dir} was trained with ({', '.join(changed[:5])}"
                      f"{', ...' if len(changed) > 5 else ''}; see "
                      f"{run_dir / preprocess.FILENAME}): the data changed. Pass "
                      "trainer.resume=force to continue with the new one, or choose a new "
                      "hydra.run.dir")


def _preprocessing_digest(run_dir: Path) -> str | None:
    """SHA-256 of the run's preprocessing.json (the checkpoints were trained with it)."""
    from bigtrain.data import preprocess

    try:
        return preprocess.digest(preprocess.path_in(run_dir).read_text(encoding="utf-8"))
    except OSError:
        return None


def _summarize(config: FitConfig, run_dir: Path, c: Components, state, hooks: list,
               start: float, mfu=None) -> dict[str, Any]:
    """Test metrics (told to the hooks), the summary, and the closing log line."""
    t, engine, splits = config.trainer, c.engine, c.splits
    spec = splits.spec
    steps_per_epoch = state.steps_per_epoch
    final = dict(state.last_train)
    final.update(state.last_eval)
    if spec.num_test:
        with state.timing.timed("eval"):
            test = engine.evaluate(splits.eval_batches("test", t.eval_batch_size), "test_")
        final.update(test)
        record = {**test, "step": state.step, "epoch": round(state.step / steps_per_epoch, 4)}
        for h in hooks:
            h.on_test(state, record)
    pruned = any(h.pruned for h in hooks)
    summary = {
        "status": "pruned" if pruned else "completed",
        "stop_reason": state.stop_reason or "reached the configured length",
        "steps": state.step,
        "epochs": round(state.step / steps_per_epoch, 4),
        "final": final,
        "best": state.best,
        "monitor": t.monitor,
        "params": c.params,
        "wall_s": round(time.time() - start, 3),
        "examples_per_sec": state.last_train.get("examples_per_sec"),
        "tokens_per_sec": state.last_train.get("tokens_per_sec"),
        "mfu": state.last_train.get("mfu"),  # of the last train record (bigtrain/train/mfu.py)
        "flops": mfu.describe() if mfu is not None else None,  # per example, peak, its source
        "nan_rollbacks": state.nan_rollbacks,
        "data_skipped": spec.skipped,  # bad records left out (dataset.on_bad_record=skip)
        "tokenizer": None if splits.tokenizer is None else {
            **splits.tokenizer.describe(), "tokens_per_char": splits.tokens_per_char},
        "run_dir": str(run_dir),
        "preprocessing_sha256": _preprocessing_digest(run_dir),
    }
    summary["timing"] = state.timing.block()  # bigtrain/core/timing.py
    if spec.skipped:
        log.warning("the data had %d bad record(s), left out (dataset.on_bad_record=skip)",
                    spec.skipped)
    from bigtrain.core.console import closing_line

    log.info("%s", closing_line(state.step, summary["wall_s"], final, run_dir, t.monitor))
    return summary
