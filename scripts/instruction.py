"""Instruction tuning, side by side in one run (the figures of the instruction-tuning issue).

    python -m scripts.instruction [--only tuning,packing,lora,chat] [--reps 3]

Data, made here from text on the machine: the `def` lines of the standard library's .py
sources, each asked about in one of two ways with a one-word answer that is in the line
("What is the name of the function defined by `def quote(s, safe='/'):`?" -> quote; "What is
the first parameter ...?" -> s). The functions are split: the training pairs and the held-out
questions never share a function, so a right held-out answer is read from the question, a
skill, not a fact recalled from the pairs' wording. Held-out questions come as `exact`
(greedy answer after normalization) and `choice` (the answer among three names of the same
line, or another line's) lines of one task file.

1. tuning: a GPT-2 shaped causal LM (KerasHub's GPT2Backbone, d 256, 4 layers, byte-level
   BPE) pre-trained by bigtrain on the standard library's sources (its validation
   perplexity quoted), exported as a preset, then (a) instruction-tuned on the pairs
   (dataset=chat: chatml template, loss on the answers) and (b) a control tuned as many steps
   on the same pairs as plain text ("question answer" lines, dataset=text: no template, loss
   on every token). `bigtrain eval --task` scores the base (raw text), the control (raw text,
   its training format) and the tuned model (its template).
2. packing: bigtrain's transformer (d 256, 4 layers, bytes) on the pairs at seq_len 512:
   trained tokens per second with dataset.packing=true against padded windows, alternating
   `--reps` rounds, steady-state steps; the examples' length distribution; and the
   token-weighted loss of packed windows against their examples one by one (same weights).
3. lora: LoRA (rank 8, query and value) instruction tuning of the pre-trained preset on the
   pairs, padded, answers only, against KerasHub's own CausalLM.fit on the same preset,
   windows, answer mask (sample_weight) and precision, alternating, steady-state steps.
4. chat: `bigtrain chat`'s session on the tuned run: time to the first token (an answer of
   one token) and new tokens per second of a 48-token answer, warm (after one turn), and the
   first turn (restore, merge, compile).
5. hf (`pip install '.[bench]'`: torch and transformers; not in the default --only):
   Transformers itself against bigtrain both ways, max |logit difference| (see `hf_logits`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from scripts import harness, report  # noqa: E402

CLI = harness.BIGTRAIN
SHAPE = {"hidden": 256, "layers": 4, "heads": 4, "max_len": 256}
DEF = re.compile(r"^def ([A-Za-z_][A-Za-z0-9_]*)\(([A-Za-z_][A-Za-z0-9_]*)[,)=:]")


def def_lines() -> list[tuple[str, str, str]]:
    """(line, function name, first parameter) of the top-level `def` lines of the standard
    library's .py files, the line at most 90 characters, names of at least 3; unique
    function names, in file order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    seen, out = set(), []
    for path in sorted(root.glob("*.py")):
        for line in path.read_text(encoding="utf-8", errors="ignore").splitlines():
            m = DEF.match(line)
            if not m or len(line) > 90 or line.count("\n"):
                continue
            name, first = m.group(1), m.group(2)
            if name in seen or len(name) < 3 or len(first) < 1 or first == name:
                continue
            seen.add(name)
            out.append((line.strip(), name, first))
    return out


def questions(line: str, name: str, first: str, kind: int) -> tuple[str, str]:
    if kind == 0:
        return f"What is the name of the function defined by `{line}`?", name
    return f"What is the first parameter of the function defined by `{line}`?", first


