"""bigtrain against plain Keras and PyTorch, side by side in one run: throughput, precision,
start-up, input pipelines and peak memory. Results go to JSON and markdown tables.

    python scripts/bench.py [--reps 3] [--steps 20] [--out scripts/results/bench.json]
    python scripts/bench.py --only lm --reps 2     # the LM rows alone (Keras, bigtrain, PyTorch)
    python scripts/bench.py --steps 3 --reps 1 --gpt2-steps 1 --only lm gpt2 cnn rnn  # a quick try

1. Training throughput, steady state, medians of `--reps` alternating repetitions:
   - the LM of issue 9 (vocab 256, seq 128, d_model 256, 4 layers, 4 heads, MLP ratio 4,
     batch 32, Adam, synthetic tokens) trained by bigtrain's loop vs a plain Keras 3 script of
     the same shapes (Embedding, MultiHeadAttention with a causal mask, LayerNormalization,
     Dense with `activation="gelu"`, `Model.fit` on a tf.data pipeline), in fp32 and bf16
     (`mixed_bfloat16` for Keras): tokens/s, ratios, achieved GFLOP/s and the share of this
     machine's matmul peak measured in the same run;
   - digits + cnn and digits + rnn (a 2-layer GRU): bigtrain (its default precision, and
     fp32) vs `Model.fit` (fp32) on the same model and batches (examples/s);
   - the LM at GPT-2-small shape (vocab 50,257, seq 128, batch 8; `--gpt2-steps` timed steps,
     one per call of bigtrain's loop);
   - PyTorch, when `import torch` works (`pip install ".[bench]"`): scripts/bench_torch.py's
     models of the same shapes, eager and `torch.compile`, fp32 and bf16 (autocast), timed in
     the same repetitions, alternating with the rows above; each row's GFLOP/s and share of
     PyTorch's own matmul peak (measured as TensorFlow's), the ratio of bigtrain to the
     fastest PyTorch variant per precision, and both sides' parameter counts. A variant that
     fails (torch.compile without a working compiler) is reported as failed.
2. Precision: bigtrain's LM in fp32, bf16 and fp16, and whether the CPU has native bf16.
3. Start-up: `bigtrain --help`, `ls`, `show`, and the time to the first finished training step
   of `bigtrain fit debug=smoke`, next to `python -c "import tensorflow"`.
4. Input pipelines (scripts/bench_data.py) and the peak RSS of training runs.

Keras `fit` is timed from per-batch timestamps: the wall time of a whole `fit()` call includes
a stall at its end from tf.data's autotune thread.

`--only` (lm, gpt2, cnn, rnn, startup, memory, pipelines) or `--skip` measure a part of it;
a partial run updates those parts in --out and keeps the others. `--no-fp16` leaves out
bigtrain's fp16 LM row: on CPUs where TensorFlow's fused fp16 MatMul+BiasAdd falls back to
oneDNN's reference kernel (seen on a Xeon with AVX512-FP16 and AMX) it takes hours.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

import bench_torch  # noqa: E402  (the PyTorch references; imports without torch too)
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_engine import (  # noqa: E402
    CNN,
    GPT2,
    GPT2_BATCH,
    LM,
    components,
    keras_model_for,
    time_bigtrain,
    time_keras_fit,
)
from bench_torch import GPT2_SMALL, ISSUE9  # noqa: E402
from keras import ops  # noqa: E402

from bigtrain.strategy import devices  # noqa: E402

VOCAB, SEQ, D, LAYERS, HEADS, RATIO, BATCH = dataclasses.astuple(ISSUE9)  # 256, 128, 256, ...
CLI = [sys.executable, "-m", "bigtrain.cli.main"]
RNN = ["dataset=digits", "model=rnn", "optim=adam", "trainer.batch_size=32"]
G = GPT2_SMALL
assert G.batch == GPT2_BATCH and f"dataset.vocab_size={G.vocab}" in GPT2, "one GPT-2 shape"
THROUGHPUT_PARTS = ("lm", "gpt2", "cnn", "rnn")
PARTS = (*THROUGHPUT_PARTS, "startup", "memory", "pipelines")


def lm_flops_per_token() -> float:
    """Training FLOPs per token of the issue-9 LM (3x the forward's matmuls)."""
    return bench_torch.lm_flops_per_token(ISSUE9)


def matmul_peak(dtype: str, n: int = 1024, reps: int = 20) -> float:
    """GFLOP/s of a square matmul chain on this machine (the ceiling for dense layers)."""
    a = tf.random.normal((n, n), dtype="float32")
    a = tf.cast(a, dtype)

    @tf.function
    def chain(x):
        for _ in range(reps):
            x = tf.matmul(x, a) * tf.cast(1e-3, dtype)
        return x

    chain(a).numpy()
    best = float("inf")
    for _ in range(3):
        tic = time.perf_counter()
        chain(a).numpy()
        best = min(best, time.perf_counter() - tic)
    return 2 * n**3 * reps / best / 1e9


class AddPositions(keras.layers.Layer):
    """Learned positions, the one piece core Keras has no layer for."""

    def build(self, shape):
        self.pos = self.add_weight(shape=(shape[1], shape[2]), initializer="random_normal")

    def call(self, x):
        return x + ops.cast(self.pos, x.dtype)[None]


def plain_keras_lm(policy: str):
    """What a Keras user writes for this LM: standard layers, compile, fit."""
    keras.mixed_precision.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    inp = keras.Input((SEQ,), dtype="int32")
    x = AddPositions()(keras.layers.Embedding(VOCAB, D)(inp))
    for _ in range(LAYERS):
        h = keras.layers.LayerNormalization(epsilon=1e-5)(x)
        h = keras.layers.MultiHeadAttention(HEADS, D // HEADS)(h, h, use_causal_mask=True)
        x = x + h
        h = keras.layers.LayerNormalization(epsilon=1e-5)(x)
        h = keras.layers.Dense(D * RATIO, activation="gelu")(h)
        x = x + keras.layers.Dense(D)(h)
    x = keras.layers.LayerNormalization(epsilon=1e-5)(x)
    out = keras.layers.Dense(VOCAB, dtype="float32")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    keras.mixed_precision.set_dtype_policy("float32")
    return model


def lm_dataset():
    rng = tf.random.Generator.from_seed(0)
    tokens = rng.uniform((2048, SEQ + 1), 0, VOCAB, dtype=tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((tokens[:, :-1], tokens[:, 1:]))
    return ds.shuffle(2048, seed=0).batch(BATCH, drop_remainder=True).repeat().prefetch(
        tf.data.AUTOTUNE)


def torch_variants(part: str, bench, steps: int, warmup: int, compiled: bool) -> dict:
    """name -> a call timing one PyTorch variant of `bench` (seconds per step): eager, then
    (with `compiled`) torch.compile, each in fp32 and bf16."""
    return {f"{part}/torch_{bench.variant(p, c)}":
            functools.partial(bench.seconds_per_step, p, c, steps, warmup)
            for c in ((False, True) if compiled else (False,)) for p in bench_torch.PRECISIONS}


def lm_rows(part: str, med: dict, tokens_per_step: int, flops: float, peaks: dict) -> dict:
    """Each variant of an LM part: tokens/s, GFLOP/s and the share of its own framework's
    matmul peak (TensorFlow's for Keras and bigtrain, PyTorch's for torch) in that dtype."""
    rows = {}
    for key, seconds in med.items():
        if key.split("/")[0] != part:
            continue
        name = key.split("/", 1)[1]
        tok = tokens_per_step / seconds
        peak = peaks["torch" if name.startswith("torch") else "tf"].get(
            "bf16" if name.endswith("_bf16") else "fp32")
        rows[name] = {"tokens_per_sec": tok, "gflops": tok * flops / 1e9,
                      "share_of_peak": tok * flops / 1e9 / peak if peak else None}
    return rows


def vs_torch(rate: dict, bigtrain_of: dict) -> dict:
    """bigtrain's rate over the fastest PyTorch variant of each precision (`rate`: variant ->
    tokens or examples per second; `bigtrain_of`: precision -> bigtrain's variant)."""
    out = {}
    for p, bt in bigtrain_of.items():
        torch_p = {k: v for k, v in rate.items() if k.startswith("torch_") and k.endswith(p)}
        if torch_p and bt in rate:
            best = max(torch_p, key=torch_p.get)
            out[f"torch_best_{p}"] = best
            out[f"{bt}_vs_torch_best_{p}"] = rate[bt] / torch_p[best]
    return out


def throughput(parts: set[str], args, tmp: Path, use_torch: bool) -> dict:
    """The LM, GPT-2-small, digits + cnn and digits + rnn rows of `parts`: every variant of
    every part timed once per repetition, in turn, then the matmul peaks; medians over the
    repetitions (the peaks: the best)."""
    steps, reps = args.steps, args.reps
    variants: dict = {}  # name -> a call returning seconds per step, in the order they run
    guarded: set[str] = set()  # the PyTorch variants, which may fail without ending the run
    benches: dict = {}  # part -> the PyTorch TrainBench
    params: dict = {}  # part -> {"bigtrain": ..., "torch": ...}

    def add_torch(part: str, bench, n: int, warmup: int = 3) -> None:
        benches[part] = bench
        v = torch_variants(part, bench, n, warmup, not args.no_compile)
        variants.update(v)
        guarded.update(v)
        params[part]["torch"] = bench_torch.param_counts(bench.model)

    def counts(c) -> dict:
        return {"trainable": c.params, "total": int(c.model.count_params())}

    if "lm" in parts:
        precisions = {"fp32": "float32", "bf16": "mixed_bfloat16"}
        bigtrain = {p: components([*LM, f"strategy.precision={p}"], tmp / f"lm-{p}")[1]
                    for p in ("fp32", "bf16", "fp16")[:2 if args.no_fp16 else 3]}
        keras.mixed_precision.set_dtype_policy("float32")
        plain = {p: plain_keras_lm(policy) for p, policy in precisions.items()}
        data = lm_dataset()
        for p in precisions:
            variants[f"lm/keras_fit_{p}"] = functools.partial(time_keras_fit, plain[p], data,
                                                              steps)
        for p in bigtrain:
            variants[f"lm/bigtrain_{p}"] = functools.partial(time_bigtrain, bigtrain[p], BATCH,
                                                             steps, 10)
        params["lm"] = {"bigtrain": counts(bigtrain["fp32"])}
        if use_torch:
            add_torch("lm", bench_torch.lm_bench(ISSUE9), steps)
    if "gpt2" in parts:  # one step per call: a step takes seconds here
        gpt2 = {p: components([*GPT2, f"strategy.precision={p}"], tmp / f"gpt2-{p}")[1]
                for p in bench_torch.PRECISIONS}
        for p in gpt2:
            variants[f"gpt2/bigtrain_{p}"] = functools.partial(time_bigtrain, gpt2[p], G.batch,
                                                               args.gpt2_steps, 1)
        params["gpt2"] = {"bigtrain": counts(gpt2["fp32"])}
        if use_torch:
            add_torch("gpt2", bench_torch.lm_bench(GPT2_SMALL), args.gpt2_steps, warmup=2)
    for part, overrides in (("cnn", CNN), ("rnn", RNN)):
        if part not in parts:
            continue
        built = {p: components([*overrides, f"strategy.precision={p}"],
                               tmp / f"{part}-{p}")[1] for p in ("fp32", "bf16")}
        model, ds = keras_model_for(overrides)
        variants[f"{part}/keras_fit"] = functools.partial(time_keras_fit, model, ds, steps * 4)
        for p, c in built.items():
            variants[f"{part}/bigtrain_{p}"] = functools.partial(time_bigtrain, c, BATCH,
                                                                 steps * 4, 10)
        params[part] = {"bigtrain": counts(built["fp32"])}
        if use_torch:
            add_torch(part, bench_torch.digits_bench(part, BATCH), steps * 4)
    for part, c in params.items():
        if "torch" in c:
            same = "equal" if c["torch"] == c["bigtrain"] else "DIFFERENT"
            print(f"bench: {part} parameters: bigtrain {c['bigtrain']['trainable']:,} trainable "
                  f"({c['bigtrain']['total']:,} with statistics), PyTorch "
                  f"{c['torch']['trainable']:,} ({c['torch']['total']:,}): {same}", flush=True)

    times: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    peaks: dict = {"tf": {"fp32": [], "bf16": []}, "torch": {"fp32": [], "bf16": []}}
    for rep in range(reps):  # alternate: machine noise hits every variant alike
        print(f"bench: throughput, repetition {rep + 1} of {reps}", flush=True)
        for name, run in variants.items():
            if name in errors:
                continue
            try:
                times.setdefault(name, []).append(run())
            except RuntimeError as e:
                if name not in guarded:
                    raise
                errors[name] = str(e)
                print(f"bench: {name} failed: {e}", flush=True)
                continue
            print(f"bench:   {name:26s} {times[name][-1]:8.4f} s/step", flush=True)
        for p in ("fp32", "bf16"):
            peaks["tf"][p].append(matmul_peak("bfloat16" if p == "bf16" else "float32"))
            if use_torch:
                peaks["torch"][p].append(bench_torch.matmul_peak(p))
    med = {k: statistics.median(v) for k, v in times.items()}
    peak = {side: {p: max(v) for p, v in pk.items() if v} for side, pk in peaks.items()}
    out: dict = {"matmul_peak_gflops": peak["tf"], "native_bf16": devices.cpu_native_bf16(),
                 "cpu_flags": sorted(devices.cpu_flags())}
    if "lm" in parts:
        flops = lm_flops_per_token()
        lm = lm_rows("lm", med, BATCH * SEQ, flops, peak)
        tok = {k: v["tokens_per_sec"] for k, v in lm.items()}
        for k, row in lm.items():
            row["ratio_to_keras_fit_fp32"] = tok[k] / tok["keras_fit_fp32"]
        best = max((k for k in tok if k.startswith("bigtrain")), key=tok.get)
        out.update({
            "lm": lm,
            "lm_ratios": {
                "bigtrain_fp32_vs_keras_fit_fp32": tok["bigtrain_fp32"] / tok["keras_fit_fp32"],
                "bigtrain_bf16_vs_keras_fit_bf16": tok["bigtrain_bf16"] / tok["keras_fit_bf16"],
                "bigtrain_best_vs_keras_fit_fp32": tok[best] / tok["keras_fit_fp32"],
                "bigtrain_best": best,
                **vs_torch(tok, {"fp32": "bigtrain_fp32", "bf16": "bigtrain_bf16"}),
            },
            "lm_flops_per_token": flops,
            "lm_params": params["lm"],
        })
    if "gpt2" in parts:
        flops = bench_torch.lm_flops_per_token(G)
        rows = lm_rows("gpt2", med, G.batch * G.seq, flops, peak)
        tok = {k: v["tokens_per_sec"] for k, v in rows.items()}
        out["gpt2_small"] = {"shape": dataclasses.asdict(G), "flops_per_token": flops,
                             "timed_steps": args.gpt2_steps, "rows": rows,
                             "ratios": vs_torch(tok, {"fp32": "bigtrain_fp32",
                                                      "bf16": "bigtrain_bf16"}),
                             "params": params["gpt2"]}
    for part in ("cnn", "rnn"):
        if part not in parts:
            continue
        eps = {k.split("/", 1)[1]: BATCH / v for k, v in med.items() if k.startswith(part + "/")}
        auto = devices.resolve_precision("auto", "auto", recurrent=part == "rnn")
        out[f"digits_{part}"] = {
            "keras_fit_examples_per_sec": eps["keras_fit"],
            "bigtrain_precision": auto,  # what strategy.precision=auto trains it in here
            "bigtrain_examples_per_sec": eps[f"bigtrain_{auto}"],
            "ratio": eps[f"bigtrain_{auto}"] / eps["keras_fit"],
            "bigtrain_bf16_examples_per_sec": eps["bigtrain_bf16"],
            "bigtrain_fp32_examples_per_sec": eps["bigtrain_fp32"],
            "ratio_fp32": eps["bigtrain_fp32"] / eps["keras_fit"],
            "torch_examples_per_sec": {k: v for k, v in eps.items() if k.startswith("torch_")},
            **vs_torch(eps, {"fp32": "bigtrain_fp32", "bf16": "bigtrain_bf16"}),
            "params": params[part],
        }
    if use_torch:
        torch = bench_torch.torch
        out["torch"] = {
            "version": torch.__version__, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "adam": sorted({b.opt_impl for b in benches.values()}),
            "matmul_peak_gflops": peak["torch"],
            "first_step_s": {f"{part}/torch_{k}": v for part, b in benches.items()
                             for k, v in b.first_step_s.items()},
            "failed": errors,
        }
    return out


def _wall(cmd: list[str], reps: int, cwd: Path) -> float:
    runs = []
    for _ in range(reps):
        tic = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, cwd=cwd)
        runs.append(time.perf_counter() - tic)
    return statistics.median(runs)


def time_to_first_step(tmp: Path, reps: int) -> float:
    """Seconds from spawning `bigtrain fit debug=smoke` to its first logged step."""
    runs = []
    for i in range(reps):
        run = tmp / f"first-{i}"
        metrics = run / "metrics.jsonl"
        tic = time.perf_counter()
        proc = subprocess.Popen([*CLI, "fit", "debug=smoke", "trainer.log_every=1",
                                 "trainer.steps_per_loop=1", "trainer.progress=none",
                                 f"hydra.run.dir={run}"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=tmp)
        while not (metrics.exists() and metrics.stat().st_size > 0):
            if proc.poll() is not None:
                raise RuntimeError("bigtrain fit debug=smoke ended before a step was logged")
            time.sleep(0.01)
        runs.append(time.perf_counter() - tic)
        proc.wait()
    return statistics.median(runs)


def startup(tmp: Path, reps: int) -> dict:
    # commands run outside the repository: `python -m` from its root would import the
    # source tree, not the installed package
    return {
        "import_tensorflow_s": _wall([sys.executable, "-c", "import tensorflow"], reps, tmp),
        "help_s": _wall([*CLI, "--help"], reps, tmp),
        "ls_s": _wall([*CLI, "ls"], reps, tmp),
        "show_s": _wall([*CLI, "show"], reps, tmp),
        "first_step_s": time_to_first_step(tmp, reps),
    }


#: a small parent for each measured run: a child forked from this (large) process would
#: count this process's resident pages in its own peak
RSS_WRAPPER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], "
               "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
               "_, status, usage = os.wait4(p.pid, 0); "
               "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)")


def peak_rss(tmp: Path) -> dict:
    """Peak resident memory (MiB) of training runs, from the kernel's rusage of each run."""
    runs = {"default (digits + cnn)": ["fit", "trainer.progress=none"],
            "LM, 30 steps": ["fit", *LM, "trainer.max_steps=30", "trainer.progress=none"]}
    out = {}
    for name, args in runs.items():
        r = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *CLI, *args,
                            f"hydra.run.dir={tmp / f'rss{len(out)}'}"], capture_output=True,
                           text=True, cwd=tmp, check=True)
        code, kib = map(int, r.stdout.split())
        if code != 0:
            raise RuntimeError(f"the measured run {name!r} failed (exit status {code})")
        out[name] = kib / 1024  # ru_maxrss is in KiB on Linux
    return out


