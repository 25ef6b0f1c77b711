"""Where a run is (`LoopState`) and what may watch it (`Hook`); no TensorFlow here.

Code that must stay light subclasses `Hook` and reads `LoopState`: the trial reporter of an
Optuna search (bigtrain/run/search.py) and the hooks themselves, so importing this module imports
neither TensorFlow nor Keras.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from bigtrain.core.timing import Timing

__all__ = ["Hook", "LoopState", "is_better", "resolve_mode"]


@dataclass
class LoopState:
    """Where the loop is; hooks read it and checkpoints save its bookkeeping."""

    step: int = 0
    epoch: int = 0  # the 0-based epoch of the next step
    total_steps: int = 0
    steps_per_epoch: int = 0
    total_epochs: int = 0
    best: dict[str, float] = field(default_factory=dict)
    evals_without_improvement: int = 0
    nan_rollbacks: int = 0
    last_eval: dict[str, float] = field(default_factory=dict)
    last_train: dict[str, float] = field(default_factory=dict)
    start_time: float = field(default_factory=time.time)
    start_step: int = 0  # the step this process began at (a resumed run's first step - 1)
    stop_reason: str = ""
    timing: Timing = field(default_factory=Timing)  # where the wall time went (summary.json)

    def saved(self) -> dict[str, Any]:
        """What a checkpoint keeps of this state (step itself is a variable of its own)."""
        return {"best": self.best, "evals_without_improvement": self.evals_without_improvement,
                "nan_rollbacks": self.nan_rollbacks}

    def load(self, saved: dict[str, Any]) -> None:
        self.best = saved.get("best", {})
        self.evals_without_improvement = int(saved.get("evals_without_improvement", 0))
        self.nan_rollbacks = int(saved.get("nan_rollbacks", 0))


def resolve_mode(monitor: str, mode: str) -> str:
    """min or max for `trainer.monitor`; auto is max for accuracy-like names (acc, auc)."""
    if mode != "auto":
        return mode
    return "max" if any(k in monitor for k in ("acc", "auc")) else "min"


def is_better(value: float | None, best: float | None, mode: str, min_delta: float = 0.0
              ) -> bool:
    """Whether `value` improves on `best` by more than `min_delta` (mode: min or max)."""
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class Hook:
    """What watches a run: progress, metrics.jsonl, experiment loggers, a search's reporter.

    Hooks and actions (bigtrain/train/actions.py) are two protocols, on purpose. An action runs
    the loop: it evaluates, saves, rolls back, stops or raises, in a fixed order after every
    compiled call. A hook is told what happened (the state, each train and eval record, the
    summary) and writes it somewhere; it may ask the run to stop by setting
    `state.stop_reason`, and says that it pruned the run by setting `pruned`. Every method is
    a no-op here: a hook overrides the ones it needs.
    """

    #: True once this hook stopped the run for a search's pruner: the run ends `pruned`
    pruned: bool = False

    def on_train_begin(self, state: LoopState) -> None: ...
    def on_steps(self, state: LoopState) -> None: ...  # after every compiled call
    def on_log(self, state: LoopState, record: dict[str, Any]) -> None: ...
    def on_eval(self, state: LoopState, record: dict[str, Any], improved: bool) -> None: ...
    # the test split's metrics (`test_*` keys), once, after training ends
    def on_test(self, state: LoopState, record: dict[str, Any]) -> None: ...
    def on_train_end(self, state: LoopState) -> None: ...
    def on_summary(self, summary: dict[str, Any], model: Any = None) -> None: ...
    def close(self) -> None: ...
