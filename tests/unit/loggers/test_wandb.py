"""The Weights & Biases logger (logger=[...,wandb]): the real wandb package in offline mode, read
back from the offline run's own file (run-<id>.wandb), for a run and its resume; a recording
fake of wandb for what bigtrain decides (which W&B run to continue, what it leaves to W&B, a run
that cannot start); a clear error without the package. No network: WANDB_MODE=offline."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.core.hooks import Hook, LoopState

SMALL = ["debug=smoke", "model=mlp", "model.hidden=[16]", "trainer.progress=none",
         "strategy.precision=fp32", "logger=[wandb]", "logger.wandb.project=digits",
         "logger.wandb.tags=[smoke,mlp]"]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """W&B offline, silent, writing under tmp_path (its WANDB_DIR); yields that dir. Stops
    W&B's service process after the test: it sets WANDB_SERVICE in os.environ, which the
    fork server's check (conftest.py) would take for a leaked change."""
    wandb = pytest.importorskip("wandb", reason="the wandb package is not installed "
                                '(pip install "bigtrain[wandb]")')
    had_service = "WANDB_SERVICE" in os.environ
    wandb_dir = tmp_path / "wandb-dir"
    for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir),
                       "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
                       "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true"}.items():
        monkeypatch.setenv(key, value)
    for key in ("WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_GROUP", "WANDB_RUN_ID",
                "WANDB_RESUME", "WANDB_NAME", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    yield wandb_dir
    wandb.teardown()
    if not had_service:
        os.environ.pop("WANDB_SERVICE", None)


@pytest.fixture
def init_calls(offline, monkeypatch) -> list[dict]:
    """The kwargs of every wandb.init call (the real one still runs)."""
    import wandb

    calls: list[dict] = []
    real = wandb.init

    def init(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(wandb, "init", init)
    return calls


# ------------------------------------------------------------------ the offline run's file
def _records(path: Path):
    """The records of a run-<id>.wandb file: W&B's append-only log (a 7-byte header, then
    32 KiB blocks of chunks: crc32, length, type FULL=1 FIRST=2 MIDDLE=3 LAST=4)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header: padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(path: Path) -> dict:
    """What the offline run holds: its run record (id, project, name, tags), config, history
    rows by step, summary (user keys) and exit code."""
    out: dict = {"history": {}, "summary": {}, "config": {}, "exit_code": None}
    for r in _records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["run"] = r.run
            out["config"].update({u.key: json.loads(u.value_json) for u in r.run.config.update})
        elif kind == "config":
            out["config"].update({_key(u): json.loads(u.value_json) for u in r.config.update})
        elif kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in r.history.item}
            out["history"][int(row["_step"])] = row
        elif kind == "summary":
            out["summary"].update({_key(u): json.loads(u.value_json) for u in r.summary.update})
        elif kind == "exit":
            out["exit_code"] = r.exit.exit_code
    return out


def offline_runs(wandb_dir: Path, run_id: str) -> list[Path]:
    """The run-<id>.wandb files of W&B run `run_id`, oldest first (one per attempt)."""
    return sorted((wandb_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))


class Records(Hook):
    """Every train, val and test record the hooks were told, copied."""

    def __init__(self):
        self.records: list[dict] = []

    def on_log(self, state, record) -> None:
        self.records.append(dict(record))

    def on_eval(self, state, record, improved) -> None:
        self.records.append(dict(record))

    def on_test(self, state, record) -> None:
        self.records.append(dict(record))


def train(overrides: list[str], run_dir: Path) -> tuple[dict, list[dict]]:
    """Train in this process: the summary, and the records the hooks were told."""
    from bigtrain.run.job import train as run_job

    told = Records()
    summary = run_job(to_typed(compose(overrides)), run_dir, extra_hooks=(told,))
    return summary, told.records


# ------------------------------------------------------------------ a real run, offline
def test_a_run_logs_config_metrics_and_summary_into_its_offline_wandb_run_and_a_resume_continues_it(  # noqa: E501
        offline, init_calls, tmp_path):
    run_dir = tmp_path / "run"
    summary, records = train([*SMALL, "trainer.max_steps=4"], run_dir)

    recorded = json.loads((run_dir / "wandb_run.json").read_text())
    run_id = recorded["id"]
    assert recorded["project"] == "digits" and recorded["mode"] == "offline"
    (first,) = init_calls
    assert "id" not in first and "resume" not in first
    assert first["project"] == "digits" and first["name"] == "run"
    assert first["tags"] == ["smoke", "mlp"] and first["dir"] == str(offline)
    assert "mode" not in first and "entity" not in first  # left to W&B (WANDB_MODE here)

    (path,) = offline_runs(offline, run_id)
    got = read_offline_run(path)
    assert got["run"].run_id == run_id and got["run"].project == "digits"
    assert got["run"].display_name == "run" and list(got["run"].tags) == ["smoke", "mlp"]
    # the parameters: the flat resolved config, numbers kept as numbers
    assert got["config"]["model.name"] == "mlp"
    assert got["config"]["trainer.max_steps"] == 4
    assert got["config"]["model.hidden"] == [16]
    assert got["config"]["logger.wandb.tags"] == ["smoke", "mlp"]
    # every train, val and test record is in the W&B row of its step
    assert {r["step"] for r in records} == {2, 3, 4}
    assert set(got["history"]) == {2, 3, 4}
    for r in records:
        row = got["history"][r["step"]]
        for k, v in r.items():
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool):
                assert row[k] == pytest.approx(v, rel=1e-6), (r["step"], k)
    assert any(k.startswith("val_") for k in got["history"][3])
    assert any(k.startswith("test_") for k in got["history"][4])
    # the summary: summary.json's, final and best flattened
    s = got["summary"]
    assert s["status"] == "completed" and s["steps"] == 4
    assert s["final_loss"] == pytest.approx(summary["final"]["loss"], rel=1e-6)
    assert s["best_val_loss"] == pytest.approx(summary["best"]["val_loss"], rel=1e-6)
    assert "total_s" in s["timing"]
    assert got["exit_code"] == 0

    # the same run dir, trained further: the checkpoint at step 4 and its W&B run continue
    _, records = train([*SMALL, "trainer.max_steps=6"], run_dir)
    second = init_calls[1]
    assert second["id"] == run_id and second["resume"] == "allow"
    assert json.loads((run_dir / "wandb_run.json").read_text())["id"] == run_id
    # offline, W&B keeps the attempt in a second directory of the same run id, which
    # `wandb sync` uploads after the first (online, the W&B run itself continues)
    first_path, second_path = offline_runs(offline, run_id)
    assert first_path == path
    again = read_offline_run(second_path)
    assert again["run"].run_id == run_id
    assert {r["step"] for r in records} == set(again["history"]) == {6}  # steps 5-6
    assert again["history"][6]["loss"] == pytest.approx(records[0]["loss"], rel=1e-6)
    assert again["summary"]["steps"] == 6 and again["exit_code"] == 0
    assert again["config"]["trainer.max_steps"] == 6  # the config updated on the resume


# ------------------------------------------------------------------ bigtrain's choices, faked
class FakeRun:
    def __init__(self, kwargs: dict, starting_step: int = 0):
        self.id = kwargs.get("id") or "fake0001"
        self.project = kwargs.get("project")
        self.entity = ""
        self.starting_step = starting_step
        self.settings = types.SimpleNamespace(mode=kwargs.get("mode", "online"), sync_dir=None)
        self.config = types.SimpleNamespace(updates=[], update=lambda d, **kw:
                                            self.config.updates.append((d, kw)))
        self.summary: dict = {}
        self.logged: list[tuple[dict, int]] = []
        self.exit_code: int | None = None

    def log(self, data: dict, step: int) -> None:
        self.logged.append((data, step))

    def finish(self, exit_code: int = 0) -> None:
        self.exit_code = exit_code


@pytest.fixture
def fake_wandb(monkeypatch):
    """A `wandb` module whose init records its kwargs and returns a FakeRun (`fail`: raise)."""
    module = types.SimpleNamespace(calls=[], runs=[], fail=None, starting_step=0)

    def init(**kwargs):
        module.calls.append(kwargs)
        if module.fail is not None:
            raise module.fail
        run = FakeRun(kwargs, module.starting_step)
        module.runs.append(run)
        return run

    module.init = init
    monkeypatch.setitem(sys.modules, "wandb", module)
    for key in ("WANDB_PROJECT", "WANDB_DIR"):
        monkeypatch.delenv(key, raising=False)
    return module


def _logger(run_dir: Path, *overrides: str):
    from bigtrain.loggers import build_loggers

    config = to_typed(compose(["logger=[wandb]", *overrides]))
    (hook,) = build_loggers(config, run_dir)
    return hook


def test_a_resumed_run_continues_the_recorded_wandb_run_and_skips_the_steps_it_holds(
        fake_wandb, tmp_path):
    (tmp_path / "wandb_run.json").write_text('{"id": "abc123", "project": "bigtrain"}')
    fake_wandb.starting_step = 9  # the W&B run logged up to step 8 before the stop
    hook = _logger(tmp_path)
    hook.on_train_begin(LoopState(step=6))  # the checkpoint at step 6 continues
    (kwargs,) = fake_wandb.calls
    assert kwargs["id"] == "abc123" and kwargs["resume"] == "allow"
    assert "config" not in kwargs  # set after the resume, changes allowed (logger.* keys)
    (run,) = fake_wandb.runs
    ((params, how),) = run.config.updates
    assert params["logger.wandb.project"] == "" and how == {"allow_val_change": True}
    for step in (7, 8, 9, 10):
        hook.on_log(None, {"step": step, "epoch": 0.5, "loss": 1.0 / step, "note": None})
    assert [s for _, s in run.logged] == [9, 10]  # W&B takes no step below its current one
    assert run.logged[0][0] == {"epoch": 0.5, "loss": pytest.approx(1 / 9)}
    hook.close()
    assert run.exit_code == 1  # closed without a summary: the run failed


def test_a_run_that_starts_at_step_0_starts_a_new_wandb_run_and_records_it(fake_wandb,
                                                                             tmp_path):
    """A recorded id but no checkpoint to continue (trainer.rerun=true, or a run stopped
    before its first checkpoint): a new W&B run, whose id replaces the recorded one."""
    (tmp_path / "wandb_run.json").write_text('{"id": "old0001"}')
    hook = _logger(tmp_path, "logger.wandb.entity=team", "logger.wandb.run_group=sweep1",
                   "logger.wandb.mode=online", "logger.wandb.run_name=first",
                   "logger.wandb.dir=" + str(tmp_path / "w"))
    hook.on_train_begin(LoopState(step=0))
    (kwargs,) = fake_wandb.calls
    assert "id" not in kwargs and "resume" not in kwargs
    assert kwargs["config"]["logger.wandb.entity"] == "team"
    assert (kwargs["entity"], kwargs["group"], kwargs["mode"], kwargs["name"]) == \
        ("team", "sweep1", "online", "first")
    assert kwargs["dir"] == str(tmp_path / "w") and (tmp_path / "w").is_dir()
    assert kwargs["reinit"] == "create_new"  # never logs into an embedding program's run
    assert json.loads((tmp_path / "wandb_run.json").read_text())["id"] == "fake0001"
    hook.on_summary({"status": "completed", "final": {"loss": 0.5}, "best": {"val_loss": 0.4},
                     "timing": {"total_s": 1.0}})
    hook.close()
    run = fake_wandb.runs[0]
    assert run.summary == {"status": "completed", "final_loss": 0.5, "best_val_loss": 0.4,
                           "timing": {"total_s": 1.0}}
    assert run.exit_code == 0


def test_empty_settings_are_left_to_wandb_and_its_environment(fake_wandb, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    hook = _logger(tmp_path / "2026-01-01" / "12-00-00")
    hook.on_train_begin(LoopState(step=0))
    (kwargs,) = fake_wandb.calls
    assert kwargs["project"] == "from-env" and kwargs["name"] == "12-00-00"
    assert kwargs["dir"] == str(tmp_path / "2026-01-01" / "12-00-00")  # the run dir
    assert not {"entity", "group", "mode", "tags", "id", "resume"} & set(kwargs)


def test_disabled_mode_records_no_run(fake_wandb, tmp_path):
    hook = _logger(tmp_path, "logger.wandb.mode=disabled")
    hook.on_train_begin(LoopState(step=0))
    hook.close()
    assert fake_wandb.calls[0]["mode"] == "disabled"
    assert not (tmp_path / "wandb_run.json").exists()


def test_a_wandb_run_that_cannot_start_is_a_clear_error(fake_wandb, tmp_path):
    fake_wandb.fail = RuntimeError("No API key configured. Use `wandb login` to log in.\nmore")
    hook = _logger(tmp_path)
    with pytest.raises(ConfigError, match=r"logger.wandb: W&B could not start a run: No API "
                       r"key configured.*wandb login.*mode=offline"):
        hook.on_train_begin(LoopState(step=0))
    hook.close()  # nothing started, nothing to finish


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="logger.wandb.mode"):
        to_typed(compose(["logger=[wandb]", "logger.wandb.mode=cloud"]))
    with pytest.raises(ConfigError, match="logger.wandb.tags"):
        to_typed(compose(["logger=[wandb]", "logger.wandb.tags=[" + "x" * 65 + "]"]))


def test_without_the_wandb_package_the_logger_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    with pytest.raises(ConfigError, match=r'logger.wandb: .*pip install "bigtrain\[wandb\]"'):
        _logger(tmp_path)


def test_ls_show_and_the_logger_registry_do_not_import_wandb():
    code = ("import sys\n"
            "from bigtrain.loggers import LOGGERS\n"
            "LOGGERS.builders()\n"
            "from bigtrain.cli.hydra_glue import compose\n"
            "from bigtrain.config.schema import to_typed\n"
            "to_typed(compose(['logger=[wandb]']))\n"
            "assert 'bigtrain.loggers.wandb_logger' in sys.modules\n"
            "assert 'wandb' not in sys.modules, 'wandb imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
