"""PyTorch references of the models bigtrain's benchmarks train, for measuring side by side.

    python -m scripts.bench_torch [--only lm,gpt2,cnn,rnn] [--steps 10] [--no-compile]
    python -m scripts.bench_torch --check     # the LM's loss over 30 steps, parameter counts

What a PyTorch user writes for the same shapes: a hand-written loop (forward, cross-entropy,
backward, Adam step), `torch.optim.Adam(fused=True)` where the build supports it (else
`foreach=True`), bf16 through `torch.autocast`, and each model also through `torch.compile`.

- `lm`: workloads.LM_SMALL (scripts/bench.py, bench_engine.py): vocab 256, seq 128, d_model
  256, 4 layers, 4 heads, MLP ratio 4, batch 32. The blocks are bigtrain's transformer (pre-norm,
  one QKV projection, exact GELU, learned positions, a final norm, logits through the tied
  embedding), attention through `scaled_dot_product_attention(is_causal=True)`. Tokens from
  a sparse random Markov chain, as bigtrain's `dataset=synthetic dataset.task=lm` makes.
- `gpt2`: the same LM at GPT-2-small shape (workloads.GPT2_SMALL, `model/size=gpt2_small`:
  d 768, 12 layers, 12 heads, GPT-2's 50,257-token vocabulary), at seq 128, batch 8 on a CPU
  (`lm_bench` takes any shape, device and AdamW: the model for scripts/bench_gpu.py's PyTorch
  row on a GPU).
- `cnn`: bigtrain's default `model=cnn` on digits (8x8x1): a stem conv, one residual block at
  width 32 and one at 64 (stride 2, 1x1 projection), batch norm (momentum 0.8 in Keras's
  sense, epsilon 1e-3), ReLU, global average pooling, dropout 0.1, a dense head; batch 32.
- `rnn`: `model=rnn`: two GRU layers of 128 units over the image's 8 rows, the last state
  into a dense head; batch 32.

Throughput is steady state: warm-up steps (tracing and compilation among them) are left out,
then the timed steps, synchronised at the end (`loss.item()`, and the CUDA stream on a GPU).
The LM's GFLOP/s use workloads.lm_flops_per_token, the count scripts/bench.py uses for
bigtrain.
Threads: all cores for intra-op work and one inter-op thread, as bench.py sets TensorFlow.
PyTorch's OpenMP threads wait for each other at every op, so on cores that other processes
share they lose far more than TensorFlow's pool does (on 2 busy cores, 2 threads ran the
digits CNN 4-50x slower than 1 thread): measure on a quiet machine.

torch.compile notes: its first step compiles (tens of seconds per model and precision on 2
cores; Inductor's on-disk cache makes later runs' first steps short); TorchDynamo leaves
`nn.GRU` to eager mode (`torch._dynamo.config.allow_rnn` is off), so the rnn's compiled
variant compiles only the head.

Alone, the throughput rows go to a results file (scripts/harness.py's layout, or --out);
`--check` prints its figures only. Without torch this module still imports (AVAILABLE is
False): bench.py and bench_gpu.py then skip the PyTorch rows.
"""

from __future__ import annotations

import json
import os
import time
import types

from scripts import harness, report
from scripts.workloads import GPT2_SMALL, LM_SMALL, LMShape, lm_flops_per_token

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # bench.py and bench_gpu.py import this module without torch too
    torch = F = None
    nn = types.SimpleNamespace(Module=object)  # the classes below are defined, never built

AVAILABLE = torch is not None
PRECISIONS = ("fp32", "bf16")


def configure_threads(threads: int | None = None) -> int:
    """All cores for intra-op work (TensorFlow's default) and one inter-op thread (what
    bench.py sets TensorFlow to); returns the intra-op count."""
    threads = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already ran: it stays as it is
        pass
    return threads