def make_data(tmp: Path, n_train: int, n_test: int, seed: int = 0) -> dict:
    import numpy as np

    rows = def_lines()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    test_rows = [rows[i] for i in order[:n_test]]
    train_rows = [rows[i] for i in order[n_test:n_test + n_train]]
    with open(tmp / "pairs.jsonl", "w") as f, open(tmp / "pairs.txt", "w") as g:
        for line, name, first in train_rows:
            for kind in (0, 1):
                q, a = questions(line, name, first, kind)
                f.write(json.dumps({"prompt": q, "response": a}) + "\n")
                g.write(f"{q} {a}\n")
    names = [r[1] for r in rows]
    with open(tmp / "heldout.jsonl", "w") as f:
        for i, (line, name, first) in enumerate(test_rows):
            kind = i % 2
            q, a = questions(line, name, first, kind)
            f.write(json.dumps({"prompt": q, "answer": a}) + "\n")
            other = names[int(rng.integers(len(names)))]
            options = sorted({name, first, other} - {a})[:2] + [a]
            rng.shuffle(options)
            if len(set(options)) == 3:
                f.write(json.dumps({"prompt": q, "choices": options,
                                    "answer": options.index(a)}) + "\n")
    return {"def_lines": len(rows), "train_functions": len(train_rows),
            "train_pairs": 2 * len(train_rows), "heldout_functions": len(test_rows)}


def bigtrain(*args: str, cwd: Path) -> str:
    proc = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"bigtrain {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def fit(tmp: Path, name: str, *args: str) -> dict:
    root = tmp / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    tic = time.perf_counter()
    bigtrain("fit", *args, "trainer.progress=none", "logger=[]", "hydra.run.dir=run", cwd=root)
    summary = json.loads((root / "run" / "summary.json").read_text())
    print(f"  {name}: {summary['steps']} steps, val loss {summary['final']['val_loss']:.3f} "
          f"({time.perf_counter() - tic:.0f} s)", flush=True)
    return summary


def task_scores(run: Path, tasks: Path, template: str) -> dict:
    bigtrain("eval", str(run), "--task", str(tasks), "--template", template, "--max-new", "16",
             cwd=run.parent)
    found = sorted(run.glob(f"eval_task_{tasks.stem}_*.json"), key=lambda p: p.stat().st_mtime)
    metrics = json.loads(found[-1].read_text())["metrics"]
    return {k.removeprefix(f"task_{tasks.stem}_"): v for k, v in metrics.items()}


def pretrain(tmp: Path, steps: int) -> tuple[Path, dict]:
    from scripts.workloads import gpt2_preset

    if (tmp / "pretrained" / "config.json").is_file():
        print(f"  pretrain: reusing {tmp / 'pretrained'}", flush=True)
        return tmp / "pretrained", json.loads(
            (tmp / "pretrain" / "run" / "summary.json").read_text())
    preset = gpt2_preset(tmp / "gpt2", **SHAPE)
    summary = fit(tmp, "pretrain", "model=hub", f"model.preset={preset}",
                  "model.load_weights=false", "dataset=text", "dataset.path=stdlib",
                  "dataset.max_chars=3000000", "dataset.seq_len=128", "trainer.batch_size=16",
                  f"trainer.max_steps={steps}", "trainer.eval_every=0", "optim.lr=2e-3",
                  "optim/schedule=cosine")
    bigtrain("export", str(tmp / "pretrain" / "run"), "--format", "preset", "--out",
             str(tmp / "pretrained"), cwd=tmp)
    return tmp / "pretrained", summary


def tuning(tmp: Path, pre_steps: int, steps: int, lr: float, batch: int) -> dict:
    preset, pre = pretrain(tmp, pre_steps)
    common = [f"trainer.max_steps={steps}", f"trainer.batch_size={batch}",
              "trainer.eval_every=0", f"optim.lr={lr}", "model=hub", f"model.preset={preset}"]
    tuned = fit(tmp, "tuned", "dataset=chat", f"dataset.path={tmp / 'pairs.jsonl'}",
                "dataset.template=chatml", "dataset.seq_len=192", *common)
    control = fit(tmp, "control", "dataset=text", f"dataset.path={tmp / 'pairs.txt'}",
                  "dataset.seq_len=192", *common)
    tasks = tmp / "heldout.jsonl"
    scores = {"base": task_scores(tmp / "pretrain" / "run", tasks, "none"),
              "control": task_scores(tmp / "control" / "run", tasks, "none"),
              "tuned": task_scores(tmp / "tuned" / "run", tasks, "auto")}
    for k, v in scores.items():
        print(f"  {k}: exact {v['exact']:.3f}, choice {v['choice_accuracy']:.3f}", flush=True)
    return {"pretrain_steps": pre_steps, "tune_steps": steps, "tune_lr": lr,
            "tune_batch": batch,
            "base_val_perplexity": pre["final"]["val_perplexity"],
            "tuned_steps": tuned["steps"], "control_steps": control["steps"], "scores": scores}