def pipelines(tmp: Path) -> dict:
    path = tmp / "bench_data.json"
    subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "bench_data.py"),
                    "--reps", "1", "--out", str(path)], check=True, capture_output=True, cwd=tmp)
    return json.loads(path.read_text())


def _tokens(row: dict | None) -> str:
    """tokens/s (GFLOP/s, share of the framework's own matmul peak) of an LM row."""
    if row is None:
        return ""
    share = row.get("share_of_peak")
    return (f"{row['tokens_per_sec']:,.0f} ({row['gflops']:.0f} GFLOP/s"
            + (f", {100 * share:.0f}% of peak)" if share else ")"))


def markdown(r: dict) -> str:
    """The table against plain Keras for the parts `r` holds, then the one against PyTorch."""
    t, s = r.get("throughput", {}), r.get("startup")
    lines = ["| item | plain Keras | bigtrain | ratio |", "|---|---|---|---|"]
    if "lm" in t:
        for p in ("fp32", "bf16"):
            k, b = t["lm"][f"keras_fit_{p}"], t["lm"][f"bigtrain_{p}"]
            lines.append(f"| LM tokens/s, {p} | {k['tokens_per_sec']:,.0f} | {_tokens(b)} | "
                         f"{b['tokens_per_sec'] / k['tokens_per_sec']:.2f}x |")
        fp16 = t["lm"].get("bigtrain_fp16")
        if fp16:
            lines.append(f"| LM tokens/s, fp16 | | {fp16['tokens_per_sec']:,.0f} | "
                         f"{fp16['ratio_to_keras_fit_fp32']:.2f}x of Keras fp32 |")
        best = t["lm_ratios"]
        lines.append(f"| LM best bigtrain ({best['bigtrain_best'].split('_')[1]}) vs Keras fp32 "
                     f"| | | {best['bigtrain_best_vs_keras_fit_fp32']:.2f}x |")
    if "gpt2_small" in t:
        for p in bench_torch.PRECISIONS:
            b = t["gpt2_small"]["rows"].get(f"bigtrain_{p}")
            lines.append(f"| GPT-2 small tokens/s, {p} | | {_tokens(b)} | |")
    for part in ("cnn", "rnn"):
        c = t.get(f"digits_{part}")
        if not c or "torch_examples_per_sec" not in c:  # no PyTorch rows in that run
            continue
        keras_eps = c["keras_fit_examples_per_sec"]
        for p in ("bf16", "fp32"):  # older results hold bf16 only as auto's pick
            ours = c.get(f"bigtrain_{p}_examples_per_sec") or (
                c["bigtrain_examples_per_sec"] if c["bigtrain_precision"] == p else None)
            if ours:
                auto = " (auto)" if c["bigtrain_precision"] == p else ""
                lines.append(f"| digits + {part} examples/s, {p}{auto} | {keras_eps:,.0f} | "
                             f"{ours:,.0f} | {ours / keras_eps:.2f}x |")
    if "matmul_peak_gflops" in t:
        pk = t["matmul_peak_gflops"]
        lines.append(f"| matmul peak GFLOP/s fp32 / bf16 | | {pk['fp32']:.0f} / {pk['bf16']:.0f} "
                     f"(native bf16: {t['native_bf16']}) | |")
    if s:
        lines.append(f"| start-up: --help / ls / show | | {s['help_s']:.2f} / {s['ls_s']:.2f} / "
                     f"{s['show_s']:.2f} s | |")
        lines.append(f"| time to first step (fit debug=smoke) | import tensorflow "
                     f"{s['import_tensorflow_s']:.2f} s | {s['first_step_s']:.2f} s | "
                     f"+{s['first_step_s'] - s['import_tensorflow_s']:.2f} s |")
    for name, mib in r.get("peak_rss_mib", {}).items():
        lines.append(f"| peak RSS, {name} | | {mib:,.0f} MiB | |")
    for name, v in r.get("pipelines", {}).items():
        if isinstance(v, dict) and "ratio" in v:
            lines.append(f"| input pipeline {name} vs model consumption | | | "
                         f"{v['ratio']:.1f}x |")
    return "\n".join(lines) + "\n\n" + torch_markdown(t)