def param_counts(model: nn.Module) -> dict:
    """Trainable parameters, and all weights with batch norm's moving statistics (Keras
    counts those as non-trainable weights; PyTorch keeps them as buffers)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stats = sum(b.numel() for name, b in model.named_buffers()
                if name.endswith(("running_mean", "running_var")))
    return {"trainable": trainable, "total": trainable + stats}


# models ------------------------------------------------------------------------------------


def _keras_init(module: nn.Module) -> None:
    """Keras's initialisers, so both sides start alike: Glorot-uniform kernels, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Block(nn.Module):
    """A pre-norm transformer block as bigtrain's: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, d_model: int, heads: int, mlp_ratio: int):
        super().__init__()
        d = d_model
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-5), nn.LayerNorm(d, eps=1e-5)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, mlp_ratio * d), nn.Linear(mlp_ratio * d, d)

    def forward(self, hidden):
        x = hidden
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True)  # [B, H, T, Dh]
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))  # exact GELU (erf)


class TorchLM(nn.Module):
    """bigtrain's `model=transformer` language model: learned positions, pre-norm blocks, a
    final norm, logits through the tied token embedding. Under autocast the head runs in
    the autocast dtype, as PyTorch code usually leaves it (bigtrain computes its logits in
    float32); the loss is taken in float32 either way."""

    def __init__(self, shape: LMShape):
        super().__init__()
        s = shape
        self.tok, self.pos = nn.Embedding(s.vocab, s.d_model), nn.Embedding(s.seq, s.d_model)
        self.blocks = nn.ModuleList(Block(s.d_model, s.heads, s.mlp_ratio)
                                    for _ in range(s.layers))
        self.ln = nn.LayerNorm(s.d_model, eps=1e-5)
        _keras_init(self)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, ids):
        x = self.tok(ids) + self.pos.weight[: ids.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln(x) @ self.tok.weight.T  # tied embeddings


class ResBlock(nn.Module):
    """bigtrain's CNN block: conv-bn-relu-conv-bn plus a (projected) shortcut, then relu."""

    def __init__(self, cin: int, width: int, stride: int, kernel: int, bn: dict):
        super().__init__()
        k = kernel
        self.conv1 = nn.Conv2d(cin, width, k, stride, padding=k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(width, **bn)
        self.conv2 = nn.Conv2d(width, width, k, padding=k // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(width, **bn)
        self.proj = None
        if stride != 1 or cin != width:
            self.proj = nn.Sequential(nn.Conv2d(cin, width, 1, stride, bias=False),
                                      nn.BatchNorm2d(width, **bn))

    def forward(self, images):
        x = images
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.proj is None else self.proj(x)))