def _lengths(tmp: Path) -> dict:
    from bigtrain.data import chat, chat_templates
    from bigtrain.data.schemas import ChatConfig

    cfg = ChatConfig(path=str(tmp / "pairs.jsonl"))
    convs, _ = chat.read_conversations(cfg)
    rendered = chat.render_all(convs, chat_templates.BUILTIN["chatml"], "assistant", {})
    lengths = [len(e.ids) for e in chat.encode_all(rendered, None)]
    q = statistics.quantiles(lengths, n=10)
    return {"examples": len(lengths), "min": min(lengths), "median": statistics.median(lengths),
            "p90": q[-1], "max": max(lengths), "mean": statistics.fmean(lengths)}


def packing(tmp: Path, reps: int, steps: int) -> dict:
    import numpy as np

    from scripts.bench_engine import components, time_bigtrain

    seq, batch = 512, 8
    base = ["dataset=chat", f"dataset.path={tmp / 'pairs.jsonl'}", "dataset.template=chatml",
            f"dataset.seq_len={seq}", "model=transformer", "model.d_model=256",
            "model.num_layers=4", "model.num_heads=4", f"trainer.batch_size={batch}",
            "logger=[]"]
    built = iter(range(4 * reps))
    trained_per_step: dict[str, float] = {}

    def side(packed: bool):
        def run() -> float:
            _, c = components([*base, f"dataset.packing={str(packed).lower()}"],
                              tmp / f"pack{next(built)}")
            y = np.stack([yy for _, yy in c.splits.train.as_numpy_iterator()])
            trained_per_step["packed" if packed else "padded"] = float(
                (y >= 0).sum() / len(y) * batch)
            return time_bigtrain(c, batch, steps, per_call=10)
        return run

    measured = harness.alternate({"packed": side(True), "padded": side(False)}, reps,
                                 on_value=lambda n, v: print(f"  {n}: {v * 1e3:.1f} ms/step",
                                                             flush=True))
    med = measured.medians()
    rate = {k: trained_per_step[k] / med[k] for k in med}
    return {"seq_len": seq, "batch": batch, "lengths_bytes": _lengths(tmp),
            "ms_per_step": {k: v * 1e3 for k, v in med.items()},
            "trained_targets_per_step": trained_per_step,
            "trained_tokens_per_sec": rate, "ratio": rate["packed"] / rate["padded"],
            "rounds_ms": {k: [x * 1e3 for x in v] for k, v in measured.values.items()},
            "equal_loss": equal_loss(tmp, seq)}


def equal_loss(tmp: Path, seq: int) -> dict:
    """The token-weighted loss of the first examples packed against one by one, padded,
    through one model (bigtrain's transformer at initialization, dropout off)."""
    import keras
    import tensorflow as tf

    from bigtrain.data import chat, chat_templates
    from bigtrain.data.schemas import ChatConfig
    from bigtrain.data.spec import DatasetSpec
    from bigtrain.models import build_model, packing
    from bigtrain.models.schemas import TransformerConfig
    from bigtrain.train.objective import Objective

    convs, _ = chat.read_conversations(ChatConfig(path=str(tmp / "pairs.jsonl")))
    rendered = chat.render_all(convs[:64], chat_templates.BUILTIN["chatml"], "assistant", {})
    examples = chat.encode_all(rendered, None)
    keras.utils.set_random_seed(0)
    spec = DatasetSpec(name="chat", task="lm", input_shape=(seq,), input_dtype="int32",
                       num_outputs=256, num_train=1, num_val=1, num_test=1, masked=True)
    model = build_model(TransformerConfig(d_model=256, num_heads=4, num_layers=4, dropout=0.0),
                        spec, "fp32")
    obj = Objective("lm", 256, masked=True)

    def loss(x, y, packed: bool) -> float:
        if packed:
            ids, segments, positions = packing.split(tf.constant(x))
            with packing.scope(segments, positions):
                out = model(ids, training=False)
        else:
            out = model(tf.constant(x), training=False)
        per = obj.per_example_loss(tf.constant(y), out)
        return float(tf.reduce_sum(per) / obj.trained_count(tf.constant(y)))

    xp, yp = chat.pack(examples, seq, 0)
    xu, yu = chat.windows(examples, seq, 0)
    a, b = loss(xp, yp, True), loss(xu, yu, False)
    return {"examples": len(examples), "packed_windows": len(xp), "packed_loss": a,
            "one_by_one_loss": b, "relative_difference": abs(a - b) / b}


