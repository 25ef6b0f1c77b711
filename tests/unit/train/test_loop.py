"""The controller loop and its actions on fakes (no TensorFlow: the loop runs whatever engine it
is given), the light hook protocol, the ETA after a resume, and how far an interrupted run got."""

from __future__ import annotations

import subprocess
import sys
import time
import types

import numpy as np
import pytest
from helpers import read_json

from bigtrain.core.hooks import Hook, LoopState
from bigtrain.loggers.progress import _eta
from bigtrain.train.loop import fit_loop


def test_state_and_search_import_without_tensorflow():
    code = ("import sys, bigtrain.core.hooks, bigtrain.train.loop, bigtrain.run.search; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_hook_base_is_the_whole_protocol():
    from bigtrain.run.search import TrialReporter

    hook = Hook()
    assert hook.pruned is False
    hook.on_summary({"status": "completed"}, model=None)  # every method is a no-op
    assert issubclass(TrialReporter, Hook)


# ---------------------------------------------------------------------------- fakes
class Objective:
    stat_names = ["loss", "steps"]

    def finalize(self, totals, prefix="", baseline=True):
        return {prefix + "loss": float(totals[0] / max(totals[1], 1)),
                prefix + "steps": float(totals[1])}


class Run:
    """A fake engine, data and checkpointer that write down what the loop asks of them."""

    def __init__(self, steps_per_epoch: int, nan_at: int | None = None):
        self.spe, self.nan_at, self.events = steps_per_epoch, nan_at, []
        self.objective, self.strategy = Objective(), self
        self.spec = types.SimpleNamespace(tokens_per_example=0)
        self.saved: dict[int, dict] = {}
        self._last_saved = -1
        self.evals = iter([0.9, 0.8, 0.85, 0.84, 0.83, 0.82, 0.81, 0.8, 0.79, 0.78])

    # splits
    def train_batches(self, batch_size, epoch):
        run = self

        class Batches:
            def skip(self, k):
                run.events.append(("data", epoch, k))
                return iter([(epoch, i) for i in range(k, run.spe)])

        return Batches()

    def eval_batches(self, split, batch_size):
        return split

    # engine
    def distribute(self, batches):
        return batches

    def train_steps(self, iterator, n):
        steps = [epoch * self.spe + i + 1 for epoch, i in (next(iterator) for _ in range(n))]
        self.events.append(("train", steps[0], steps[-1]))
        loss = float("nan") if self.nan_at in steps else 1.0
        if self.nan_at in steps:
            self.nan_at = None
        return np.array([loss * n, n])

    def evaluate(self, data, prefix):
        self.events.append(("eval",))
        return {prefix + "loss": next(self.evals)}

    def weights_finite(self):
        return True

    def learning_rate(self):
        return 0.1

    # checkpointer
    def save(self, state):
        if state.step != self._last_saved:
            self._last_saved = state.step
            self.saved[state.step] = dict(state.saved())
            self.events.append(("save", state.step, state.evals_without_improvement))

    def save_best(self, state):
        self.events.append(("best", state.step))

    def restore(self, state):
        state.step = max(self.saved)
        state.load(self.saved[state.step])
        self._last_saved = state.step
        self.events.append(("restore", state.step))
        return f"ckpt-{state.step}"


class Recorder(Hook):
    def __init__(self, events, stop_at: int | None = None):
        self.events, self.stop_at = events, stop_at

    def on_train_begin(self, state):
        self.events.append(("begin", state.step, state.start_step))

    def on_log(self, state, record):
        self.events.append(("log", record["step"], record["steps"]))

    def on_eval(self, state, record, improved):
        self.events.append(("on_eval", record["step"], improved))

    def on_steps(self, state):
        self.events.append(("steps", state.step))
        if self.stop_at is not None and state.step >= self.stop_at:
            state.stop_reason = "asked by a hook"

    def on_train_end(self, state):
        self.events.append(("end", state.step))


def trainer(**kw):
    t = dict(steps_per_loop=10, batch_size=4, eval_batch_size=4, log_every=3, eval_every=4,
             checkpoint_every=5, monitor="val_loss", monitor_mode="auto", min_delta=0.0,
             patience=0, on_nan="stop", nan_max_rollbacks=3)
    return types.SimpleNamespace(**{**t, **kw})


class Scale:
    value = 1.0

    def numpy(self):
        return self.value

    def assign(self, v):
        self.value = v


def loop(run: Run, t, total: int, step: int = 0, stop_at: int | None = None) -> LoopState:
    state = LoopState(step=step, total_steps=total, steps_per_epoch=run.spe)
    fit_loop(run, run, t, state, [Recorder(run.events, stop_at)], run, Scale())
    return state


def of(events, *kinds):
    return [e for e in events if e[0] in kinds]


# ---------------------------------------------------------------------------- the loop
def test_calls_end_at_every_log_eval_checkpoint_and_epoch_boundary():
    run = Run(steps_per_epoch=11)
    loop(run, trainer(), total=20)
    ends = [e[2] for e in of(run.events, "train")]
    assert ends == [3, 4, 5, 6, 8, 9, 10, 11, 12, 15, 16, 18, 20]
    assert [e[1] for e in of(run.events, "log")] == [3, 6, 9, 12, 15, 18, 20]
    assert [e[1] for e in of(run.events, "on_eval")] == [4, 8, 12, 16, 20]
    assert [e[1] for e in of(run.events, "save")] == [5, 10, 15, 20]
    assert of(run.events, "data") == [("data", 0, 0), ("data", 1, 0)]  # one order per epoch


def test_a_round_logs_evaluates_stops_early_then_saves_that_state_then_tells_hooks():
    run = Run(steps_per_epoch=100)
    state = loop(run, trainer(log_every=5, eval_every=5, checkpoint_every=5, patience=2),
                 total=40)
    # val_loss 0.9, 0.8 (best), 0.85, 0.84: two evaluations without improvement stop at 20
    assert state.step == 20 and state.stop_reason.startswith("early stopping")
    last_round = run.events[run.events.index(("train", 16, 20)) + 1:]
    assert last_round == [("log", 20, 5.0), ("eval",), ("on_eval", 20, False),
                          ("save", 20, 2), ("steps", 20), ("end", 20)]
    assert ("best", 10) in run.events and ("best", 15) not in run.events


def test_nan_rollback_restores_and_restarts_the_epoch_data_and_the_interval():
    run = Run(steps_per_epoch=11, nan_at=7)
    state = loop(run, trainer(on_nan="rollback", steps_per_loop=1, log_every=4, eval_every=100,
                              checkpoint_every=5), total=12)
    assert state.step == 12 and state.nan_rollbacks == 1
    i = run.events.index(("restore", 5))
    assert run.events[i + 1] == ("data", 0, 5)  # the iterator rebuilt at the restored step
    # nothing of step 7 was logged; the record of step 8 holds steps 6..8 only (5 was in
    # the interval the rollback dropped)
    assert of(run.events, "log") == [("log", 4, 4.0), ("log", 8, 3.0), ("log", 12, 4.0)]


def test_the_last_step_is_evaluated_once_whatever_stopped_the_run():
    run = Run(steps_per_epoch=100)
    loop(run, trainer(steps_per_loop=1, log_every=100, eval_every=5, checkpoint_every=100),
         total=30, stop_at=7)
    assert [e[1] for e in of(run.events, "on_eval")] == [5, 7]  # 7: the final evaluation
    assert of(run.events, "save") == [("save", 7, 0)]
    resumed = Run(steps_per_epoch=100)
    loop(resumed, trainer(), total=30, step=30)  # resumed at the end: evaluated, not trained
    assert of(resumed.events, "train") == [] and len(of(resumed.events, "on_eval")) == 1


def test_eta_after_a_resume_counts_only_this_processs_steps():
    run = Run(steps_per_epoch=100)
    loop(run, trainer(), total=30, step=20)
    assert run.events[0] == ("begin", 20, 20)  # the loop records where this process began
    # 10 steps in 10 s since step 80 (a resume, after its first compiled call), 10 to go: 10 s
    # (not 10 / 90 * 10 = 1 s)
    state = LoopState(step=90, total_steps=100, start_step=80)
    assert _eta(state, (time.time() - 10, 80)) == "0:10"
    assert _eta(state, (time.time(), 90)) == "?" and _eta(state, None) == "?"


def test_the_first_eta_after_a_resume_leaves_out_the_compile(monkeypatch, caplog):
    """Resumed at step 200 of 1760: the first compiled call (10 steps) traces and compiles for
    60 s, the next ones run 10 steps a second. The first progress line's ETA is the 1540 steps
    left at that pace, 2:34 (counted from the resume with the compile: 20 steps in 61 s, the
    ETA would be 78:17)."""
    from bigtrain.loggers import progress

    clock = [1000.0]
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(time=lambda: clock[0]))

    class Compiling(Run):
        def train_steps(self, iterator, n):
            clock[0] += 60.0 if not of(self.events, "train") else 0.1 * n
            return super().train_steps(iterator, n)

    run = Compiling(steps_per_epoch=2000)
    state = LoopState(step=200, total_steps=1760, steps_per_epoch=run.spe)
    t = trainer(log_every=20, eval_every=1000, checkpoint_every=1000)
    with caplog.at_level("INFO", logger="bigtrain"):
        fit_loop(run, run, t, state, [progress.PlainProgress(), Recorder(run.events, 240)],
                 run, Scale())
    etas = [r.getMessage().rsplit("eta ", 1)[1] for r in caplog.records
            if r.getMessage().startswith("step ")]
    assert etas == ["2:34", "2:32"], caplog.text


# ---------------------------------------------------------------------------- the task
def test_an_interrupted_run_records_how_far_it_got(tmp_path, monkeypatch):
    """A second Ctrl-C raises KeyboardInterrupt mid-run: summary.json still says the step."""
    import bigtrain.run.job as job
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.run import task

    class Interrupt(Hook):
        def on_steps(self, state):
            if state.step >= 3:
                raise KeyboardInterrupt

    train = job.train
    monkeypatch.setattr(job, "train", lambda config, run_dir, extra_hooks=(), **kw: train(
        config, run_dir, extra_hooks=(*extra_hooks, Interrupt()), **kw))
    monkeypatch.setattr(task, "_thread_budget", lambda config: config)  # needs Hydra's runtime
    cfg = compose(["debug=smoke", "model=mlp", "trainer.progress=none", "trainer.max_steps=8",
                   "trainer.steps_per_loop=1", "logger=[]"])
    with pytest.raises(KeyboardInterrupt):
        task._run(cfg, tmp_path, chief=True)
    summary = read_json(tmp_path / "summary.json")
    assert summary["status"] == "interrupted" and summary["steps"] == 3
