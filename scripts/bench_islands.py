"""The elementwise islands of bigtrain's Transformer, kernel by kernel, side by side in one run.

    python -m scripts.bench_islands [--rounds 3] [--out FILE.json]

At the shapes of workloads.LM_SMALL (batch 32, seq 128, d_model 256, 4 heads, MLP 1024), in
float32, forward and backward apart:
- layer norm [4096, 256], bias + exact GELU [4096, 1024], the causal softmax [32, 4, 128, 128]
  as bigtrain.models.transformer compiles them (row sums as matrix-vector products), next to
  the same math with XLA's own reduce over the minor axis (what they were before);
- each at XLA's default vector width on AVX-512 CPUs (256 bits), which bigtrain keeps, and at
  512 bits (`XLA_FLAGS=--xla_cpu_prefer_vector_width=512`): whether the wider vectors would
  pay. XLA reads its flags once per process, so each width runs in its own child process,
  the two (and PyTorch's kernels) alternating `--rounds` times; medians over the rounds;
- PyTorch's `layer_norm`, `gelu` and `softmax`, forward and backward through autograd, when
  torch imports (the eager kernels a PyTorch user's step runs).

A kernel is timed as 10 calls chained in one tf.function (each call's output is the next
call's input), so that the time is the kernel's and not Python's dispatch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from scripts import harness, report
from scripts.workloads import LM_SMALL

CHAIN = 10
#: the islands' shapes: LM_SMALL's tokens per batch, model width, MLP width, heads, sequence
BATCH, HEADS, SEQ, D = LM_SMALL.batch, LM_SMALL.heads, LM_SMALL.seq, LM_SMALL.d_model
TOKENS, MLP = BATCH * SEQ, D * LM_SMALL.mlp_ratio
SCALE = (D // HEADS) ** -0.5


def _child() -> dict[str, float]:
    """Milliseconds per call of every kernel in this process (its XLA_FLAGS as given)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from bigtrain.models import kernels as T

    tf.config.threading.set_inter_op_parallelism_threads(1)
    f32 = tf.float32
    xla = lambda fn: tf.function(fn, jit_compile=True, autograph=False)  # noqa: E731

    # the same math with XLA's reduce over the minor axis (bigtrain's kernels before)
    def moments(x, eps):
        c = x - tf.reduce_mean(x, -1, keepdims=True)
        r = tf.math.rsqrt(tf.reduce_mean(c * c, -1, keepdims=True) + eps)
        return c * r, r

    @xla
    def ln_fwd_reduce(x, gamma, beta, eps):
        return moments(x, eps)[0] * gamma + beta

    @xla
    def ln_bwd_reduce(x, gamma, eps, dy):
        xhat, r = moments(x, eps)
        g = dy * gamma
        dx = r * (g - tf.reduce_mean(g, -1, keepdims=True)
                  - xhat * tf.reduce_mean(g * xhat, -1, keepdims=True))
        return dx, tf.reduce_sum(dy * xhat, 0), tf.reduce_sum(dy, 0)

    @xla
    def sm_fwd_reduce(s, mask, scale, masked):
        return tf.nn.softmax(tf.where(mask, s * scale, masked), axis=-1)

    @xla
    def sm_bwd_reduce(w, d, scale):
        return scale * w * (d - tf.reduce_sum(d * w, -1, keepdims=True))

    gen = tf.random.Generator.from_seed(0)
    x = gen.normal((TOKENS, D))
    gamma, beta = gen.normal((D,)), gen.normal((D,))
    h, b1 = gen.normal((TOKENS, MLP)), gen.normal((MLP,))
    s = gen.normal((BATCH, HEADS, SEQ, SEQ))
    mask = tf.linalg.band_part(tf.ones((SEQ, SEQ), tf.bool), -1, 0)
    eps, scale, neg = tf.constant(1e-5, f32), tf.constant(SCALE, f32), tf.constant(-1e9, f32)

    kernels = {  # name: (one call of y -> y, its input)
        "layer norm fwd": (lambda v: T._layer_norm_fwd(v, gamma, beta, eps), x),
        "layer norm fwd, reduce": (lambda v: ln_fwd_reduce(v, gamma, beta, eps), x),
        "layer norm bwd": (lambda v: T._layer_norm_bwd(x, gamma, eps, v)[0], x),
        "layer norm bwd, reduce": (lambda v: ln_bwd_reduce(x, gamma, eps, v)[0], x),
        "bias + GELU fwd": (lambda v: T._bias_gelu_fwd(v, b1, False), h),
        "bias + GELU bwd": (lambda v: T._bias_gelu_bwd(h, b1, v, False)[0], h),
        "softmax fwd": (lambda v: T._softmax_fwd(v, mask, scale, neg), s),
        "softmax fwd, reduce": (lambda v: sm_fwd_reduce(v, mask, scale, neg), s),
        "softmax bwd": (lambda v: T._softmax_bwd(s, v, scale), s),
        "softmax bwd, reduce": (lambda v: sm_bwd_reduce(s, v, scale), s),
    }
    out = {}
    for name, (call, value) in kernels.items():
        @tf.function(autograph=False)
        def chained(v, call=call):
            for _ in range(CHAIN):
                v = call(v)
            return v

        out[name] = _time(lambda: chained(value).numpy()) / CHAIN  # noqa: B023
    return out


