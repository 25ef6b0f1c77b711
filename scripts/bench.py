"""bigtrain against plain Keras, side by side in one run: throughput, precision, start-up,
input pipelines and peak memory. Results go to JSON and a markdown table.

    python scripts/bench.py [--reps 3] [--steps 20] [--out scripts/results/bench.json]

1. Training throughput, steady state, medians of `--reps` alternating repetitions:
   - the LM of issue 9 (vocab 256, seq 128, d_model 256, 4 layers, 4 heads, MLP ratio 4,
     batch 32, Adam, synthetic tokens) trained by bigtrain's loop vs a plain Keras 3 script of
     the same shapes (Embedding, MultiHeadAttention with a causal mask, LayerNormalization,
     Dense with `activation="gelu"`, `Model.fit` on a tf.data pipeline), in fp32 and bf16
     (`mixed_bfloat16` for Keras): tokens/s, ratios, achieved GFLOP/s and the share of this
     machine's matmul peak measured in the same run;
   - digits + cnn: bigtrain (its default precision, and fp32) vs `Model.fit` (fp32) on the
     same model and batches (examples/s).
2. Precision: bigtrain's LM in fp32, bf16 and fp16, and whether the CPU has native bf16.
3. Start-up: `bigtrain --help`, `ls`, `show`, and the time to the first finished training step
   of `bigtrain fit debug=smoke`, next to `python -c "import tensorflow"`.
4. Input pipelines (scripts/bench_data.py) and the peak RSS of training runs.

Keras `fit` is timed from per-batch timestamps: the wall time of a whole `fit()` call includes
a stall at its end from tf.data's autotune thread.
"""

from __future__ import annotations

import argparse
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

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_engine import (  # noqa: E402
    CNN,
    LM,
    components,
    keras_model_for,
    time_bigtrain,
    time_keras_fit,
)
from keras import ops  # noqa: E402

from bigtrain import devices  # noqa: E402

VOCAB, SEQ, D, LAYERS, HEADS, RATIO, BATCH = 256, 128, 256, 4, 4, 4, 32
CLI = [sys.executable, "-m", "bigtrain.cli.main"]


def lm_flops_per_token() -> float:
    """Training FLOPs per token of the LM (3x the forward's matmuls)."""
    per_layer = 2 * D * 3 * D + 2 * D * D + 2 * 2 * D * RATIO * D + 2 * 2 * SEQ * D
    return 3 * (LAYERS * per_layer + 2 * D * VOCAB)


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


