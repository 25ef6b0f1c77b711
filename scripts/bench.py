"""bigtrain against plain Keras and PyTorch, side by side in one run: throughput, precision,
start-up, input pipelines and peak memory. Results go to one results file per run.

    python -m scripts.bench [--reps 3] [--steps 20] [--out FILE.json]
    python -m scripts.bench --only lm --reps 2     # the LM rows alone (Keras, bigtrain, PyTorch)
    python -m scripts.bench --steps 3 --reps 1 --gpt2-steps 1 --only lm gpt2 cnn rnn  # a quick try

1. Training throughput, steady state, medians of `--reps` alternating repetitions:
   - workloads.LM_SMALL (vocab 256, seq 128, d_model 256, 4 layers, 4 heads, MLP ratio 4,
     batch 32, Adam, synthetic tokens) trained by bigtrain's loop vs a plain Keras 3 script of
     the same shapes (Embedding, MultiHeadAttention with a causal mask, LayerNormalization,
     Dense with `activation="gelu"`, `Model.fit` on a tf.data pipeline), in fp32 and bf16
     (`mixed_bfloat16` for Keras): tokens/s, ratios, achieved GFLOP/s and the share of this
     machine's matmul peak (bigtrain.strategy.peaks, measured in the same repetitions);
   - digits + cnn and digits + rnn (a 2-layer GRU): bigtrain (its default precision, and
     fp32) vs `Model.fit` (fp32) on the same model and batches (examples/s);
   - the LM at GPT-2-small shape (workloads.GPT2_SMALL: vocab 50,257, seq 128, batch 8;
     `--gpt2-steps` timed steps, one per call of bigtrain's loop);
   - PyTorch, when `import torch` works (`pip install ".[bench]"`): scripts/bench_torch.py's
     models of the same shapes, eager and `torch.compile`, fp32 and bf16 (autocast), timed in
     the same repetitions, alternating with the rows above; each row's GFLOP/s and share of
     PyTorch's own matmul peak (measured as TensorFlow's), the ratio of bigtrain to the
     fastest PyTorch variant per precision, and both sides' parameter counts. A variant that
     fails (torch.compile without a working compiler) is reported as failed.
2. Precision: bigtrain's LM in fp32, bf16 and fp16, and whether the CPU has native bf16.
3. Start-up: `bigtrain --help`, `ls`, `show`, and the time to the first finished training step
   of `bigtrain fit debug=smoke` (scripts/time_cli.py's), next to `python -c "import
   tensorflow"`, alternating.
4. Input pipelines (scripts/bench_data.py) and the peak RSS of training runs.

Keras `fit` is timed from per-batch timestamps: the wall time of a whole `fit()` call includes
a stall at its end from tf.data's autotune thread.

`--only` (lm, gpt2, cnn, rnn, startup, memory, pipelines) or `--skip` measure a part of it;
such a partial run writes its own results file with those parts alone (a run's file is never
merged with another's: each holds one machine's figures). `--no-fp16` leaves out bigtrain's
fp16 LM row: on CPUs where TensorFlow's fused fp16 MatMul+BiasAdd falls back to oneDNN's
reference kernel (seen on a Xeon with AVX512-FP16 and AMX) it takes hours.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from bigtrain.strategy import devices  # noqa: E402
from scripts import bench_torch, harness, report, time_cli  # noqa: E402
from scripts.bench_engine import (  # noqa: E402
    components,
    keras_model_for,
    time_bigtrain,
    time_keras_fit,
)
from scripts.workloads import (  # noqa: E402
    DIGITS_BATCH,
    DIGITS_CNN,
    DIGITS_RNN,
    GPT2_SMALL,
    GPT2_SMALL_RUN,
    LM_SMALL,
    LM_SMALL_RUN,
    lm_flops_per_token,
)

VOCAB, SEQ, D, LAYERS, HEADS, RATIO, BATCH = dataclasses.astuple(LM_SMALL)  # 256, 128, 256, ...
CLI = harness.BIGTRAIN
THROUGHPUT_PARTS = ("lm", "gpt2", "cnn", "rnn")
PARTS = (*THROUGHPUT_PARTS, "startup", "memory", "pipelines")


class AddPositions(keras.layers.Layer):
    """Learned positions, the one piece core Keras has no layer for."""

    def build(self, input_shape):
        self.pos = self.add_weight(shape=(input_shape[1], input_shape[2]),
                                   initializer="random_normal")

    def call(self, inputs):
        return inputs + ops.cast(self.pos, inputs.dtype)[None]


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
        bigtrain = {p: components([*LM_SMALL_RUN, f"strategy.precision={p}"], tmp / f"lm-{p}")[1]
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
            add_torch("lm", bench_torch.lm_bench(LM_SMALL), steps)
    if "gpt2" in parts:  # one step per call: a step takes seconds here
        gpt2 = {p: components([*GPT2_SMALL_RUN, f"strategy.precision={p}"], tmp / f"gpt2-{p}")[1]
                for p in bench_torch.PRECISIONS}
        for p in gpt2:
            variants[f"gpt2/bigtrain_{p}"] = functools.partial(
                time_bigtrain, gpt2[p], GPT2_SMALL.batch, args.gpt2_steps, 1)
        params["gpt2"] = {"bigtrain": counts(gpt2["fp32"])}
        if use_torch:
            add_torch("gpt2", bench_torch.lm_bench(GPT2_SMALL), args.gpt2_steps, warmup=2)
    for part, overrides in (("cnn", DIGITS_CNN), ("rnn", DIGITS_RNN)):
        if part not in parts:
            continue
        built = {p: components([*overrides, f"strategy.precision={p}"],
                               tmp / f"{part}-{p}")[1] for p in ("fp32", "bf16")}
        model, ds = keras_model_for(overrides)
        variants[f"{part}/keras_fit"] = functools.partial(time_keras_fit, model, ds, steps * 4)
        for p, c in built.items():
            variants[f"{part}/bigtrain_{p}"] = functools.partial(time_bigtrain, c, DIGITS_BATCH,
                                                                 steps * 4, 10)
        params[part] = {"bigtrain": counts(built["fp32"])}
        if use_torch:
            add_torch(part, bench_torch.digits_bench(part, DIGITS_BATCH), steps * 4)
    for part, c in params.items():
        if "torch" in c:
            same = "equal" if c["torch"] == c["bigtrain"] else "DIFFERENT"
            print(f"bench: {part} parameters: bigtrain {c['bigtrain']['trainable']:,} trainable "
                  f"({c['bigtrain']['total']:,} with statistics), PyTorch "
                  f"{c['torch']['trainable']:,} ({c['torch']['total']:,}): {same}", flush=True)
    # each repetition ends with the matmul peaks (GFLOP/s; the best over the repetitions)
    for p in ("fp32", "bf16"):
        variants[f"peak/tf_{p}"] = functools.partial(harness.matmul_peak_gflops, p)
        if use_torch:
            variants[f"peak/torch_{p}"] = functools.partial(bench_torch.matmul_peak, p)

    def show(name: str, value: float) -> None:
        unit = "GFLOP/s" if name.startswith("peak/") else "s/step"
        print(f"bench:   {name:26s} {value:8.4f} {unit}", flush=True)

    measured = harness.alternate(
        variants, reps, tolerate=guarded, on_value=show,
        on_repetition=lambda rep: print(f"bench: throughput, repetition {rep + 1} of {reps}",
                                        flush=True))
    med = {k: v for k, v in measured.medians().items() if not k.startswith("peak/")}
    best = {k.split("/")[1]: v for k, v in measured.best().items() if k.startswith("peak/")}
    peak = {side: {p: best[f"{side}_{p}"] for p in ("fp32", "bf16") if f"{side}_{p}" in best}
            for side in ("tf", "torch")}
    out: dict = {"matmul_peak_gflops": peak["tf"]}
    if "lm" in parts:
        flops = lm_flops_per_token(LM_SMALL)
        lm = lm_rows("lm", med, BATCH * SEQ, flops, peak)
        tok = {k: v["tokens_per_sec"] for k, v in lm.items()}
        for k, row in lm.items():
            row["ratio_to_keras_fit_fp32"] = tok[k] / tok["keras_fit_fp32"]
        best_lm = max((k for k in tok if k.startswith("bigtrain")), key=tok.get)
        out.update({
            "lm": lm,
            "lm_ratios": {
                "bigtrain_fp32_vs_keras_fit_fp32": tok["bigtrain_fp32"] / tok["keras_fit_fp32"],
                "bigtrain_bf16_vs_keras_fit_bf16": tok["bigtrain_bf16"] / tok["keras_fit_bf16"],
                "bigtrain_best_vs_keras_fit_fp32": tok[best_lm] / tok["keras_fit_fp32"],
                "bigtrain_best": best_lm,
                **vs_torch(tok, {"fp32": "bigtrain_fp32", "bf16": "bigtrain_bf16"}),
            },
            "lm_flops_per_token": flops,
            "lm_params": params["lm"],
        })
    if "gpt2" in parts:
        flops = lm_flops_per_token(GPT2_SMALL)
        rows = lm_rows("gpt2", med, GPT2_SMALL.batch * GPT2_SMALL.seq, flops, peak)
        tok = {k: v["tokens_per_sec"] for k, v in rows.items()}
        out["gpt2_small"] = {"shape": dataclasses.asdict(GPT2_SMALL), "flops_per_token": flops,
                             "timed_steps": args.gpt2_steps, "rows": rows,
                             "ratios": vs_torch(tok, {"fp32": "bigtrain_fp32",
                                                      "bf16": "bigtrain_bf16"}),
                             "params": params["gpt2"]}
    for part in ("cnn", "rnn"):
        if part not in parts:
            continue
        eps = {k.split("/", 1)[1]: DIGITS_BATCH / v for k, v in med.items()
               if k.startswith(part + "/")}
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
            "failed": measured.failed,
        }
    return out


def startup(tmp: Path, reps: int) -> dict:
    """Median seconds of the fast commands and of `bigtrain fit debug=smoke`'s first step,
    next to `import tensorflow`, alternating. The commands run outside the repository: from
    its root, `python -m bigtrain...` would import the source tree, not the installed
    package."""
    commands = {"import_tensorflow_s": [sys.executable, "-c", "import tensorflow"],
                "help_s": [*CLI, "--help"], "ls_s": [*CLI, "ls"], "show_s": [*CLI, "show"]}
    sides = {name: functools.partial(harness.time_command, cmd, tmp)
             for name, cmd in commands.items()}
    first = iter(range(reps))
    sides["first_step_s"] = lambda: time_cli.first_step(tmp / f"first-{next(first)}",
                                                        tmp)["first_step_s"]
    return harness.alternate(sides, reps).medians()


def peak_rss(tmp: Path) -> dict:
    """Peak resident memory (MiB) of training runs, from the kernel's rusage of each run."""
    runs = {"default (digits + cnn)": ["fit", "trainer.progress=none"],
            "LM, 30 steps": ["fit", *LM_SMALL_RUN, "trainer.max_steps=30",
                             "trainer.progress=none"]}
    out = {}
    for name, args in runs.items():
        code, mib = harness.peak_rss_mib([*CLI, *args, f"hydra.run.dir={tmp / f'rss{len(out)}'}"],
                                         cwd=tmp)
        if code != 0:
            raise RuntimeError(f"the measured run {name!r} failed (exit status {code})")
        out[name] = mib
    return out