def lora(tmp: Path, reps: int, steps: int, precision: str) -> dict:
    import keras
    import numpy as np

    from scripts.bench_engine import components, time_bigtrain, time_keras_fit

    preset, _ = pretrain(tmp, 1500)
    seq, batch, rank = 192, 16, 8
    over = ["dataset=chat", f"dataset.path={tmp / 'pairs.jsonl'}", "dataset.template=chatml",
            f"dataset.seq_len={seq}", "model=hub", f"model.preset={preset}",
            f"model.lora_rank={rank}", f"trainer.batch_size={batch}", "logger=[]",
            f"strategy.precision={precision}", "optim.lr=1e-3"]
    built = iter(range(2 * reps))
    arrays = {}

    def ours() -> float:
        _, c = components(over, tmp / f"lora{next(built)}")
        if not arrays:
            pairs = list(c.splits.train.as_numpy_iterator())
            arrays["x"] = np.stack([x for x, _ in pairs])
            arrays["y"] = np.stack([y for _, y in pairs])
        return time_bigtrain(c, batch, steps, per_call=10)

    def keras_hub_fit() -> float:
        import keras_hub
        import tensorflow as tf

        keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if precision == "bf16"
                                               else "float32")
        try:
            lm = keras_hub.models.CausalLM.from_preset(str(preset), preprocessor=None,
                                                       dtype=keras.config.dtype_policy().name)
            lm.backbone.enable_lora(rank)
            lm.compile(optimizer=keras.optimizers.Adam(1e-3),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       weighted_metrics=[])
            x, y = arrays["x"], arrays["y"]
            inputs = {"token_ids": x, "padding_mask": np.ones_like(x, bool)}
            weights = (y >= 0).astype("float32")
            ds = tf.data.Dataset.from_tensor_slices((inputs, np.maximum(y, 0), weights)) \
                .repeat().batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
            return time_keras_fit(lm, ds, steps)
        finally:
            keras.mixed_precision.set_dtype_policy("float32")

    measured = harness.alternate({"bigtrain": ours, "keras_hub_fit": keras_hub_fit}, reps,
                                 on_value=lambda n, v: print(f"  {n}: {v * 1e3:.1f} ms/step",
                                                             flush=True))
    med = measured.medians()
    trained = float((arrays["y"] >= 0).sum() / len(arrays["y"]) * batch)
    return {"precision": precision, "seq_len": seq, "batch": batch, "rank": rank,
            "ms_per_step": {k: v * 1e3 for k, v in med.items()},
            "trained_tokens_per_sec": {k: trained / v for k, v in med.items()},
            "tokens_per_sec": {k: seq * batch / v for k, v in med.items()},
            "ratio": med["keras_hub_fit"] / med["bigtrain"],
            "rounds_ms": {k: [x * 1e3 for x in v] for k, v in measured.values.items()}}


def chat_speed(tmp: Path) -> dict:
    from bigtrain.inference.chat import open_session
    from bigtrain.inference.generate import Sampling

    run = tmp / "tuned" / "run"
    if not run.is_dir():
        raise SystemExit("chat: run the tuning part first (it makes the tuned run)")
    tic = time.perf_counter()
    session = open_session(run, Sampling(temperature=0.0), max_new=48)
    first = session.say("What is the name of the function defined by `def spam(eggs):`?")
    cold = time.perf_counter() - tic
    ttft, rates = [], []
    for i in range(5):
        session.reset()
        session.max_new = 1
        ttft.append(session.say(f"What is the first parameter of `def f{i}(x):`?").seconds)
        session.reset()
        session.max_new = 48
        turn = session.say("Say something long about the function `def main(argv):`.")
        rates.append(turn.tokens / turn.seconds)
    return {"first_turn_seconds_with_restore_and_compile": cold,
            "first_answer": first.answer, "ttft_seconds_median": statistics.median(ttft),
            "tokens_per_sec_median": statistics.median(rates), "ttft_rounds": ttft,
            "tokens_per_sec_rounds": rates, "max_new": 48}


