"""The `trainer` group: the loop's length, intervals and policies. A group of settings only
(no builders: the engine in bigtrain.train is what it configures), so it lives with the
combined config that the engine reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from bigtrain.core.errors import check, check_choice
from bigtrain.core.registry import Registry
from bigtrain.core.schema import GroupSchema, positive, unit_interval

TRAINERS: Registry = Registry("trainer", "bigtrain.config", builds=False,
                              schemas_module="bigtrain.config.trainer")

LOSSES = ["auto", "cross_entropy", "binary_cross_entropy", "mse", "huber"]


@dataclass
class TrialConfig(GroupSchema):
    """Set by bigtrain's Optuna sweeper on each trial it launches (users leave it alone): the
    study the trial belongs to, so the run can report its monitored metric at each evaluation
    and stop early when the pruner says so."""

    group: ClassVar[str] = "trainer.trial"
    storage: str = ""  # optuna storage: journal:<file> or an RDB URL
    study: str = ""
    trial_id: int = -1  # -1: not a trial of a search
    pruner: str = "none"  # none | median | halving
    pruner_warmup: int = 0  # median: training steps before pruning; halving: min resource
    pruner_startup: int = 2  # median: finished trials before pruning starts

    def validate(self) -> None:
        check_choice(self.key("pruner"), self.pruner, ["none", "median", "halving"])
        check(self.pruner_warmup >= 0, self.key("pruner_warmup"), self.pruner_warmup,
              "must be >= 0")
        check(self.pruner_startup >= 0, self.key("pruner_startup"), self.pruner_startup,
              "must be >= 0")
        check(self.trial_id < 0 or bool(self.storage and self.study), self.key("storage"),
              self.storage, "a trial needs its study's storage and name")


@dataclass
class TrainerConfig(GroupSchema):
    group: ClassVar[str] = "trainer"
    option: ClassVar[str] = "default"  # the one option (conf/trainer/default.yaml)
    epochs: int = 12  # passes over the training split (when max_steps <= 0)
    max_steps: int = -1  # > 0: train exactly this many steps, whatever `epochs` says
    batch_size: int = 32  # global batch, over all replicas
    eval_batch_size: int = 256  # batch of the evaluation passes
    seed: int = 0  # weights' initialization, dropout and the data order
    log_every: int = 20  # steps between train records (progress, metrics.jsonl, loggers)
    eval_every: int = 0  # steps; 0 = at the end of every epoch
    checkpoint_every: int = 0  # steps; 0 = at the end of every epoch
    keep_checkpoints: int = 3  # the newest checkpoints kept (and the best one)
    steps_per_loop: int = 10  # train steps per compiled call (fewer at log/eval/checkpoint points)
    grad_accum: int = 1  # micro-batches per optimizer step; batch_size is split among them
    clip_norm: float = 0.0  # clip gradients to this global norm; 0 = off
    loss: str = "auto"  # auto | cross_entropy | binary_cross_entropy | mse | huber
    label_smoothing: float = 0.0  # cross-entropy against targets smoothed by this much
    huber_delta: float = 1.0  # loss=huber: where the loss turns from quadratic to linear
    # the metric that picks the best checkpoint and stops early; a name the run does not
    # report (val_acc for val_accuracy) is refused, with the run's metrics listed
    monitor: str = "val_loss"
    monitor_mode: str = "auto"  # min | max | auto (max for accuracy-like names)
    patience: int = 0  # evaluations without improvement before stopping early; 0 = never
    min_delta: float = 0.0  # the least change of `monitor` that counts as an improvement
    on_nan: str = "stop"  # stop | rollback (to the last good checkpoint, learning rate halved)
    nan_max_rollbacks: int = 3  # on_nan=rollback: rollbacks before the run stops
    progress: str = "auto"  # auto (rich on a terminal, plain lines otherwise) | rich | plain | none
    resume: str = "auto"  # auto | never | force | <run dir to continue from>
    rerun: bool = False  # train again even if this run dir holds a completed run of this config
    deterministic: bool = False  # seeded + deterministic ops: a resumed run is bitwise exact
    # CPU threads for TensorFlow ops and tf.data; 0: all cores, or cores / parallel jobs
    # under the joblib launcher (so parallel sweep jobs do not oversubscribe the machine)
    threads: int = 0
    # > 0: a TensorFlow profiler trace of this many steps into <run dir>/tb/ (debug=profile;
    # TensorBoard's profile plugin opens it)
    profile_steps: int = 0
    profile_start: int = 10  # the trace begins after this step (warm-up: tracing, caches)
    # language models: JSONL task files scored at each evaluation (perplexity of answers,
    # choice accuracy by log-likelihood, exact greedy answers; see `bigtrain eval --task`),
    # as val_task_<file>_<metric> beside the other validation metrics
    eval_tasks: list[str] = field(default_factory=list)
    eval_task_shots: int = 0  # earlier lines of a task file shown first as examples
    # set by the Optuna sweeper; leave it alone
    trial: TrialConfig = field(default_factory=TrialConfig)

    def validate(self) -> None:
        positive(self, "epochs", "batch_size", "eval_batch_size", "log_every", "keep_checkpoints",
                  "steps_per_loop", "grad_accum")
        check(self.threads >= 0, self.key("threads"), self.threads, "must be >= 0 (0: auto)")
        check(self.batch_size % self.grad_accum == 0, self.key("grad_accum"), self.grad_accum,
              f"must divide trainer.batch_size ({self.batch_size})")
        check(self.clip_norm >= 0, self.key("clip_norm"), self.clip_norm,
              "must be >= 0 (0 turns clipping off)")
        check_choice(self.key("loss"), self.loss, LOSSES)
        check(self.profile_steps >= 0, self.key("profile_steps"), self.profile_steps,
              "must be >= 0 (0: no profiler trace)")
        check(self.profile_start >= 1, self.key("profile_start"), self.profile_start,
              "must be >= 1: the first steps trace and compile the step function")
        check(self.profile_steps == 0 or self.max_steps <= 0
              or self.profile_start + self.profile_steps <= self.max_steps,
              self.key("profile_start"), self.profile_start,
              f"the trace of {self.profile_steps} steps after it must end by "
              f"trainer.max_steps ({self.max_steps})")
        unit_interval(self, "label_smoothing")
        positive(self, "huber_delta")
        check(self.patience >= 0, self.key("patience"), self.patience, "must be >= 0 (0 = off)")
        check(self.min_delta >= 0, self.key("min_delta"), self.min_delta, "must be >= 0")
        check_choice(self.key("on_nan"), self.on_nan, ["stop", "rollback"])
        check(self.nan_max_rollbacks >= 0, self.key("nan_max_rollbacks"),
              self.nan_max_rollbacks, "must be >= 0")
        if self.resume not in ("auto", "never", "force"):
            import os

            check(os.path.isdir(os.path.join(self.resume, "checkpoints")), self.key("resume"),
                  self.resume, "allowed: auto, never, force, or a run dir that has checkpoints/")
        check(self.max_steps == -1 or self.max_steps > 0, self.key("max_steps"), self.max_steps,
              "must be > 0, or -1 to train for `epochs`")
        for n in ("eval_every", "checkpoint_every"):
            v = getattr(self, n)
            check(v >= 0, self.key(n), v, "must be >= 0 (0 = every epoch)")
        check_choice(self.key("monitor_mode"), self.monitor_mode, ["auto", "min", "max"])
        check(self.eval_task_shots >= 0, self.key("eval_task_shots"), self.eval_task_shots,
              "must be >= 0")
        for path in self.eval_tasks:
            import os

            check(os.path.isfile(os.path.expanduser(path)), self.key("eval_tasks"), path,
                  "must name existing JSONL task files")
        check_choice(self.key("progress"), self.progress, ["auto", "rich", "plain", "none"])
        check(self.monitor.startswith(("val_", "train_")) or self.monitor == "loss",
              self.key("monitor"), self.monitor,
              "name a logged metric such as val_loss, val_accuracy or loss")