def pipelines(tmp: Path) -> dict:
    """scripts/bench_data.py's figures, from a child process (its results file in `tmp`)."""
    path = tmp / "bench_data.json"
    subprocess.run([sys.executable, "-m", "scripts.bench_data", "--reps", "1", "--out",
                    str(path)], check=True, capture_output=True, cwd=harness.ROOT)
    return harness.payload(json.loads(path.read_text()))


def _tokens(row: dict | None) -> str:
    """tokens/s (GFLOP/s, share of the framework's own matmul peak) of an LM row."""
    if row is None:
        return ""
    share = row.get("share_of_peak")
    return (f"{row['tokens_per_sec']:,.0f} ({row['gflops']:.0f} GFLOP/s"
            + (f", {100 * share:.0f}% of peak)" if share else ")"))


COLUMNS = ("item", "plain Keras", "PyTorch", "bigtrain", "bigtrain / reference")
MODES = {"eager": "eager", "compile": "torch.compile"}


def _row(item: str, keras_cell: str = "", torch_cell: str = "", ours: str = "",
         ratio: str = "") -> dict:
    return dict(zip(COLUMNS, (item, keras_cell, torch_cell, ours, ratio), strict=True))


def table_rows(record: dict) -> list[dict]:
    """The results file's table: bigtrain against plain Keras for the parts the run
    measured, then against each PyTorch variant and the fastest one per precision."""
    t, s = record.get("throughput", {}), record.get("startup")
    rows = []
    if "lm" in t:
        for p in ("fp32", "bf16"):
            k, b = t["lm"][f"keras_fit_{p}"], t["lm"][f"bigtrain_{p}"]
            rows.append(_row(f"LM_SMALL tokens/s, {p}", f"{k['tokens_per_sec']:,.0f}",
                             ours=_tokens(b),
                             ratio=f"{b['tokens_per_sec'] / k['tokens_per_sec']:.2f}x"))
        fp16 = t["lm"].get("bigtrain_fp16")
        if fp16:
            rows.append(_row("LM_SMALL tokens/s, fp16", ours=f"{fp16['tokens_per_sec']:,.0f}",
                             ratio=f"{fp16['ratio_to_keras_fit_fp32']:.2f}x of Keras fp32"))
        best = t["lm_ratios"]
        rows.append(_row(f"LM_SMALL best bigtrain ({best['bigtrain_best'].split('_')[1]}) vs "
                         "Keras fp32", ratio=f"{best['bigtrain_best_vs_keras_fit_fp32']:.2f}x"))
    if "gpt2_small" in t:
        for p in bench_torch.PRECISIONS:
            b = t["gpt2_small"]["rows"].get(f"bigtrain_{p}")
            rows.append(_row(f"GPT-2 small tokens/s, {p}", ours=_tokens(b)))
    for part in ("cnn", "rnn"):
        c = t.get(f"digits_{part}")
        if not c:
            continue
        keras_eps = c["keras_fit_examples_per_sec"]
        for p in ("bf16", "fp32"):  # older results hold bf16 only as auto's pick
            ours = c.get(f"bigtrain_{p}_examples_per_sec") or (
                c["bigtrain_examples_per_sec"] if c["bigtrain_precision"] == p else None)
            if ours:
                auto = " (auto)" if c["bigtrain_precision"] == p else ""
                rows.append(_row(f"digits + {part} examples/s, {p}{auto}", f"{keras_eps:,.0f}",
                                 ours=f"{ours:,.0f}", ratio=f"{ours / keras_eps:.2f}x"))
    if "matmul_peak_gflops" in t:
        pk = t["matmul_peak_gflops"]
        native = t.get("native_bf16", (record.get("machine") or {}).get("native_bf16"))
        rows.append(_row("matmul peak GFLOP/s fp32 / bf16",
                         ours=f"{pk['fp32']:.0f} / {pk['bf16']:.0f} (native bf16: {native})"))
    if s:
        rows.append(_row("start-up: --help / ls / show", ours=f"{s['help_s']:.2f} / "
                         f"{s['ls_s']:.2f} / {s['show_s']:.2f} s"))
        rows.append(_row("time to first step (fit debug=smoke)",
                         f"import tensorflow {s['import_tensorflow_s']:.2f} s",
                         ours=f"{s['first_step_s']:.2f} s",
                         ratio=f"+{s['first_step_s'] - s['import_tensorflow_s']:.2f} s"))
    for name, mib in record.get("peak_rss_mib", {}).items():
        rows.append(_row(f"peak RSS, {name}", ours=f"{mib:,.0f} MiB"))
    for name, v in record.get("pipelines", {}).items():
        if isinstance(v, dict) and "ratio" in v:
            rows.append(_row(f"input pipeline {name} vs model consumption",
                             ratio=f"{v['ratio']:.1f}x"))
    return rows + torch_rows(t)


