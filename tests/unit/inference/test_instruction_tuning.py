"""Instruction tuning of a Transformers checkpoint end to end, as a user does it: a Qwen 2
folder (safetensors, tokenizer.json, chat template) fine-tuned with LoRA on packed chat pairs
with the loss on the answers, answer tasks scored during training and after, exported back to a
Transformers folder, and talked to through `bigtrain chat` (in a real terminal too). The
engine's guarantees hold: bitwise resume after SIGKILL, two workers equal one."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time

import hf_folders
import numpy as np
import pytest
from helpers import CLI, checkpoint_tensors, command_env, read_jsonl, run_cli, run_workers

pytestmark = pytest.mark.slow

CAPITALS = {"france": "paris", "italy": "rome", "spain": "madrid", "japan": "tokyo",
            "egypt": "cairo", "peru": "lima", "kenya": "nairobi", "chile": "santiago"}


def pairs_file(path):
    rng = np.random.default_rng(0)
    names = list(CAPITALS)
    with open(path, "w") as f:
        for i in range(120):
            c = names[rng.integers(len(names))]
            if i % 2:
                f.write(json.dumps({"prompt": f"capital of {c}?", "response": CAPITALS[c]})
                        + "\n")
            else:
                f.write(json.dumps({"messages": [
                    {"role": "system", "content": "One word."},
                    {"role": "user", "content": f"capital of {c}?"},
                    {"role": "assistant", "content": CAPITALS[c]}]}) + "\n")
    return path


def task_file(path):
    lines = []
    for c, a in CAPITALS.items():
        others = [v for v in CAPITALS.values() if v != a][:2]
        lines += [{"prompt": f"capital of {c}?", "answer": a},
                  {"prompt": f"capital of {c}?", "choices": [*others, a], "answer": 2},
                  {"prompt": f"capital of {c}?", "response": a}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def args(root, *more: str) -> list[str]:
    return ["dataset=chat", f"dataset.path={root / 'pairs.jsonl'}", "dataset.seq_len=96",
            "dataset.packing=true",
            "model=hub", f"model.preset={root / 'qwen'}", "model.lora_rank=4",
            "model.dropout=0", "optim.lr=0.02", "trainer.batch_size=8", "trainer.max_steps=12",
            "trainer.eval_every=6", "trainer.checkpoint_every=6", "trainer.log_every=3",
            "trainer.progress=none", "trainer.deterministic=true", "logger=[]",
            "strategy.precision=fp32", *more]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("instruct")
    hf_folders.qwen2(root / "qwen")
    pairs_file(root / "pairs.jsonl")
    task_file(root / "capitals.jsonl")
    return root


@pytest.fixture(scope="module")
def tuned(root):
    proc = run_cli("fit", *args(root, f"trainer.eval_tasks=[{root / 'capitals.jsonl'}]"),
                   "hydra.run.dir=tuned", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "tuned"


def test_a_lora_chat_run_trains_on_answers_and_scores_tasks_at_each_eval(root, tuned):
    pre = json.loads((tuned / "preprocessing.json").read_text())
    assert pre["input"]["chat"]["template"] == hf_folders.CHATML  # the checkpoint's own
    assert pre["spec"]["masked"] is True and pre["spec"]["packed"] is True
    evals = [r for r in read_jsonl(tuned / "metrics.jsonl") if "val_loss" in r]
    assert [r["step"] for r in evals] == [6, 12]
    for key in ("val_task_capitals_exact", "val_task_capitals_choice_accuracy",
                "val_task_capitals_perplexity"):
        assert all(key in r for r in evals), evals[-1].keys()
    losses = [r["loss"] for r in read_jsonl(tuned / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0]


def test_export_hf_reads_back_to_the_runs_logits_with_the_bases_tokenizer(root, tuned):
    from bigtrain.core.errors import ConfigError
    from bigtrain.inference.restore import export_run, open_run
    from bigtrain.models import hub
    from bigtrain.models.hub import build_hub
    from bigtrain.models.schemas import HubConfig

    for wrong in (tuned, root / "qwen", root):  # the run, the base, a folder holding them
        with pytest.raises(ConfigError, match="an export replaces"):
            export_run(tuned, "hf", wrong)
    (root / "mine").mkdir(exist_ok=True)
    (root / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an earlier export"):
        export_run(tuned, "hf", root / "mine")
    assert (root / "mine" / "notes.txt").read_text() == "keep me"
    out = export_run(tuned, "hf", root / "export-hf")
    assert export_run(tuned, "hf", out) == out  # an earlier export is replaced
    end = json.loads((out / "generation_config.json").read_text())["eos_token_id"]
    im_end = json.loads((root / "qwen" / "config.json").read_text())["eos_token_id"]
    assert end == im_end or im_end in end
    for name in ("tokenizer.json", "config.json", "model.safetensors", "chat_template.jinja"):
        assert (out / name).is_file(), name
    assert (out / "tokenizer.json").read_bytes() == (root / "qwen" / "tokenizer.json").read_bytes()
    assert (out / "chat_template.jinja").read_text() == hf_folders.CHATML
    assert json.loads((out / "tokenizer_config.json").read_text())["chat_template"] == \
        hf_folders.CHATML
    r = open_run(tuned)
    ids = np.random.default_rng(0).integers(0, 300, (2, 96)).astype("int32")
    want = np.asarray(hub.merged(r.model, r.spec)(ids, training=False))
    got = np.asarray(build_hub(HubConfig(preset=str(out)), r.spec)(ids, training=False))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_eval_task_and_chat_messages_from_the_command_line(root, tuned):
    proc = run_cli("eval", str(tuned), "--task", str(root / "capitals.jsonl"), "--shots", "1",
                   cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "task_capitals_exact" in proc.stdout and "1-shot" in proc.stdout
    written = list(tuned.glob("eval_task_capitals_1shot_*.json"))
    assert written
    metrics = json.loads(written[0].read_text())["metrics"]
    assert metrics["task_capitals_exact_items"] == 8
    msgs = root / "msgs.jsonl"
    msgs.write_text(json.dumps({"prompt": "capital of peru?"}) + "\n" + json.dumps(
        {"messages": [{"role": "user", "content": "capital of chile?"}]}) + "\n")
    proc = run_cli("chat", str(tuned), "--messages", str(msgs), "--temperature", "0",
                   "--max-new", "8", cwd=root)
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [a["line"] for a in answers] == [1, 2]
    assert all(isinstance(a["answer"], str) and 1 <= a["tokens"] <= 8 for a in answers)
    # a message that cannot fit the window with room for the answer is refused by line
    msgs.write_text(json.dumps({"prompt": "capital " * 200}) + "\n")
    proc = run_cli("chat", str(tuned), "--messages", str(msgs), "--max-new", "8", cwd=root)
    assert proc.returncode == 2 and "line 1: the message is" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_eval_on_a_split_rebuilds_the_chat_data_with_the_runs_own_template(root, tuned):
    proc = run_cli("eval", str(tuned), "--split", "val", "--checkpoint", "latest", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "changed since the run" not in proc.stderr and "template chatml" not in proc.stderr
    final = [r for r in read_jsonl(tuned / "metrics.jsonl") if "val_loss" in r][-1]
    got = json.loads(next(tuned.glob("eval_val_*.json")).read_text())["metrics"]
    assert got["val_loss"] == pytest.approx(final["val_loss"], rel=1e-5)


def test_chat_in_a_real_terminal_answers_resets_and_exits(root, tuned):
    main, child = pty.openpty()
    proc = subprocess.Popen([*CLI, "chat", str(tuned), "--max-new", "6", "--temperature", "0"],
                            stdin=child, stdout=child, stderr=child, cwd=root,
                            env=command_env(), close_fds=True)
    os.close(child)
    seen = b""

    def read_until(marker: bytes, timeout: float = 120) -> bytes:
        nonlocal seen
        end = time.monotonic() + timeout
        while marker not in seen:
            assert time.monotonic() < end, seen[-2000:]
            ready, _, _ = select.select([main], [], [], 1)
            if ready:
                try:
                    seen += os.read(main, 4096)
                except OSError:  # the child closed the terminal
                    break
        return seen

    try:
        read_until(b"you> ")
        os.write(main, b"capital of peru?\n")
        read_until(b"assistant> ")
        read_until(b"tokens in")
        seen = b""
        os.write(main, b"/reset\n")
        read_until(b"(a new conversation)")
        os.write(main, b"/exit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)


def test_sigkill_and_resume_of_a_packed_masked_lora_run_is_bitwise_exact(root, tuned,
                                                                         tmp_path):
    a = args(root, f"trainer.eval_tasks=[{root / 'capitals.jsonl'}]", "hydra.run.dir=run")
    killed = run_cli("fit", *a, cwd=tmp_path, env={"BIGTRAIN_FAULTS": "sigkill@step=9"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_cli("fit", *a, cwd=tmp_path)
    assert resumed.returncode == 0 and "resumed from" in resumed.stderr, resumed.stderr
    want = checkpoint_tensors(tuned / "checkpoints" / "ckpt-12")
    got = checkpoint_tensors(tmp_path / "run" / "checkpoints" / "ckpt-12")
    assert got.keys() == want.keys() and any(k.startswith("trained/") for k in got)
    assert [k for k in got if got[k] != want[k]] == []


def test_two_workers_weigh_trained_tokens_like_one(root, tmp_path):
    a = args(root, "trainer.max_steps=4", "trainer.eval_every=4", "trainer.log_every=1")
    one = run_cli("fit", *a, "hydra.run.dir=one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    codes, outs = run_workers("fit", *a, "strategy=multi_worker",
                              f"hydra.run.dir={tmp_path / 'two'}", cwd=tmp_path,
                              env={"TMPDIR": str(tmp_path)})
    assert codes == [0, 0], [out[-3000:] for out in outs]

    def losses(run):
        return [(r["step"], r["loss"]) for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]

    x, y = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert [s for s, _ in x] == [s for s, _ in y] == [1, 2, 3, 4]
    assert max(abs(p - q) for (_, p), (_, q) in zip(x, y, strict=True)) < 1e-5


def test_sigkill_and_resume_of_a_packed_masked_run_is_bitwise_exact(root, tmp_path):
    a = ["dataset=chat", f"dataset.path={root / 'pairs.jsonl'}", "dataset.seq_len=128",
         "dataset.packing=true", "model=transformer", "model.d_model=32", "model.num_layers=1",
         "model.positions=rotary", "trainer.batch_size=4", "trainer.max_steps=8",
         "trainer.eval_every=4", "trainer.checkpoint_every=4", "trainer.log_every=1",
         "trainer.progress=none",
         "trainer.deterministic=true", "logger=[]", "strategy.precision=fp32"]
    whole = run_cli("fit", *a, "hydra.run.dir=whole", cwd=tmp_path)
    assert whole.returncode == 0 and "packed into" in whole.stderr, whole.stderr
    killed = run_cli("fit", *a, "hydra.run.dir=run", cwd=tmp_path,
                     env={"BIGTRAIN_FAULTS": "sigkill@step=6"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_cli("fit", *a, "hydra.run.dir=run", cwd=tmp_path)
    assert resumed.returncode == 0 and "resumed from" in resumed.stderr, resumed.stderr
    want = checkpoint_tensors(tmp_path / "whole" / "checkpoints" / "ckpt-8")
    got = checkpoint_tensors(tmp_path / "run" / "checkpoints" / "ckpt-8")
    assert got.keys() == want.keys() and [k for k in got if got[k] != want[k]] == []
    records = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert all(r["trained_tokens_per_sec"] > 0 and 0 < r["packing_efficiency"] <= 1
               for r in records)


def peft_applied(base: dict, directory) -> dict:
    """Transformers weights `base` with a PEFT LoRA adapter applied as PEFT defines it:
    W + lora_alpha / r * lora_B @ lora_A per module (r and alpha by rank_pattern and
    alpha_pattern), the biases of bias='lora_only' replaced. Written from PEFT's definition,
    not from bigtrain's writer."""
    from safetensors.numpy import load_file

    config = json.loads((directory / "adapter_config.json").read_text())
    tensors = load_file(str(directory / "adapter_model.safetensors"))
    out = dict(base)
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[len("base_model.model."):-len(".lora_A.weight")]
        b = tensors[key.replace("lora_A", "lora_B")]
        r = config["rank_pattern"].get(module, config["r"])
        alpha = config["alpha_pattern"].get(module, config["lora_alpha"])
        assert a.shape[0] == r == b.shape[1]
        out[f"{module}.weight"] = base[f"{module}.weight"] + (alpha / r) * (b @ a)
        if f"base_model.model.{module}.bias" in tensors:
            out[f"{module}.bias"] = tensors[f"base_model.model.{module}.bias"]
    return out


def test_the_peft_adapter_read_back_onto_the_base_gives_the_merged_export(root, tuned):
    from safetensors.numpy import load_file

    from bigtrain.inference.restore import export_run

    adapter = export_run(tuned, "adapter", root / "export-adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["target_modules"] == ["q_proj", "v_proj"]
    assert config["base_model_name_or_path"] == str(root / "qwen")
    merged_dir = root / "export-hf"
    if not merged_dir.exists():
        export_run(tuned, "hf", merged_dir)
    merged = load_file(str(merged_dir / "model.safetensors"))
    base = load_file(str(root / "qwen" / "model.safetensors"))
    applied = peft_applied(base, adapter)
    # the export writes the tied output embedding as lm_head too; the base leaves it out
    changed = [k for k in base if not np.array_equal(base[k], merged[k])]
    assert changed and all(".q_proj." in k or ".v_proj." in k for k in changed), changed
    for key in base:
        np.testing.assert_allclose(applied[key], merged[key], atol=1e-6, err_msg=key)
