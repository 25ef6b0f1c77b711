"""The LM benchmark of scripts/device_check.sh: bigtrain's training loop at GPT-2-small shape
(d 768, 12 layers, 12 heads, GPT-2's 50,257-token vocabulary) on one GPU, tokens/s and MFU
against the GPU's peak, with a PyTorch model of the same shape beside it when torch imports.

    python -m scripts.bench_gpu [--seq 1024] [--batch 16] [--precisions bf16,fp32]
    python -m scripts.bench_gpu --tiny        # the dry run: d 64, 2 layers, seq 64, on a CPU

bigtrain's figures are its engine's compiled steps (the loop `bigtrain fit` runs,
`trainer.steps_per_loop` steps per call) after two warm-up calls; FLOPs per token are
bigtrain's own count (models/size.py, 3x the forward pass, as summary.json's MFU uses) and the
peak is bigtrain/strategy/peaks.py's (a table for GPUs, a measured matmul peak for CPUs).
PyTorch: scripts/bench_torch.py's LM, the one scripts/bench.py times too (pre-norm, fused QKV,
`scaled_dot_product_attention`, exact GELU, tied embeddings), fused AdamW where the build has
it, autocast for bf16 and fp16 (with loss scaling), eager and through `torch.compile`, timed
after three warm-up steps; with it, PyTorch's matmul peak on the same device (an 8192-square
chain on a GPU), beside the table's.
Also timed: deleting a used iterator of the distributed dataset (the end-of-epoch stall
bigtrain avoids on CPUs, issue 20). Writes a results file (scripts/harness.py's layout, or
--out: device_check.sh gives $OUT/bench_gpu.json); its `rows` are one per framework, variant
and precision.

`--torch-only` runs the PyTorch rows alone, without importing TensorFlow or bigtrain's
configs: for a GPU machine that has PyTorch but no TensorFlow and no registry to install it
from (FLOPs per token then from workloads.lm_flops_per_token, the count scripts/bench.py
uses for both sides).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

from scripts import harness, report
from scripts.workloads import GPT2_SMALL, LM_TINY, LMShape, lm_flops_per_token

#: what the table shows of each row (the results file keeps every field)
COLUMNS = ("framework", "precision", "device", "tokens_per_sec", "mfu", "step_s", "loss",
           "first_call_s", "first_step_s", "peak_source", "matmul_fraction", "failed")


def overrides(shape: LMShape, precision: str, examples: int, gpu: bool) -> list[str]:
    return ["dataset=synthetic", "dataset.task=lm", f"dataset.vocab_size={shape.vocab}",
            f"dataset.seq_len={shape.seq}", f"dataset.num_examples={examples}",
            "dataset.val_fraction=0.05", "dataset.test_fraction=0.05", "model=transformer",
            f"model.d_model={shape.d_model}", f"model.num_layers={shape.layers}",
            f"model.num_heads={shape.heads}", f"model.mlp_ratio={shape.mlp_ratio}",
            "model.dropout=0", "optim=adamw", f"trainer.batch_size={shape.batch}",
            "trainer.progress=none", "logger=[]", f"strategy={'gpu' if gpu else 'cpu'}",
            f"strategy.precision={precision}"]


def bench_bigtrain(shape: LMShape, precision: str, calls: int, per_call: int,
                   gpu: bool) -> dict:
    import keras
    import tensorflow as tf

    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed
    from bigtrain.models.size import forward_flops
    from bigtrain.strategy.peaks import run_peak
    from bigtrain.train.fit import build

    seq, batch = shape.seq, shape.batch
    examples = int(batch * per_call * (calls + 3) / 0.9) + batch
    config = to_typed(compose(overrides(shape, precision, examples, gpu)))
    with tempfile.TemporaryDirectory(prefix="bigtrain-bench-gpu-") as tmp:
        tic = time.perf_counter()
        c = build(config, Path(tmp))
        built = time.perf_counter() - tic
        data = c.splits.train_batches(batch, 0).repeat()
        iterator = iter(c.engine.distribute(data))
        tic = time.perf_counter()
        c.engine.train_steps(iterator, per_call)  # trace, compile, warm up
        first = time.perf_counter() - tic
        c.engine.train_steps(iterator, per_call)
        seconds = []
        for _ in range(calls):
            tic = time.perf_counter()
            totals = c.engine.train_steps(iterator, per_call)
            seconds.append(time.perf_counter() - tic)
        tic = time.perf_counter()
        del iterator
        deleted = time.perf_counter() - tic
        tokens_per_sec = batch * seq * per_call / statistics.median(seconds)
        flops_per_token = 3 * forward_flops(c.model, (seq,), "int32") / seq
        compute = keras.mixed_precision.global_policy().compute_dtype
        peak, source = run_peak(c.strategy, {"bfloat16": "bf16", "float16": "fp16"}.get(
            compute, "fp32"))
        loss = c.engine.objective.finalize(totals)["loss"]
        device = c.model.trainable_variables[0].value.device
    achieved = tokens_per_sec * flops_per_token
    return {"framework": "bigtrain (TensorFlow " + tf.__version__ + ")", "precision": precision,
            "tokens_per_sec": tokens_per_sec, "step_s": statistics.median(seconds) / per_call,
            "flops_per_token": flops_per_token, "achieved_flops": achieved,
            "peak_flops": peak, "peak_source": source,
            "mfu": achieved / peak if peak else None, "params": c.params,
            "build_s": built, "first_call_s": first, "iterator_delete_s": deleted,
            "loss": loss, "device": device}


def bench_torch(shape: LMShape, precision: str, steps: int, flops_per_token: float,
                peak: float | None, compiled: bool, cache: dict) -> dict:
    """scripts/bench_torch.py's LM (the PyTorch reference scripts/bench.py also times) at this
    shape, AdamW, one fixed batch, timed after three warm-up steps; eager or compiled. The
    model is built once (`cache`) and shared by every variant, as bench_torch's are."""
    import torch

    from scripts import bench_torch as reference

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cuda":  # TF32 matmuls for float32, as TensorFlow does on Ampere and later
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if "bench" not in cache:
        cache["bench"] = reference.lm_bench(shape, device=dev, lr=1e-4, optimizer="adamw",
                                            num_batches=1)
    b = cache["bench"]
    name = f"PyTorch {torch.__version__} {'torch.compile' if compiled else 'eager'}"
    row = {"framework": name, "precision": precision, "device": dev, "adam": b.opt_impl}
    try:
        seconds = b.seconds_per_step(precision, compiled=compiled, steps=steps, warmup=3)
    except RuntimeError as e:  # torch.compile without a working compiler, say: reported
        return {**row, "tokens_per_sec": 0.0, "failed": str(e), "loss": float("nan")}
    tokens_per_sec = shape.batch * shape.seq / seconds
    achieved = tokens_per_sec * flops_per_token
    return {**row, "tokens_per_sec": tokens_per_sec, "step_s": seconds,
            "achieved_flops": achieved, "mfu": achieved / peak if peak else None,
            "loss": b.loss, "first_step_s": b.first_step_s.get(b.variant(precision, compiled))}