def torch_rows(throughput_results: dict) -> list[dict]:
    """bigtrain against each PyTorch variant and against the fastest one per precision."""
    t = throughput_results
    info = t.get("torch")
    if not info:
        return []
    if "skipped" in info:
        return [_row(f"PyTorch rows skipped: {info['skipped']}")]
    failed = info.get("failed", {})
    rows = [_row(f"PyTorch {info['version']}, {info['threads']} threads "
                 f"({info['interop_threads']} inter-op), Adam {'/'.join(info['adam'])}; each "
                 "framework's share of its own matmul peak")]

    def variants(part: str, title: str, unit: str, rate, bigtrain_of: dict, ratios: dict):
        for p in bench_torch.PRECISIONS:
            ours = bigtrain_of.get(p)
            for mode, label in MODES.items():
                name = f"torch_{mode}_{p}"
                if f"{part}/{name}" in failed:
                    rows.append(_row(f"{title} {unit}, {p}, {label}",
                                     torch_cell=f"failed: {failed[f'{part}/{name}'][:120]}"))
                    continue
                theirs = rate(name)
                if theirs is None:
                    continue
                cell, ratio = "", ""
                if ours and rate(ours) is not None:
                    cell = rate(ours, text=True)
                    ratio = f"{rate(ours) / theirs:.2f}x"
                rows.append(_row(f"{title} {unit}, {p}, {label}",
                                 torch_cell=rate(name, text=True), ours=cell, ratio=ratio))
            key = f"{ours}_vs_torch_best_{p}"
            if key in ratios:
                best = MODES[ratios[f"torch_best_{p}"].split("_")[1]]
                rows.append(_row(f"{title} {p}: bigtrain vs the fastest PyTorch ({best})",
                                 ratio=f"**{ratios[key]:.2f}x**"))

    def lm_rate(lm_rows_of):
        def rate(name, text=False):
            row = lm_rows_of.get(name)
            return _tokens(row) if text else (row["tokens_per_sec"] if row else None)
        return rate

    both = {"fp32": "bigtrain_fp32", "bf16": "bigtrain_bf16"}
    if "lm" in t:
        variants("lm", "LM_SMALL", "tokens/s", lm_rate(t["lm"]), both, t["lm_ratios"])
    if "gpt2_small" in t:
        g = t["gpt2_small"]
        sh = g["shape"]
        rows.append(_row(f"GPT-2 small: d {sh['d_model']}, {sh['layers']} layers, vocab "
                         f"{sh['vocab']:,}, seq {sh['seq']}, batch {sh['batch']}, "
                         f"timed steps {g['timed_steps']}"))
        variants("gpt2", "GPT-2 small", "tokens/s", lm_rate(g["rows"]), both, g["ratios"])
    for part in ("cnn", "rnn"):
        c = t.get(f"digits_{part}")
        if not c or not c.get("torch_examples_per_sec"):  # no PyTorch rows in that run
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
        rows.append(_row("matmul peak GFLOP/s fp32 / bf16 (each its own)",
                         torch_cell=f"{pk['fp32']:.0f} / {pk['bf16']:.0f}",
                         ours=f"{tf_pk['fp32']:.0f} / {tf_pk['bf16']:.0f}"))
    for part, key in (("LM_SMALL", "lm_params"), ("GPT-2 small", None), ("digits + cnn", "cnn"),
                      ("digits + rnn", "rnn")):
        c = (t.get(key) if key == "lm_params" else
             t.get("gpt2_small", {}).get("params") if key is None else
             t.get(f"digits_{key}", {}).get("params"))
        if not c or "torch" not in c:
            continue
        cell = {side: f"{c[side]['trainable']:,}" + (
            f" ({c[side]['total']:,} with batch-norm statistics)"
            if c[side]["total"] != c[side]["trainable"] else "") for side in ("torch", "bigtrain")}
        rows.append(_row(f"parameters, {part}", torch_cell=cell["torch"], ours=cell["bigtrain"],
                         ratio="equal" if c["torch"] == c["bigtrain"] else "DIFFERENT"))
    for name, seconds in info.get("first_step_s", {}).items():
        if "compile" in name:
            rows.append(_row(f"first step of {name} (compilation)",
                             torch_cell=f"{seconds:.1f} s"))
    return rows