MODES = {"eager": "eager", "compile": "torch.compile"}


def torch_markdown(t: dict) -> str:
    """bigtrain against each PyTorch variant and against the fastest one per precision."""
    info = t.get("torch")
    if not info:
        return ""
    if "skipped" in info:
        return f"PyTorch rows skipped: {info['skipped']}"
    failed = info.get("failed", {})
    lines = [f"PyTorch {info['version']}, {info['threads']} threads "
             f"({info['interop_threads']} inter-op), Adam {'/'.join(info['adam'])}; each "
             "framework's share of its own matmul peak", "",
             "| item | PyTorch | bigtrain | bigtrain / PyTorch |", "|---|---|---|---|"]

    def variants(part: str, title: str, unit: str, rate, bigtrain_of: dict, ratios: dict):
        for p in bench_torch.PRECISIONS:
            ours = bigtrain_of.get(p)
            for mode, label in MODES.items():
                name = f"torch_{mode}_{p}"
                if f"{part}/{name}" in failed:
                    lines.append(f"| {title} {unit}, {p}, {label} | failed: "
                                 f"{failed[f'{part}/{name}'][:120]} | | |")
                    continue
                theirs = rate(name)
                if theirs is None:
                    continue
                cell, ratio = "", ""
                if ours and rate(ours) is not None:
                    cell = rate(ours, text=True)
                    ratio = f"{rate(ours) / theirs:.2f}x"
                lines.append(f"| {title} {unit}, {p}, {label} | {rate(name, text=True)} | "
                             f"{cell} | {ratio} |")
            key = f"{ours}_vs_torch_best_{p}"
            if key in ratios:
                best = MODES[ratios[f"torch_best_{p}"].split("_")[1]]
                lines.append(f"| {title} {p}: bigtrain vs the fastest PyTorch ({best}) | | | "
                             f"**{ratios[key]:.2f}x** |")

    def lm_rate(rows):
        def rate(name, text=False):
            row = rows.get(name)
            return _tokens(row) if text else (row["tokens_per_sec"] if row else None)
        return rate

    both = {"fp32": "bigtrain_fp32", "bf16": "bigtrain_bf16"}
    if "lm" in t:
        variants("lm", "LM", "tokens/s", lm_rate(t["lm"]), both, t["lm_ratios"])
    if "gpt2_small" in t:
        g = t["gpt2_small"]
        sh = g["shape"]
        lines.append(f"| GPT-2 small: d {sh['d_model']}, {sh['layers']} layers, vocab "
                     f"{sh['vocab']:,}, seq {sh['seq']}, batch {sh['batch']}, "
                     f"timed steps {g['timed_steps']} | | | |")
        variants("gpt2", "GPT-2 small", "tokens/s", lm_rate(g["rows"]), both, g["ratios"])
    for part in ("cnn", "rnn"):
        c = t.get(f"digits_{part}")
        if not c or "torch_examples_per_sec" not in c:  # no PyTorch rows in that run
            continue
        # results from before both precisions were timed hold bf16 only as auto's pick
        bf16 = c.get("bigtrain_bf16_examples_per_sec", c["bigtrain_examples_per_sec"]
                     if c["bigtrain_precision"] == "bf16" else None)
        eps = {**c["torch_examples_per_sec"], "bigtrain_fp32": c["bigtrain_fp32_examples_per_sec"],
               **({} if bf16 is None else {"bigtrain_bf16": bf16})}

        def rate(name, text=False, eps=eps):
            v = eps.get(name)
            return (f"{v:,.0f}" if v is not None else "") if text else v

        ours = {p: f"bigtrain_{p}" for p in ("fp32", "bf16") if f"bigtrain_{p}" in eps}
        variants(part, f"digits + {part}", "examples/s", rate, ours, c)
    pk = info.get("matmul_peak_gflops", {})
    if pk and "matmul_peak_gflops" in t:
        tf_pk = t["matmul_peak_gflops"]
        lines.append(f"| matmul peak GFLOP/s fp32 / bf16 (each its own) | {pk['fp32']:.0f} / "
                     f"{pk['bf16']:.0f} | {tf_pk['fp32']:.0f} / {tf_pk['bf16']:.0f} | |")
    for part, key in (("LM", "lm_params"), ("GPT-2 small", None), ("digits + cnn", "cnn"),
                      ("digits + rnn", "rnn")):
        c = (t.get(key) if key == "lm_params" else
             t.get("gpt2_small", {}).get("params") if key is None else
             t.get(f"digits_{key}", {}).get("params"))
        if not c or "torch" not in c:
            continue
        cell = {side: f"{c[side]['trainable']:,}" + (
            f" ({c[side]['total']:,} with batch-norm statistics)"
            if c[side]["total"] != c[side]["trainable"] else "") for side in ("torch", "bigtrain")}
        lines.append(f"| parameters, {part} | {cell['torch']} | {cell['bigtrain']} | "
                     f"{'equal' if c['torch'] == c['bigtrain'] else 'DIFFERENT'} |")
    for name, seconds in info.get("first_step_s", {}).items():
        if "compile" in name:
            lines.append(f"| first step of {name} (compilation) | {seconds:.1f} s | | |")
    return "\n".join(lines)