def throughput(reps: int, steps: int, tmp: Path) -> dict:
    precisions = {"fp32": "float32", "bf16": "mixed_bfloat16"}
    bigtrain = {p: components([*LM, f"strategy.precision={p}"], tmp / f"lm-{p}")[1]
                for p in ("fp32", "bf16", "fp16")}
    keras.mixed_precision.set_dtype_policy("float32")
    plain = {p: plain_keras_lm(policy) for p, policy in precisions.items()}
    data = lm_dataset()
    cnn_bt = components(CNN, tmp / "cnn")[1]  # the default precision (auto)
    cnn_fp32 = components([*CNN, "strategy.precision=fp32"], tmp / "cnn-fp32")[1]
    cnn_model, cnn_data = keras_model_for(CNN)
    times: dict[str, list[float]] = {}
    peaks: dict[str, list[float]] = {"fp32": [], "bf16": []}

    def add(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    for _ in range(reps):  # alternate: machine noise hits every variant alike
        for p in ("fp32", "bf16"):
            add(f"keras_fit_{p}", time_keras_fit(plain[p], data, steps))
        for p in ("fp32", "bf16", "fp16"):
            add(f"bigtrain_{p}", time_bigtrain(bigtrain[p], BATCH, steps, 10))
        add("cnn_keras_fit", time_keras_fit(cnn_model, cnn_data, steps * 4))
        add("cnn_bigtrain", time_bigtrain(cnn_bt, BATCH, steps * 4, 10))
        add("cnn_bigtrain_fp32", time_bigtrain(cnn_fp32, BATCH, steps * 4, 10))
        for p in peaks:
            peaks[p].append(matmul_peak("bfloat16" if p == "bf16" else "float32"))
    med = {k: statistics.median(v) for k, v in times.items()}
    peak = {p: max(v) for p, v in peaks.items()}
    tok = {k: BATCH * SEQ / v for k, v in med.items() if not k.startswith("cnn")}
    flops = lm_flops_per_token()
    lm = {}
    for k, v in tok.items():
        p = k.rsplit("_", 1)[1]
        lm[k] = {"tokens_per_sec": v, "gflops": v * flops / 1e9,
                 "share_of_peak": v * flops / 1e9 / peak["bf16" if p == "bf16" else "fp32"],
                 "ratio_to_keras_fit_fp32": v / tok["keras_fit_fp32"]}
    best = max((k for k in tok if k.startswith("bigtrain")), key=tok.get)
    return {
        "lm": lm,
        "lm_ratios": {
            "bigtrain_fp32_vs_keras_fit_fp32": tok["bigtrain_fp32"] / tok["keras_fit_fp32"],
            "bigtrain_bf16_vs_keras_fit_bf16": tok["bigtrain_bf16"] / tok["keras_fit_bf16"],
            "bigtrain_best_vs_keras_fit_fp32": tok[best] / tok["keras_fit_fp32"],
            "bigtrain_best": best,
        },
        "lm_flops_per_token": flops,
        "matmul_peak_gflops": peak,
        "digits_cnn": {
            "keras_fit_examples_per_sec": BATCH / med["cnn_keras_fit"],
            "bigtrain_precision": devices.resolve_precision("auto", "auto"),
            "bigtrain_examples_per_sec": BATCH / med["cnn_bigtrain"],
            "ratio": med["cnn_keras_fit"] / med["cnn_bigtrain"],
            "bigtrain_fp32_examples_per_sec": BATCH / med["cnn_bigtrain_fp32"],
            "ratio_fp32": med["cnn_keras_fit"] / med["cnn_bigtrain_fp32"],
        },
        "native_bf16": devices.cpu_native_bf16(),
        "cpu_flags": sorted(devices.cpu_flags()),
    }


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


def markdown(r: dict) -> str:
    t, s = r["throughput"], r["startup"]
    lines = ["| item | plain Keras | bigtrain | ratio |", "|---|---|---|---|"]
    for p in ("fp32", "bf16"):
        k, b = t["lm"][f"keras_fit_{p}"], t["lm"][f"bigtrain_{p}"]
        lines.append(f"| LM tokens/s, {p} | {k['tokens_per_sec']:,.0f} | "
                     f"{b['tokens_per_sec']:,.0f} ({b['gflops']:.0f} GFLOP/s, "
                     f"{100 * b['share_of_peak']:.0f}% of peak) | "
                     f"{b['tokens_per_sec'] / k['tokens_per_sec']:.2f}x |")
    fp16 = t["lm"]["bigtrain_fp16"]
    lines.append(f"| LM tokens/s, fp16 | | {fp16['tokens_per_sec']:,.0f} | "
                 f"{fp16['ratio_to_keras_fit_fp32']:.2f}x of Keras fp32 |")
    best = t["lm_ratios"]
    lines.append(f"| LM best bigtrain ({best['bigtrain_best'].split('_')[1]}) vs Keras fp32 | | "
                 f"| {best['bigtrain_best_vs_keras_fit_fp32']:.2f}x |")
    c = t["digits_cnn"]
    lines.append(f"| digits + cnn examples/s, default ({c['bigtrain_precision']}) | "
                 f"{c['keras_fit_examples_per_sec']:,.0f} | "
                 f"{c['bigtrain_examples_per_sec']:,.0f} | {c['ratio']:.2f}x |")
    lines.append(f"| digits + cnn examples/s, fp32 | {c['keras_fit_examples_per_sec']:,.0f} | "
                 f"{c['bigtrain_fp32_examples_per_sec']:,.0f} | {c['ratio_fp32']:.2f}x |")
    pk = t["matmul_peak_gflops"]
    lines.append(f"| matmul peak GFLOP/s fp32 / bf16 | | {pk['fp32']:.0f} / {pk['bf16']:.0f} "
                 f"(native bf16: {t['native_bf16']}) | |")
    lines.append(f"| start-up: --help / ls / show | | {s['help_s']:.2f} / {s['ls_s']:.2f} / "
                 f"{s['show_s']:.2f} s | |")
    lines.append(f"| time to first step (fit debug=smoke) | import tensorflow "
                 f"{s['import_tensorflow_s']:.2f} s | {s['first_step_s']:.2f} s | "
                 f"+{s['first_step_s'] - s['import_tensorflow_s']:.2f} s |")
    for name, mib in r["peak_rss_mib"].items():
        lines.append(f"| peak RSS, {name} | | {mib:,.0f} MiB | |")
    for name, v in r.get("pipelines", {}).items():
        if isinstance(v, dict) and "ratio" in v:
            lines.append(f"| input pipeline {name} vs model consumption | | | "
                         f"{v['ratio']:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["throughput", "startup", "memory", "pipelines"])
    parser.add_argument("--out", default="scripts/results/bench.json")
    args = parser.parse_args()
    tf.config.threading.set_inter_op_parallelism_threads(1)  # both sides alike
    out = Path(args.out).resolve()
    # a partial run (--skip) updates the parts it measures and keeps the others
    results: dict = json.loads(out.read_text()) if args.skip and out.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "cpu": devices.cpu_name(),
                          "platform": platform.platform(),
                          "tensorflow": tf.__version__, "keras": keras.__version__}
    out.parent.mkdir(parents=True, exist_ok=True)
    sections = {"throughput": lambda t: throughput(args.reps, args.steps, t),
                "startup": lambda t: startup(t, args.reps),
                "peak_rss_mib": peak_rss, "pipelines": pipelines}
    skip = {"memory": "peak_rss_mib"}
    with tempfile.TemporaryDirectory() as d:
        for name, run in sections.items():
            if name in args.skip or any(skip.get(s) == name for s in args.skip):
                continue
            results[name] = run(Path(d))
            out.write_text(json.dumps(results, indent=2) + "\n")  # kept if a later part fails
    if all(k in results for k in ("throughput", "startup", "peak_rss_mib")):
        table = markdown(results)
        out.with_suffix(".md").write_text(table + "\n")
        print(table)
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
