"""How an LM's training cost grows with model size and sequence length, on this machine.

Each size preset (conf/model/size/: tiny, small, base, and gpt2_small where it exists) at
sequence 128 and 512 trains a few steps of `bigtrain fit` on synthetic LM tokens, each in its
own child process. The tokens per step are the same everywhere (`--tokens`, default 4,096:
batch 32 at 128, 8 at 512), so the figures compare per token. From each run's summary.json:
tokens/s and MFU of the last log interval (the first interval, with the step's tracing, is
left out), training FLOPs per token; from the kernel: the child's peak RSS.

    python -m scripts.bench_scaling [--steps 6] [--sizes tiny,small,base,gpt2_small]

Writes a results file of the run (scripts/harness.py: the machine and its load average before
and after, since the cores may be shared) and prints a markdown table.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from scripts import harness

ROOT = harness.ROOT
CLI = harness.BIGTRAIN
COLUMNS = ("size", "params", "seq_len", "batch", "tokens_per_sec", "mfu",
           "train_flops_per_token", "peak_rss_mib", "precision", "wall_s")


def sizes_present(asked: list[str]) -> list[str]:
    have = {p.stem for p in (ROOT / "conf" / "model" / "size").glob("*.yaml")}
    missing = [s for s in asked if s not in have]
    if missing:
        print(f"not in conf/model/size/, left out: {', '.join(missing)}", file=sys.stderr)
    return [s for s in asked if s in have]


def run_one(size: str, seq: int, tokens: int, steps: int, tmp: Path) -> dict:
    batch = max(1, tokens // seq)
    half = max(1, steps // 2)
    run_dir = tmp / f"{size}-{seq}"
    args = ["fit", "model=transformer", f"model/size={size}", "dataset=synthetic",
            "dataset.task=lm", "dataset.vocab_size=256", f"dataset.seq_len={seq}",
            f"dataset.num_examples={max(200, batch * (steps + 1) * 10 // 8)}",
            f"trainer.batch_size={batch}", f"trainer.max_steps={steps}",
            f"trainer.log_every={half}", f"trainer.steps_per_loop={half}",
            f"trainer.eval_every={steps}", f"trainer.checkpoint_every={steps}",
            "trainer.eval_batch_size=8", "trainer.progress=none", "logger=[]",
            f"hydra.run.dir={run_dir}"]
    tic = time.perf_counter()
    code, peak = harness.peak_rss_mib([*CLI, *args], cwd=tmp)  # the child's own peak
    summary = json.loads((run_dir / "summary.json").read_text())
    if code != 0:
        raise RuntimeError(f"{size} at {seq} failed (exit {code}): {summary.get('error')}")
    flops = summary["flops"] or {}
    per_example = flops.get("train_flops_per_example") or 0
    return {"size": size, "seq_len": seq, "batch": batch, "params": summary["params"],
            "tokens_per_sec": summary["tokens_per_sec"], "mfu": summary["mfu"],
            "train_flops_per_token": per_example / seq, "peak_flops": flops.get("peak_flops"),
            "precision": flops.get("precision"), "peak_rss_mib": peak,
            "wall_s": round(time.perf_counter() - tic, 1)}


def markdown(rows: list[dict]) -> str:
    lines = ["| size | params | seq | batch | tokens/s | MFU | train MFLOP/token | peak RSS |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['params'] / 1e6:.2f}M | {r['seq_len']} | {r['batch']} "
                     f"| {r['tokens_per_sec']:,.0f} | {100 * (r['mfu'] or 0):.1f}% | "
                     f"{r['train_flops_per_token'] / 1e6:,.1f} | {r['peak_rss_mib']:,.0f} MiB |")
    return "\n".join(lines)


def main() -> None:
    ap = harness.arguments("bench_scaling", __doc__)
    ap.add_argument("--sizes", default="tiny,small,base,gpt2_small")
    ap.add_argument("--seqs", default="128,512")
    ap.add_argument("--tokens", type=int, default=4096, help="tokens per step")
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    run = harness.Run("bench_scaling", a.out)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes_present(a.sizes.split(",")):
            for seq in map(int, a.seqs.split(",")):
                rows.append(run_one(size, seq, a.tokens, a.steps, Path(tmp)))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    path = run.write({"steps": a.steps, "tokens_per_step": a.tokens, "rows": rows},
                     columns=COLUMNS)
    print(markdown(rows))
    print(f"\nload average before {run.machine['loadavg'][0]:.1f}, after "
          f"{os.getloadavg()[0]:.1f} on {run.machine['cores']} cores; {path}")


if __name__ == "__main__":
    main()