def hf_logits(tmp: Path) -> dict:
    """Transformers itself against bigtrain, both ways, in float32 on the CPU: (a) for each
    family, a checkpoint `transformers` wrote (save_pretrained, safetensors; random weights
    of a small shape) read by model=hub: logits on the same ids; (b) the tuned run's
    `bigtrain export --format hf` loaded by `transformers` (AutoModelForCausalLM): its logits
    against bigtrain's own for the run, and its tokenizer's ids against the run's."""
    import numpy as np
    import torch
    import transformers

    from bigtrain.data.spec import DatasetSpec
    from bigtrain.inference.restore import export_run, open_run
    from bigtrain.models import hub
    from bigtrain.models.hub import build_hub
    from bigtrain.models.schemas import HubConfig

    torch.manual_seed(0)
    ids = np.random.default_rng(0).integers(0, 250, (2, 32)).astype("int64")
    small = {"vocab_size": 256, "hidden_size": 64, "intermediate_size": 128,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "max_position_embeddings": 128}
    configs = {
        "llama": transformers.LlamaConfig(**small),
        "qwen2": transformers.Qwen2Config(**small),
        "mistral": transformers.MistralConfig(**small, sliding_window=None),
        "gemma": transformers.GemmaConfig(**{**small, "num_key_value_heads": 1}, head_dim=16),
        "gpt2": transformers.GPT2Config(vocab_size=256, n_embd=64, n_layer=2, n_head=4,
                                        n_positions=128),
    }
    written = {}
    for name, config in configs.items():
        model = transformers.AutoModelForCausalLM.from_config(config).eval()
        folder = tmp / f"hf_{name}"
        model.save_pretrained(folder, safe_serialization=True)
        with torch.no_grad():
            want = model(torch.tensor(ids)).logits.numpy()
        spec = DatasetSpec(name="chat", task="lm", input_shape=(32,), input_dtype="int32",
                           num_outputs=256, num_train=1, num_val=1, num_test=1)
        got = np.asarray(build_hub(HubConfig(preset=str(folder)), spec)(
            ids.astype("int32"), training=False))
        written[name] = float(np.abs(got - want).max())
        print(f"  transformers -> bigtrain, {name}: max |logit difference| "
              f"{written[name]:.2e}", flush=True)
    run = tmp / "tuned" / "run"
    out = export_run(run, "hf", tmp / "tuned_hf")
    r = open_run(run)
    ours = hub.merged(r.model, r.spec)
    window = r.spec.input_shape[0]
    x = np.random.default_rng(1).integers(0, 250, (2, window)).astype("int64")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        want = theirs(torch.tensor(x)).logits.numpy()
    got = np.asarray(ours(x.astype("int32"), training=False))
    text = "What is the name of the function defined by `def quote(s, safe='/'):`?"
    tok = transformers.AutoTokenizer.from_pretrained(out)
    same_ids = tok(text)["input_ids"] == r.tokenizer.encode([text])[0]
    exported = float(np.abs(got - want).max())
    print(f"  bigtrain export -> transformers: max |logit difference| {exported:.2e}; "
          f"tokenizer ids equal: {same_ids}", flush=True)
    return {"transformers_to_bigtrain_max_abs": written,
            "export_to_transformers_max_abs": exported, "export_family":
            type(hub.hub_task(r.model).backbone).__name__, "tokenizer_ids_equal": same_ids,
            "transformers": transformers.__version__, "torch": torch.__version__}