TORCH_SKIPPED = "torch is not importable (pip install '.[bench]' adds it)"


def main() -> None:
    parser = harness.arguments("bench", __doc__)
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
    args = parser.parse_args()
    skip = {p for s in args.skip for p in (THROUGHPUT_PARTS if s == "throughput" else (s,))}
    parts = set(args.only or PARTS) - skip
    run = harness.Run("bench", args.out)
    tf.config.threading.set_inter_op_parallelism_threads(1)  # both sides alike
    use_torch = bench_torch.AVAILABLE and not args.no_torch
    skipped = "--no-torch" if bench_torch.AVAILABLE else TORCH_SKIPPED
    if use_torch:
        bench_torch.configure_threads(args.torch_threads)  # before any PyTorch work
    elif parts & set(THROUGHPUT_PARTS):
        print(f"bench: PyTorch rows skipped: {skipped}", flush=True)

    def measure(tmp: Path) -> dict:
        r = throughput(parts & set(THROUGHPUT_PARTS), args, tmp, use_torch)
        if not use_torch:
            r["torch"] = {"skipped": skipped}
        return r

    sections = {"throughput": measure, "startup": lambda t: startup(t, args.reps),
                "peak_rss_mib": peak_rss, "pipelines": pipelines}
    wanted = {"throughput": bool(parts & set(THROUGHPUT_PARTS)), "startup": "startup" in parts,
              "peak_rss_mib": "memory" in parts, "pipelines": "pipelines" in parts}
    results: dict = {"parts": sorted(parts)}
    with tempfile.TemporaryDirectory() as d:
        for name, part in sections.items():
            if wanted[name]:
                results[name] = part(Path(d))
                run.write(results, table_rows, COLUMNS)  # kept if a later part fails
    path = run.write(results, table_rows, COLUMNS)
    print(report.table(table_rows({**results, "machine": run.machine}), COLUMNS))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