def torch_matmul_peak(precision: str, gpu: bool) -> float:
    """PyTorch's FLOP/s on a chain of square matmuls on this device (bench_torch.matmul_peak:
    8192 squared on a GPU, 1024 on a CPU)."""
    from scripts import bench_torch as reference

    dev = "cuda" if gpu else "cpu"
    return 1e9 * reference.matmul_peak(precision, size=8192 if gpu else 1024,
                                       reps=10 if gpu else 4, device=dev)


def torch_only(shape: LMShape, precisions: list[str], steps: int,
               tiny: bool) -> tuple[str, list[dict]]:
    """The PyTorch rows alone (no TensorFlow imported): the GPU's name, and a row per
    precision and variant, MFU against the table's peak (bigtrain.strategy.peaks, read from
    its file where bigtrain's package, whose configs need packages a bare machine may lack,
    does not import: harness.product)."""
    import torch

    gpu = torch.cuda.is_available() and not tiny
    if not gpu and not tiny:
        sys.exit("bench_gpu: PyTorch sees no GPU; --tiny runs the dry run on a CPU")
    peaks = harness.product("bigtrain.strategy.peaks")
    name = torch.cuda.get_device_name(0) if gpu else "CPU"
    flops_per_token = lm_flops_per_token(shape)
    rows, cache = [], {}
    for precision in precisions:
        peak = peaks.gpu_peak(name, precision) if gpu else None
        measured = torch_matmul_peak(precision, gpu)
        for compiled in (False, True):
            r = bench_torch(shape, precision, steps, flops_per_token, peak, compiled, cache)
            r.update(flops_per_token=flops_per_token, peak_flops=peak,
                     peak_source="table" if peak else "none",
                     torch_matmul_flops=measured,
                     matmul_fraction=r.get("achieved_flops", 0) / measured)
            rows.append(r)
    return name, rows


