"""Kill a real run at chosen points and resume it: the weights end bitwise identical to an
uninterrupted run (deterministic mode, dropout and per-epoch shuffling on). SIGTERM preempts
with a checkpoint and a documented exit status."""

from __future__ import annotations

import signal
import time

import pytest
import yaml
from helpers import checkpoint_tensors, read_json, read_jsonl, run_cli, start_cli

pytestmark = pytest.mark.slow

# 11 steps per epoch (digits, fraction 0.25, batch 32): 20 steps cross an epoch boundary
ARGS = ["debug=smoke", "trainer.deterministic=true", "trainer.max_steps=20",
        "trainer.checkpoint_every=5", "trainer.eval_every=4", "trainer.log_every=1",
        "trainer.progress=none", "model.dropout=0.2"]


@pytest.mark.parametrize("fault, again", [
    ("step=7", "fit"),          # mid-epoch, two steps after a checkpoint
    ("step=6", "fit"),          # just after the checkpoint of step 5
    ("eval=2", "fit"),          # during the second evaluation (step 8)
    ("checkpoint=10", "fit"),   # while the checkpoint of step 10 is being written
    ("step=13", "fit"),         # in the second epoch
    ("step=13", "resume"),      # continued by `bigtrain resume run`, nothing retyped
])
def test_sigkill_and_resume_is_bitwise_exact(reference_run, tmp_path, fault, again):
    reference = reference_run(ARGS)  # the uninterrupted run (conftest.py)
    killed = run_cli("fit", *ARGS, "hydra.run.dir=run", cwd=tmp_path,
                     env={"BIGTRAIN_FAULTS": f"sigkill@{fault}"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    command = ["fit", *ARGS, "hydra.run.dir=run"] if again == "fit" else ["resume", "run"]
    resumed = run_cli(*command, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "completed" and summary["steps"] == 20
    got = checkpoint_tensors(tmp_path / "run" / "checkpoints" / "ckpt-20")
    assert got.keys() == reference.keys()
    differ = [k for k in got if got[k] != reference[k]]
    assert not differ, f"{len(differ)} tensors differ after resume: {differ[:3]}"
    # metrics.jsonl holds each step once: replayed steps replaced, not duplicated
    steps = [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 21))


def test_sigterm_preempts_with_a_checkpoint_and_resumes(tmp_path):
    args = ["debug=smoke", "trainer.max_steps=100000", "trainer.epochs=1000",
            "trainer.log_every=1", "trainer.checkpoint_every=100000", "trainer.eval_every=100000",
            "trainer.progress=none", "hydra.run.dir=run"]
    proc = start_cli("fit", *args, cwd=tmp_path)
    try:
        metrics = tmp_path / "run" / "metrics.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        assert proc.poll() is None and metrics.exists(), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 75, err  # EX_TEMPFAIL: requeue
    assert "preempted by SIGTERM" in err
    assert "(exit status 75: requeue, or continue with: bigtrain resume run)" in err
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "preempted" and summary["steps"] > 0
    step = summary["steps"]
    assert (tmp_path / "run" / "checkpoints" / f"ckpt-{step}.index").exists()
    again = run_cli("fit", *args[:1], "trainer.max_steps=" + str(step + 3), "trainer.log_every=1",
                    "trainer.progress=none", "hydra.run.dir=run", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"at step {step}" in again.stderr
    assert read_json(tmp_path / "run" / "summary.json")["steps"] == step + 3


def test_resume_into_a_run_dir_of_another_config_is_refused(cli, tmp_path):
    first = cli("fit", "debug=smoke", "hydra.run.dir=run")
    assert first.returncode == 0, first.stderr
    other = cli("fit", "debug=smoke", "optim.lr=0.1", "hydra.run.dir=run")
    assert other.returncode == 2
    assert "optim.lr: 0.002 -> 0.1" in other.stderr and "trainer.resume=force" in other.stderr
    forced = cli("fit", "debug=smoke", "optim.lr=0.1", "trainer.resume=force",
                 "trainer.max_steps=8", "hydra.run.dir=run")
    assert forced.returncode == 0, forced.stderr
    assert "at step 6" in forced.stderr


def test_resume_extends_a_finished_run_from_its_own_record(cli, tmp_path):
    """A run made with an option of the user's own config dir (-cd) continues with the config
    it recorded, in its run dir, with nothing of its command retyped; its record keeps the
    run's overrides with the extension merged in (what `bigtrain runs` shows)."""
    conf = tmp_path / "myconf" / "model"
    conf.mkdir(parents=True)
    (conf / "wide.yaml").write_text("# mine\ndefaults:\n  - /schema/model/mlp@_here_\n"
                                    "  - _self_\nhidden: [64]\n")
    made = ["model=wide", "debug=smoke", "trainer.progress=none"]
    first = cli("fit", "-cd", "myconf", *made, "hydra.run.dir=run")
    assert first.returncode == 0, first.stderr
    longer = cli("resume", "run", "trainer.max_steps=9")
    assert longer.returncode == 0, longer.stderr
    assert "resumed from" in longer.stderr and "at step 6" in longer.stderr
    run = tmp_path / "run"
    assert read_json(run / "summary.json")["status"] == "completed"
    assert read_json(run / "summary.json")["steps"] == 9
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["hidden"] == [64] and config["trainer"]["max_steps"] == 9
    assert yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) == [
        *made, "trainer.max_steps=9"]
    assert "model: wide" in (run / ".hydra" / "hydra.yaml").read_text()
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
    assert steps == [2, 4, 6, 8, 9]


def test_resume_refuses_what_is_not_a_run(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    for target, words in (("empty", "empty is not a bigtrain run dir (no readable config.yaml)"),
                          ("nosuch", "nosuch does not exist")):
        proc = cli("resume", target)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert not any((tmp_path / "empty").iterdir())


def test_eval_and_export_commands(cli, tmp_path):
    assert cli("fit", "debug=smoke", "hydra.run.dir=run").returncode == 0
    ev = cli("eval", "run", "--split", "test", "--checkpoint", "best")
    assert ev.returncode == 0, ev.stderr
    assert "test_accuracy" in ev.stdout
    assert (tmp_path / "run" / "eval_test_best.json").exists()
    ex = cli("export", "run", "--format", "keras")
    assert ex.returncode == 0, ex.stderr
    assert (tmp_path / "run" / "export" / "model.keras").exists()
    bad = cli("eval", "nosuch")
    assert bad.returncode == 2 and "nosuch does not exist" in bad.stderr
    bad = cli("export", "run", "--format", "onnx")
    assert bad.returncode == 2 and "savedmodel, keras" in bad.stderr


def test_info_command(cli):
    info = cli("info", "model=transformer")
    assert info.returncode == 0, info.stderr
    assert "FLOPs per example, forward" in info.stdout and "block0" in info.stdout


def test_generate_command(cli, tmp_path):
    lm = ["debug=smoke", "dataset=synthetic", "dataset.task=lm", "dataset.vocab_size=256",
          "dataset.seq_len=16", "model=transformer", "model.d_model=32", "model.num_layers=1",
          "hydra.run.dir=lm"]
    assert cli("fit", *lm).returncode == 0
    greedy = cli("generate", "lm", "--prompt", "ab", "--max-new", "6", "--temperature", "0")
    assert greedy.returncode == 0, greedy.stderr
    assert greedy.stdout.startswith("ab") and len(greedy.stdout.strip()) > 2
    again = cli("generate", "lm", "--prompt", "ab", "--max-new", "6", "--temperature", "0")
    assert again.stdout == greedy.stdout  # greedy decoding is deterministic
    top1 = cli("generate", "lm", "--prompt", "ab", "--max-new", "6", "--top-k", "1")
    assert top1.stdout == greedy.stdout  # top-1 sampling is greedy decoding
    assert cli("fit", "debug=smoke", "hydra.run.dir=cls").returncode == 0
    refused = cli("generate", "cls", "--prompt", "x")
    assert refused.returncode == 2 and "needs a language model" in refused.stderr


def test_data_command_shows_spec_examples_grid_and_speed(cli, tmp_path):
    proc = cli("data", "--examples", "3", "--batches", "5")
    assert proc.returncode == 0, proc.stderr
    assert "1437 train / 180 val / 180 test" in proc.stdout
    assert "examples/s" in proc.stdout
    png = tmp_path / "digits_examples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = cli("data", "dataset=csv", "dataset.path=none.csv", "dataset.label=y")
    assert bad.returncode == 2 and "none.csv does not exist" in bad.stderr


def test_sigusr2_checkpoints_then_hands_over_to_the_handler_before_it(tmp_path):
    """SLURM/submitit's time-limit signal: checkpoint first, then the scheduler's handler
    (submitit's requeue) runs, then the run ends as preempted."""
    import os

    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed
    from bigtrain.core.hooks import Hook
    from bigtrain.run.job import train
    from bigtrain.train.preemption import Preempted

    class SignalAtStep2(Hook):
        sent = False

        def on_steps(self, state):
            if state.step >= 2 and not self.sent:
                self.sent = True
                os.kill(os.getpid(), signal.SIGUSR2)

    handed = []
    config = to_typed(compose(["debug=smoke", "model=mlp", "trainer.progress=none"]))
    old = signal.signal(signal.SIGUSR2, lambda sig, frame: handed.append(
        sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("ckpt-*.index"))))
    try:
        with pytest.raises(Preempted) as err:
            train(config, tmp_path / "run", extra_hooks=(SignalAtStep2(),))
    finally:
        signal.signal(signal.SIGUSR2, old)
    step = err.value.step
    assert err.value.signal_name == "SIGUSR2" and step >= 2
    assert handed == [[f"ckpt-{step}.index"]]  # the checkpoint existed when it was handed over
