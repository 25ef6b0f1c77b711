"""Pretrained presets and LoRA (model=hub), side by side in one run. Presets are made here
with KerasHub's own classes (workloads.gpt2_preset: tests/hub_presets.py's): no download.

    python -m scripts.bench_hub [--reps 3] [--steps 20] [--only throughput,sizes,transfer]

1. Throughput: LoRA fine-tuning (rank 8 on query and value) of one GPT-2 shaped causal LM
   (d 256, 4 layers, 4 heads, byte-level vocabulary, seq 128, batch 16, Adam, bf16 where the
   CPU has it, else fp32): bigtrain's compiled loop against KerasHub's own `CausalLM.fit` on
   the same preset, batch, length and precision, `--reps` alternating rounds, steady-state
   seconds per step (Keras timed from per-batch timestamps), tokens/s and the ratio; and
   bigtrain with `model.fused=false` (Keras's own layer calls), which shows what the fused
   kernels under the preset's layers (bigtrain.models.fuse) give.
2. Size: trainable parameters and checkpoint bytes of a LoRA run against a full fine-tune of
   the same preset (both through `bigtrain fit`).
3. Transfer: a GPT-2 shaped LM pre-trained by bigtrain on the standard library's .py sources
   (model.load_weights=false, exported with `bigtrain export --format preset`), then
   LoRA-fine-tuned on another corpus (the licence texts in /usr/share/common-licenses); its
   validation loss on the new corpus against the base model's (a LoRA run of one step at
   lr 1e-12: the same split and evaluation, weights unchanged) and against a model of the same shape
   trained from scratch for the same steps.

A run writes its own results file with the parts it measured (`--only`): parts measured in
separate runs are separate files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from scripts import harness, report  # noqa: E402
from scripts.bench_engine import components, time_bigtrain, time_keras_fit  # noqa: E402
from scripts.workloads import gpt2_preset  # noqa: E402

SHAPE = {"hidden": 256, "layers": 4, "heads": 4, "max_len": 256}
SEQ, BATCH, RANK = 128, 16, 8
CLI = harness.BIGTRAIN


def bigtrain_cli(*args: str, cwd: Path) -> dict:
    proc = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"bigtrain {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads((cwd / "run" / "summary.json").read_text()) if args[0] == "fit" else {}


def lm_overrides(preset: Path, precision: str, *more: str) -> list[str]:
    return ["model=hub", f"model.preset={preset}", f"model.lora_rank={RANK}", "dataset=synthetic",
            "dataset.task=lm", "dataset.vocab_size=263", f"dataset.seq_len={SEQ}",
            "dataset.num_examples=2048", f"trainer.batch_size={BATCH}", "logger=[]",
            f"strategy.precision={precision}", "optim.lr=1e-3", *more]


def keras_fit_side(preset: Path, precision: str):
    """KerasHub's own path: the task from the preset, enable_lora, compile, fit."""
    import keras_hub
    import tensorflow as tf

    keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if precision == "bf16"
                                           else "float32")
    lm = keras_hub.models.CausalLM.from_preset(str(preset), preprocessor=None,
                                               dtype=keras.config.dtype_policy().name)
    lm.backbone.enable_lora(RANK)
    lm.compile(optimizer=keras.optimizers.Adam(1e-3),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ids = np.random.default_rng(0).integers(0, 263, (2048, SEQ + 1)).astype("int32")
    x = {"token_ids": ids[:, :-1], "padding_mask": np.ones((2048, SEQ), bool)}
    ds = tf.data.Dataset.from_tensor_slices((x, ids[:, 1:])).repeat().batch(
        BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return lm, ds


def throughput(preset: Path, precision: str, reps: int, steps: int, tmp: Path) -> dict:
    """Seconds per step of bigtrain (fused, and model.fused=false) and KerasHub's fit,
    alternating; each side builds its model afresh every round."""
    built = iter(range(2 * reps))

    def bigtrain(*extra: str) -> float:
        _, c = components(lm_overrides(preset, precision, *extra), tmp / f"bt{next(built)}")
        return time_bigtrain(c, BATCH, steps, per_call=10)

    def keras_hub_fit() -> float:
        lm, ds = keras_fit_side(preset, precision)
        try:
            return time_keras_fit(lm, ds, steps)
        finally:
            keras.mixed_precision.set_dtype_policy("float32")

    measured = harness.alternate(
        {"bigtrain": bigtrain, "unfused": lambda: bigtrain("model.fused=false"),
         "keras_hub_fit": keras_hub_fit}, reps,
        on_value=lambda name, v: print(f"  {name}: {v * 1e3:.1f} ms/step", flush=True))
    ours, unfused, theirs = (measured.values[k] for k in ("bigtrain", "unfused",
                                                           "keras_hub_fit"))
    a, u, b = (harness.median(t) for t in (ours, unfused, theirs))
    tokens = BATCH * SEQ
    return {"precision": precision, "bigtrain_ms_per_step": a * 1e3,
            "bigtrain_unfused_ms_per_step": u * 1e3,
            "keras_hub_fit_ms_per_step": b * 1e3, "bigtrain_tokens_per_sec": tokens / a,
            "keras_hub_fit_tokens_per_sec": tokens / b, "ratio": b / a,
            "ratio_unfused": b / u,
            "rounds_bigtrain_ms": [x * 1e3 for x in ours],
            "rounds_bigtrain_unfused_ms": [x * 1e3 for x in unfused],
            "rounds_keras_hub_ms": [x * 1e3 for x in theirs]}


def sizes(preset: Path, tmp: Path) -> dict:
    out = {}
    for name, extra in (("lora", [f"model.lora_rank={RANK}"]), ("full", ["model.lora_rank=0"])):
        root = tmp / f"size_{name}"
        root.mkdir()
        args = [a for a in lm_overrides(preset, "fp32", "trainer.max_steps=4",
                                        "trainer.checkpoint_every=4", "trainer.eval_every=4",
                                        "trainer.progress=none")
                if not a.startswith("model.lora_rank")]
        summary = bigtrain_cli("fit", *args, *extra, "hydra.run.dir=run", cwd=root)
        ckpt = sum(f.stat().st_size for f in (root / "run" / "checkpoints").glob("ckpt-4.*"))
        out[name] = {"trainable_params": summary["params"], "checkpoint_bytes": ckpt}
    total = sum(v["trainable_params"] for v in [out["full"]])
    out["trainable_ratio"] = out["lora"]["trainable_params"] / total
    out["checkpoint_ratio"] = out["lora"]["checkpoint_bytes"] / out["full"]["checkpoint_bytes"]
    return out


def transfer(preset: Path, tmp: Path, pre_steps: int, steps: int, targets: str = "",
             lr: float = 3e-3, rank: int = RANK, train_layers: str = "") -> dict:
    licences = "/usr/share/common-licenses"
    common = [f"dataset.seq_len={SEQ}", f"trainer.batch_size={BATCH}", "trainer.progress=none",
              "logger=[]", "trainer.eval_every=0"]
    new_data = ["dataset=text", f"dataset.path={licences}"]

    def fit(name: str, *args: str) -> dict:
        root = tmp / name
        root.mkdir()
        tic = time.perf_counter()
        s = bigtrain_cli("fit", *args, *common, "hydra.run.dir=run", cwd=root)
        print(f"  {name}: val loss {s['final']['val_loss']:.3f} "
              f"({time.perf_counter() - tic:.0f} s)", flush=True)
        return s

    if (tmp / "pretrained").is_dir():  # --workdir of an earlier run: its pre-trained model
        print(f"  pretrain: reusing {tmp / 'pretrained'}", flush=True)
    else:
        fit("pretrain", "model=hub", f"model.preset={preset}", "model.load_weights=false",
            "dataset=text", "dataset.path=stdlib", "dataset.max_chars=3000000",
            f"trainer.max_steps={pre_steps}", "optim.lr=2e-3", "optim/schedule=cosine")
        subprocess.run([*CLI, "export", str(tmp / "pretrain" / "run"), "--format", "preset",
                        "--out", str(tmp / "pretrained")], check=True, capture_output=True)
    for name in ("base", "lora", "scratch"):  # a reused --workdir: these run again
        shutil.rmtree(tmp / name, ignore_errors=True)
    hub = ["model=hub", f"model.preset={tmp / 'pretrained'}", *new_data]
    base = fit("base", *hub, f"model.lora_rank={RANK}", "optim.lr=1e-12", "trainer.max_steps=1")
    adapted = [f"model.lora_targets=[{targets}]"] if targets else []
    if train_layers:
        adapted.append(f"model.train_layers=[{train_layers}]")
    lora = fit("lora", *hub, f"model.lora_rank={rank}", *adapted, f"optim.lr={lr}",
               f"trainer.max_steps={steps}")
    scratch = fit("scratch", "model=hub", f"model.preset={preset}", "model.load_weights=false",
                  *new_data, "optim.lr=2e-3", f"trainer.max_steps={steps}")
    b, lo, sc = (s["final"]["val_loss"] for s in (base, lora, scratch))
    return {"pretrain_steps": pre_steps, "finetune_steps": steps,
            "lora_targets": targets or "the backbone's default (query, value)", "lora_lr": lr,
            "lora_rank": rank, "train_layers": train_layers,
            "lora_trainable_params": lora["params"],
            "base_val_loss": b,
            "lora_val_loss": lo, "scratch_val_loss": sc, "lora_below_base": 1 - lo / b,
            "lora_below_scratch": lo < sc}


def main() -> None:
    ap = harness.arguments("bench_hub", __doc__)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--pretrain-steps", type=int, default=600)
    ap.add_argument("--finetune-steps", type=int, default=150)
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--lora-targets", default="",
                    help="transfer: the LoRA run's model.lora_targets (comma-separated layer "
                         "names; default the backbone's query and value)")
    ap.add_argument("--lora-lr", type=float, default=3e-3)
    ap.add_argument("--lora-rank", type=int, default=RANK, help="transfer: the adapters' rank")
    ap.add_argument("--train-layers", default="",
                    help="transfer: the LoRA run's model.train_layers (comma-separated)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep the presets and runs here (default a temporary directory); "
                         "transfer reuses a pre-trained model found there")
    ap.add_argument("--only", default="throughput,sizes,transfer")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    run = harness.Run("bench_hub", args.out)
    result: dict = {"shape": {**SHAPE, "seq": SEQ, "batch": BATCH, "lora_rank": RANK}}
    with tempfile.TemporaryDirectory(prefix="bench_hub-") as d:
        tmp = Path(d)
        if args.workdir:
            tmp = args.workdir.resolve()
            tmp.mkdir(parents=True, exist_ok=True)
        preset = tmp / "gpt2"
        if not (preset / "config.json").is_file():
            preset = gpt2_preset(preset, **SHAPE)
        if "throughput" in parts:
            print("throughput (LoRA fine-tuning):", flush=True)
            result["throughput"] = throughput(preset, args.precision, args.reps, args.steps, tmp)
            run.write(result, table_rows)
        if "sizes" in parts:
            result["sizes"] = sizes(preset, tmp)
            print("sizes:", json.dumps(result["sizes"]), flush=True)
            run.write(result, table_rows)
        if "transfer" in parts:
            print("transfer:", flush=True)
            result["transfer"] = transfer(preset, tmp, args.pretrain_steps,
                                          args.finetune_steps, args.lora_targets, args.lora_lr,
                                          args.lora_rank, args.train_layers)
    path = run.write(result, table_rows)
    print(json.dumps(result, indent=2))
    print(report.table(table_rows(result)))
    print(f"written to {path}")


def table_rows(record: dict) -> list[dict]:
    """The results file's table: LoRA throughput against KerasHub's fit, LoRA against full
    fine-tune sizes, transfer against the base model and a model from scratch."""
    rows = []
    t = record.get("throughput")
    if t:
        rows.append({"item": f"LoRA fine-tuning tokens/s, {t['precision']} (reference: "
                             "KerasHub CausalLM.fit)",
                     "bigtrain": t["bigtrain_tokens_per_sec"],
                     "reference": t["keras_hub_fit_tokens_per_sec"],
                     "bigtrain / reference": f"{t['ratio']:.2f}x"})
        rows.append({"item": "ms/step, bigtrain with model.fused=false",
                     "bigtrain": t["bigtrain_unfused_ms_per_step"],
                     "reference": t["keras_hub_fit_ms_per_step"],
                     "bigtrain / reference": f"{t['ratio_unfused']:.2f}x"})
    z = record.get("sizes")
    if z:
        for key, label in (("trainable_params", "trainable parameters"),
                           ("checkpoint_bytes", "checkpoint bytes")):
            rows.append({"item": f"{label}, LoRA (reference: full fine-tune)",
                         "bigtrain": z["lora"][key], "reference": z["full"][key],
                         "bigtrain / reference": f"{z['lora'][key] / z['full'][key]:.3f}"})
    x = record.get("transfer")
    if x:
        steps = f"{x['pretrain_steps']} pre-training, {x['finetune_steps']} fine-tuning steps"
        rows.append({"item": f"transfer: val loss after LoRA ({steps}; reference: the base "
                             "model)", "bigtrain": x["lora_val_loss"],
                     "reference": x["base_val_loss"],
                     "bigtrain / reference": f"{x['lora_val_loss'] / x['base_val_loss']:.2f}"})
        rows.append({"item": "transfer: val loss after LoRA (reference: from scratch, as many "
                             "steps)", "bigtrain": x["lora_val_loss"],
                     "reference": x["scratch_val_loss"],
                     "bigtrain / reference": f"{x['lora_val_loss'] / x['scratch_val_loss']:.2f}"})
    return rows


if __name__ == "__main__":
    main()