def main() -> None:
    parser = harness.arguments("bench_gpu", __doc__)
    parser.add_argument("--tiny", action="store_true", help="the dry run's shapes, on a CPU")
    parser.add_argument("--seq", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--precisions", default=None)
    parser.add_argument("--calls", type=int, default=None, help="timed calls of the engine")
    parser.add_argument("--torch-only", action="store_true",
                        help="PyTorch's rows alone, without TensorFlow (a GPU machine without it)")
    args = parser.parse_args()
    run = harness.Run("bench_gpu", args.out)
    shape = LM_TINY if args.tiny else dataclasses.replace(GPT2_SMALL, seq=1024, batch=16)
    shape = dataclasses.replace(shape, seq=args.seq or shape.seq,
                                batch=args.batch or shape.batch)
    precisions = (args.precisions or ("fp32" if args.tiny else "bf16,fp32")).split(",")
    calls, per_call = (args.calls or (2 if args.tiny else 5)), (2 if args.tiny else 10)
    if args.torch_only:
        name, rows = torch_only(shape, precisions, calls * per_call, args.tiny)
        return write(run, name, shape, rows)

    from bigtrain.core.tensorflow_start import import_tensorflow

    import_tensorflow()  # its start-up chatter into nothing: no log file here
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU")) and not args.tiny
    if not gpu and not args.tiny:
        sys.exit("bench_gpu: TensorFlow sees no GPU; --tiny runs the dry run on a CPU")
    name = (tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            .get("device_name", "GPU") if gpu else "CPU")
    print(f"bench_gpu: on {name}", flush=True)
    rows, cache = [], {}
    for precision in precisions:
        r = bench_bigtrain(shape, precision, calls, per_call, gpu)
        rows.append(r)
        try:
            import torch  # noqa: F401
        except ImportError:
            r["torch"] = "not importable: no PyTorch comparison"
        else:
            for compiled in (False, True):
                rows.append(bench_torch(shape, precision, calls * per_call,
                                        r["flops_per_token"], r["peak_flops"], compiled,
                                        cache))
    write(run, name, shape, rows)


def write(run: harness.Run, name: str, shape: LMShape, rows: list[dict]) -> None:
    """Print the rows and write the results file (its `rows`: one per framework, variant and
    precision)."""
    print(f"bench_gpu: {name}, d {shape.d_model}, {shape.layers} layers, {shape.heads} heads, "
          f"vocab {shape.vocab}, seq {shape.seq}, batch {shape.batch}", flush=True)
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "n/a"
        if r.get("failed"):
            print(f"{r['framework']:34s} {r['precision']:5s} failed: {r['failed']}", flush=True)
            continue
        print(f"{r['framework']:34s} {r['precision']:5s} {r['tokens_per_sec']:>12,.0f} tokens/s"
              f"  MFU {mfu}  loss {r['loss']:.3f}", flush=True)
        if r.get("torch_matmul_flops"):
            print(f"{'':34s} {r['achieved_flops'] / 1e12:.3g} TFLOP/s achieved, "
                  f"{100 * r['matmul_fraction']:.0f}% of PyTorch's matmul chain here "
                  f"({r['torch_matmul_flops'] / 1e12:.3g} TFLOP/s); first step "
                  f"{r.get('first_step_s') or 0:.1f} s", flush=True)
        if "iterator_delete_s" in r:
            print(f"{'':34s} build {r['build_s']:.1f} s, first call {r['first_call_s']:.1f} s, "
                  f"deleting a used iterator {r['iterator_delete_s']:.2f} s; peak "
                  f"{(r['peak_flops'] or 0) / 1e12:.3g} TFLOP/s ({r['peak_source']}); "
                  f"{r.get('torch', '')}", flush=True)
    out = {"device": name, "shape": dataclasses.asdict(shape), "seq": shape.seq,
           "batch": shape.batch, "rows": rows}
    path = run.write(out, columns=COLUMNS)
    print(report.table(rows, COLUMNS))
    print(f"bench_gpu: wrote {path}")


if __name__ == "__main__":
    main()