class DigitsCNN(nn.Module):
    """bigtrain's `model=cnn` (conf/model/cnn.yaml) on 8x8x1 images: widths [32, 64], one
    block per stage, kernel 3, relu, batch-norm momentum 0.8 (Keras's: the old statistics'
    weight; PyTorch's momentum is the new batch's, 0.2), dropout 0.1. NCHW, PyTorch's default
    layout. A stride-2 'same' convolution pads 1 on each side here, TensorFlow 0 before and 1
    after: other pixels, the same shapes and cost."""

    def __init__(self, widths=(32, 64), blocks_per_stage: int = 1, kernel: int = 3,
                 bn_momentum: float = 0.8, dropout: float = 0.1, classes: int = 10):
        super().__init__()
        k = kernel
        bn = {"momentum": 1.0 - bn_momentum, "eps": 1e-3}  # Keras's epsilon
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], k, padding=k // 2, bias=False),
                                  nn.BatchNorm2d(widths[0], **bn), nn.ReLU())
        blocks, cin, size = [], widths[0], 8
        for s, width in enumerate(widths):
            for b in range(blocks_per_stage):
                stride = 2 if (b == 0 and s > 0 and size > 1) else 1
                blocks.append(ResBlock(cin, width, stride, k, bn))
                cin, size = width, -(-size // stride)
        self.blocks = nn.Sequential(*blocks)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(cin, classes)
        _keras_init(self)

    def forward(self, images):  # [B, 8, 8]
        x = self.blocks(self.stem(images[:, None]))
        return self.head(self.drop(x.mean((2, 3))))


class DigitsGRU(nn.Module):
    """bigtrain's `model=rnn` (conf/model/rnn.yaml): a 2-layer GRU of 128 units reading the
    8x8 image row by row, its last output into a dense head. PyTorch's GRU has Keras's
    `reset_after=True` form (an input and a recurrent bias per gate), so the counts agree."""

    def __init__(self, features: int = 8, units: int = 128, layers: int = 2, classes: int = 10):
        super().__init__()
        self.gru = nn.GRU(features, units, num_layers=layers, batch_first=True)
        self.head = nn.Linear(units, classes)

    def forward(self, rows):  # [B, T=8, F=8]
        out, _ = self.gru(rows)
        return self.head(out[:, -1])


# data ----------------------------------------------------------------------------------------


def markov_tokens(shape: LMShape, count: int, seed: int = 0, noise: float = 0.1):
    """`count` sequences of seq + 1 tokens from a sparse random Markov chain (4 successors per
    token, `noise` of the tokens uniform), the structure of bigtrain's synthetic LM data."""
    s, n = shape, count
    g = torch.Generator().manual_seed(seed)
    successors = torch.randint(0, s.vocab, (s.vocab, 4), generator=g)
    seq = torch.empty((n, s.seq + 1), dtype=torch.long)
    seq[:, 0] = torch.randint(0, s.vocab, (n,), generator=g)
    for t in range(1, s.seq + 1):
        pick = torch.randint(0, 4, (n,), generator=g)
        noisy = torch.rand(n, generator=g) < noise
        seq[:, t] = torch.where(noisy, torch.randint(0, s.vocab, (n,), generator=g),
                                successors[seq[:, t - 1], pick])
    return seq


def digits_images():
    """scikit-learn's 8x8 digits scaled to [0, 1] (bigtrain's `dataset=digits`)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (torch.tensor(bunch.images, dtype=torch.float32) / 16.0,
            torch.tensor(bunch.target, dtype=torch.long))


# timing --------------------------------------------------------------------------------------


def make_adam(params, lr: float, device: str, kind: str = "adam"):
    """Adam (or AdamW) with the fused kernel where this build runs it on `device`, else the
    multi-tensor (foreach) one; returns (optimizer, which)."""
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    params = list(params)
    try:  # a one-step probe: some builds take fused=True and fail only at the first step
        probe = torch.zeros(1, device=device, requires_grad=True)
        probe.grad = torch.zeros_like(probe)
        cls([probe], lr=lr, fused=True).step()
        return cls(params, lr=lr, fused=True), "fused"
    except (RuntimeError, ValueError, TypeError):
        return cls(params, lr=lr, foreach=True), "foreach"


AUTOCAST = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


class TrainBench:
    """One model, its optimizer and fixed batches already on the device; `seconds_per_step`
    times a variant (precision, eager or compiled). The variants share the weights and the
    optimizer (each precision is only an autocast context; `torch.compile` wraps the same
    module), so memory holds one copy however many variants run."""

    def __init__(self, model: nn.Module, batches: list, units_per_step: int,
                 device: str = "cpu", lr: float = 2e-3, optimizer: str = "adam"):
        self.device = device
        self.model = model.to(device).train()
        self.batches = [(x.to(device), y.to(device)) for x, y in batches]
        self.units_per_step = units_per_step  # tokens (LM) or examples per step
        self.opt, self.opt_impl = make_adam(self.model.parameters(), lr, device, optimizer)
        self.scaler = None
        self.compiled = None
        self.first_step_s: dict[str, float] = {}  # per variant: the first step (compilation)
        self.failed: dict[str, str] = {}  # variants that could not run, with the reason
        self.loss = float("nan")
        self._i = 0

    def loss_of(self, forward, inputs, targets):
        logits = forward(inputs)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                               targets.reshape(-1))

    def step(self, forward, precision: str):
        x, y = self.batches[self._i % len(self.batches)]
        self._i += 1
        dtype = AUTOCAST[precision]
        with torch.autocast(self.device.split(":")[0], dtype=getattr(torch, dtype or "float32"),
                            enabled=dtype is not None):
            loss = self.loss_of(forward, x, y)
        self.opt.zero_grad(set_to_none=True)
        if precision == "fp16":  # loss scaling, as fp16 training needs
            self.scaler = self.scaler or torch.amp.GradScaler(self.device.split(":")[0])
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        return loss

    def sync(self, loss) -> float:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return float(loss.detach())  # waits for the step on any device

    @staticmethod
    def variant(precision: str, compiled: bool) -> str:
        return f"{'compile' if compiled else 'eager'}_{precision}"

    def seconds_per_step(self, precision: str, compiled: bool = False, steps: int = 20,
                         warmup: int = 3) -> float:
        """Seconds per training step after `warmup` untimed steps. A variant that fails
        (torch.compile on a machine without a working compiler, say) raises, and raises the
        same error at once on later calls."""
        name = self.variant(precision, compiled)
        if name in self.failed:
            raise RuntimeError(self.failed[name])
        try:
            if compiled and self.compiled is None:
                self.compiled = torch.compile(self.model)
            forward = self.compiled if compiled else self.model
            for i in range(warmup):
                tic = time.perf_counter()
                loss = self.step(forward, precision)
                if i == 0 and name not in self.first_step_s:
                    self.sync(loss)
                    self.first_step_s[name] = time.perf_counter() - tic
            self.sync(loss)
        except Exception as e:  # any failure of a variant is its result, not the run's end
            self.failed[name] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
            raise RuntimeError(self.failed[name]) from e
        tic = time.perf_counter()
        for _ in range(steps):
            loss = self.step(forward, precision)
        self.loss = self.sync(loss)
        return (time.perf_counter() - tic) / steps


def lm_bench(shape: LMShape = LM_SMALL, device: str = "cpu", lr: float = 2e-3,
             optimizer: str = "adam", seed: int = 0, num_batches: int = 8) -> TrainBench:
    """The LM of `shape` with `num_batches` batches of Markov-chain tokens (bigtrain's
    `optim=adam` learning rate by default)."""
    torch.manual_seed(seed)
    tokens = markov_tokens(shape, shape.batch * num_batches, seed)
    batches = [(b[:, :-1], b[:, 1:]) for b in tokens.split(shape.batch)]
    return TrainBench(TorchLM(shape), batches, shape.batch * shape.seq, device, lr, optimizer)


def digits_bench(model: str, batch: int = 32, device: str = "cpu", seed: int = 0) -> TrainBench:
    """`cnn` or `rnn` on shuffled digits batches of `batch` (bigtrain's default 32)."""
    torch.manual_seed(seed)
    x, y = digits_images()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n = len(x) // batch * batch
    batches = list(zip(x[order[:n]].split(batch), y[order[:n]].split(batch), strict=True))
    net = DigitsCNN() if model == "cnn" else DigitsGRU()
    return TrainBench(net, batches, batch, device)


def matmul_peak(precision: str, size: int = 1024, reps: int = 20,
                device: str = "cpu") -> float:
    """GFLOP/s of a chain of square matmuls: PyTorch's counterpart of
    bigtrain.strategy.peaks.measure_cpu_peak (harness.matmul_peak_gflops), TensorFlow's."""
    n = size
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn((n, n), device=device).to(dtype)
    scale = torch.tensor(1e-3, dtype=dtype, device=device)

    def chain(x):
        for _ in range(reps):
            x = torch.matmul(x, a) * scale
        return x

    with torch.no_grad():
        chain(a)
        best = float("inf")
        for _ in range(3):
            tic = time.perf_counter()
            out = chain(a)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            float(out[0, 0])
            best = min(best, time.perf_counter() - tic)
    return 2 * n**3 * reps / best / 1e9


# the command line ----------------------------------------------------------------------------


def check(steps: int = 30) -> dict:
    """The LM's fp32 loss at the first and the last of `steps` steps on its Markov chain
    (it should fall well below the first), and the digits models' parameter counts."""
    b = lm_bench()
    losses = [b.sync(b.step(b.model, "fp32")) for _ in range(steps)]
    return {"lm_loss_every_5": [round(v, 3) for v in losses[::5] + losses[-1:]],
            "lm_loss_falls": losses[-1] < losses[0] - 0.3,
            "lm_params": param_counts(b.model),
            "cnn_params": param_counts(DigitsCNN()), "rnn_params": param_counts(DigitsGRU())}


def table_rows(record: dict) -> list[dict]:
    """The results file's table: a row per model and variant."""
    return record["variants"]


def main() -> None:
    parser = harness.arguments("bench_torch", __doc__)
    parser.add_argument("--only", default="lm,cnn,rnn", help="of lm, gpt2, cnn, rnn")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (gpt2: a third)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="eager variants only")
    parser.add_argument("--check", action="store_true", help="loss over 30 steps, counts")
    args = parser.parse_args()
    if not AVAILABLE:
        raise SystemExit("bench_torch: torch is not importable (pip install '.[bench]')")
    threads = configure_threads()
    print(f"PyTorch {torch.__version__}, {threads} threads", flush=True)
    if args.check:
        print(json.dumps(check(), indent=2))
        return
    run = harness.Run("bench_torch", args.out)
    variants = []
    for part in args.only.split(","):
        if part in ("lm", "gpt2"):
            shape = LM_SMALL if part == "lm" else GPT2_SMALL
            b, steps, flops = lm_bench(shape), args.steps, lm_flops_per_token(shape)
            if part == "gpt2":
                steps = max(1, steps // 3)
        else:
            b, steps, flops = digits_bench(part), args.steps * 4, None
        unit = "tokens/s" if flops else "examples/s"
        params = param_counts(b.model)["trainable"]
        print(f"{part}: {params:,} parameters, Adam {b.opt_impl}", flush=True)
        for compiled in (False,) if args.no_compile else (False, True):
            for precision in PRECISIONS:
                name = b.variant(precision, compiled)
                row = {"model": part, "variant": name, "unit": unit, "params": params,
                       "adam": b.opt_impl}
                try:
                    rate = b.units_per_step / b.seconds_per_step(precision, compiled, steps,
                                                                 args.warmup)
                except RuntimeError as e:
                    print(f"  {name:12s} failed: {e}", flush=True)
                    variants.append({**row, "failed": str(e)})
                    continue
                variants.append({**row, "rate": rate,
                                 "gflops": rate * flops / 1e9 if flops else None,
                                 "loss": b.loss, "first_step_s": b.first_step_s[name]})
                gflops = f", {rate * flops / 1e9:6.1f} GFLOP/s" if flops else ""
                print(f"  {name:12s} {rate:>10,.0f} {unit}{gflops}, loss {b.loss:.3f}, first "
                      f"step {b.first_step_s[name]:.1f} s", flush=True)
    results = {"torch": torch.__version__, "threads": threads, "steps": args.steps,
               "warmup": args.warmup, "variants": variants}
    print(report.table(table_rows(results)))
    print(f"\nwritten to {run.write(results, table_rows)}")


if __name__ == "__main__":
    main()