def _time(fn, reps: int = 7, calls: int = 5) -> float:
    """Median milliseconds of `calls` calls of fn, over `reps` repetitions, after a warm-up."""
    fn()
    times = []
    for _ in range(reps):
        tic = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - tic) / calls * 1e3)
    return statistics.median(times)


def _torch() -> dict[str, float]:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return {}
    torch.set_num_threads(os.cpu_count() or 1)
    if torch.get_num_interop_threads() != 1:  # settable once per process, before any work
        torch.set_num_interop_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(TOKENS, D, generator=g, requires_grad=True)
    gamma = torch.randn(D, generator=g, requires_grad=True)
    beta = torch.randn(D, generator=g, requires_grad=True)
    h = torch.randn(TOKENS, MLP, generator=g, requires_grad=True)
    s = torch.randn(BATCH, HEADS, SEQ, SEQ, generator=g, requires_grad=True)
    mask = torch.ones(SEQ, SEQ, dtype=torch.bool).tril()
    cases = {
        "layer norm": (lambda: F.layer_norm(x, (D,), gamma, beta, 1e-5), x),
        "bias + GELU": (lambda: F.gelu(h), h),  # the bias add is in the matmul there
        "softmax": (lambda: torch.softmax((s * SCALE).masked_fill(~mask, -1e9), -1), s),
    }
    out = {}
    for name, (fwd, value) in cases.items():
        dy = torch.randn_like(value)
        with torch.no_grad():
            out[f"{name} fwd"] = _time(fwd)
        out[f"{name} fwd + bwd"] = _time(lambda: fwd().backward(dy))  # noqa: B023
    return out


def _width(width: str) -> dict[str, float]:
    """The kernels' milliseconds in a child process whose XLA prefers `width`-bit vectors."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_cpu_prefer_vector_width={width}"}
    done = subprocess.run([sys.executable, "-m", "scripts.bench_islands", "--child"], env=env,
                          check=True, capture_output=True, text=True, cwd=harness.ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


COLUMNS = ("kernel (ms per call)", "XLA, 256-bit", "XLA, 512-bit", "PyTorch")


def table_rows(record: dict) -> list[dict]:
    """The results file's table: every kernel at both widths (with PyTorch's where it has
    the same kernel), then forward + backward against XLA's reduce and PyTorch."""
    med, theirs = record["ms_per_call"], record.get("torch_ms") or {}
    rows = [dict(zip(COLUMNS, (k, med["256"][k], med["512"][k], theirs.get(k)), strict=True))
            for k in med["256"]]
    for name in ("layer norm", "bias + GELU", "softmax"):
        red = ", reduce" if name != "bias + GELU" else ""
        before = med["256"][f"{name} fwd{red}"] + med["256"][f"{name} bwd{red}"]
        now = med["256"][f"{name} fwd"] + med["256"][f"{name} bwd"]
        wide = med["512"][f"{name} fwd"] + med["512"][f"{name} bwd"]
        reduce_note = f" (XLA's reduce: {before:.3f}, {before / now:.2f}x)" if red else ""
        rows.append(dict(zip(COLUMNS, (
            f"{name} fwd + bwd{reduce_note}", now, f"{wide:.3f} ({now / wide:.2f}x)",
            theirs.get(f"{name} fwd + bwd")), strict=True)))
    return rows


def main() -> None:
    parser = harness.arguments("bench_islands", __doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child()))
        return
    run = harness.Run("bench_islands", args.out)
    measured = harness.alternate(
        {"256": lambda: _width("256"), "512": lambda: _width("512"), "torch": _torch},
        args.rounds, on_value=lambda side, _: print(f"bench_islands: {side} done",
                                                    file=sys.stderr))
    runs = {w: measured.values[w] for w in ("256", "512")}
    torch_runs = measured.values["torch"]
    med = {w: {k: statistics.median(run[k] for run in rs) for k in rs[0]}
           for w, rs in runs.items()}
    torch_med = ({k: statistics.median(run[k] for run in torch_runs) for k in torch_runs[0]}
                 if torch_runs and torch_runs[0] else {})
    results = {"ms_per_call": med, "torch_ms": torch_med, "rounds": args.rounds, "raw": runs}
    path = run.write(results, table_rows, COLUMNS)
    print(report.table(table_rows(results), COLUMNS))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