TORCH_SKIPPED = "torch is not importable (pip install '.[bench]' adds it)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--gpt2-steps", type=int, default=3,
                        help="timed steps of the GPT-2-small LM (after 2 warm-up steps)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=None,
                        help="measure these parts alone")
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", *PARTS],
                        help="leave these out (throughput: lm, gpt2, cnn and rnn)")
    parser.add_argument("--no-fp16", action="store_true",
                        help="leave out bigtrain's fp16 LM row (TensorFlow's fused fp16 "
                             "MatMul+BiasAdd falls back to oneDNN's reference kernel on some "
                             "CPUs, ~1000x slower)")
    parser.add_argument("--no-torch", action="store_true", help="no PyTorch rows")
    parser.add_argument("--no-compile", action="store_true",
                        help="PyTorch eager only (no torch.compile variants)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="PyTorch's intra-op threads (default: every core, as TensorFlow)")
    parser.add_argument("--out", default="scripts/results/bench.json")
    args = parser.parse_args()
    skip = {p for s in args.skip for p in (THROUGHPUT_PARTS if s == "throughput" else (s,))}
    parts = set(args.only or PARTS) - skip
    tf.config.threading.set_inter_op_parallelism_threads(1)  # both sides alike
    use_torch = bench_torch.AVAILABLE and not args.no_torch
    skipped = "--no-torch" if bench_torch.AVAILABLE else TORCH_SKIPPED
    if use_torch:
        bench_torch.configure_threads(args.torch_threads)  # before any PyTorch work
    elif parts & set(THROUGHPUT_PARTS):
        print(f"bench: PyTorch rows skipped: {skipped}", flush=True)
    out = Path(args.out).resolve()
    # a partial run (--only, --skip) updates the parts it measures and keeps the others
    partial = parts != set(PARTS)
    results: dict = json.loads(out.read_text()) if partial and out.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "cpu": devices.cpu_name(),
                          "platform": platform.platform(),
                          "tensorflow": tf.__version__, "keras": keras.__version__,
                          "torch": bench_torch.torch.__version__ if use_torch else None,
                          "loadavg": os.getloadavg()}
    out.parent.mkdir(parents=True, exist_ok=True)

    def measure(tmp: Path) -> dict:
        r = throughput(parts & set(THROUGHPUT_PARTS), args, tmp, use_torch)
        old = results.get("throughput", {})
        if not use_torch:
            r["torch"] = {"skipped": skipped}
        elif "version" in old.get("torch", {}):  # the kept parts' compile times and failures
            for key in ("first_step_s", "failed"):
                r["torch"][key] = {**old["torch"].get(key, {}), **r["torch"][key]}
        return {**old, **r}

    sections = {"throughput": measure, "startup": lambda t: startup(t, args.reps),
                "peak_rss_mib": peak_rss, "pipelines": pipelines}
    wanted = {"throughput": bool(parts & set(THROUGHPUT_PARTS)), "startup": "startup" in parts,
              "peak_rss_mib": "memory" in parts, "pipelines": "pipelines" in parts}
    with tempfile.TemporaryDirectory() as d:
        for name, run in sections.items():
            if wanted[name]:
                results[name] = run(Path(d))
                out.write_text(json.dumps(results, indent=2) + "\n")  # kept if a later part fails
    results["machine"]["loadavg_end"] = os.getloadavg()
    out.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    if all(k in results for k in ("throughput", "startup", "peak_rss_mib")):
        out.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