def table_rows(record: dict) -> list[dict]:
    rows = []
    t = record.get("tuning")
    if t:
        s = t["scores"]
        for metric, label in (("exact", "exact"), ("choice_accuracy", "choice accuracy")):
            rows.append({"item": f"held-out {label}: tuned (reference: base / control)",
                         "bigtrain": s["tuned"][metric],
                         "reference": f"{s['base'][metric]:.3f} / {s['control'][metric]:.3f}",
                         "bigtrain / reference": ""})
    p = record.get("packing")
    if p:
        r = p["trained_tokens_per_sec"]
        rows.append({"item": f"trained tokens/s, packed (reference: padded), seq {p['seq_len']}",
                     "bigtrain": r["packed"], "reference": r["padded"],
                     "bigtrain / reference": f"{p['ratio']:.2f}x"})
        e = p["equal_loss"]
        rows.append({"item": "loss of packed windows (reference: examples one by one)",
                     "bigtrain": e["packed_loss"], "reference": e["one_by_one_loss"],
                     "bigtrain / reference": f"rel. diff {e['relative_difference']:.1e}"})
    lo = record.get("lora")
    if lo:
        r = lo["trained_tokens_per_sec"]
        rows.append({"item": f"LoRA instruction tuning trained tokens/s, {lo['precision']} "
                             "(reference: KerasHub CausalLM.fit)",
                     "bigtrain": r["bigtrain"], "reference": r["keras_hub_fit"],
                     "bigtrain / reference": f"{lo['ratio']:.2f}x"})
    h = record.get("hf")
    if h:
        for name, diff in h["transformers_to_bigtrain_max_abs"].items():
            rows.append({"item": f"max |logit diff|, a {name} checkpoint transformers wrote, "
                                 "read by model=hub (reference: transformers)",
                         "bigtrain": diff, "reference": "", "bigtrain / reference": ""})
        rows.append({"item": f"max |logit diff|, export --format hf ({h['export_family']}) "
                             "loaded by transformers (reference: bigtrain)",
                     "bigtrain": h["export_to_transformers_max_abs"], "reference": "",
                     "bigtrain / reference": f"tokenizer ids equal: {h['tokenizer_ids_equal']}"})
    c = record.get("chat")
    if c:
        rows.append({"item": "chat: time to first token, s (warm)",
                     "bigtrain": c["ttft_seconds_median"], "reference": "",
                     "bigtrain / reference": ""})
        rows.append({"item": "chat: new tokens/s (warm, 48-token answers)",
                     "bigtrain": c["tokens_per_sec_median"], "reference": "",
                     "bigtrain / reference": ""})
    return rows


def main() -> None:
    ap = harness.arguments("instruction", __doc__)
    ap.add_argument("--only", default="tuning,packing,lora,chat")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round")
    ap.add_argument("--pretrain-steps", type=int, default=1500)
    ap.add_argument("--tune-steps", type=int, default=1500)
    ap.add_argument("--tune-lr", type=float, default=1e-3)
    ap.add_argument("--tune-batch", type=int, default=32)
    ap.add_argument("--train-functions", type=int, default=1500)
    ap.add_argument("--heldout-functions", type=int, default=200)
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep the data and runs here (default a temporary directory); a "
                         "pre-trained model found there is reused")
    args = ap.parse_args()
    parts = args.only.split(",")
    run = harness.Run("instruction", args.out)
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="instruction-") as d:
        tmp = Path(d)
        if args.workdir:
            tmp = args.workdir.resolve()
            tmp.mkdir(parents=True, exist_ok=True)
        result["data"] = make_data(tmp, args.train_functions, args.heldout_functions)
        print("data:", result["data"], flush=True)
        for part in parts:
            print(f"{part}:", flush=True)
            if part == "tuning":
                result["tuning"] = tuning(tmp, args.pretrain_steps, args.tune_steps,
                                          args.tune_lr, args.tune_batch)
            elif part == "packing":
                result["packing"] = packing(tmp, args.reps, args.steps)
            elif part == "lora":
                result["lora"] = lora(tmp, args.reps, args.steps, args.precision)
            elif part == "chat":
                result["chat"] = chat_speed(tmp)
            elif part == "hf":
                result["hf"] = hf_logits(tmp)
            else:
                raise SystemExit(f"--only: unknown part {part!r}")
            run.write(result, table_rows)
    path = run.write(result, table_rows)
    print(report.table(table_rows(result)))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
