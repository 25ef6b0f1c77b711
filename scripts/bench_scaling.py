"""How an LM's training cost grows with model size and sequence length, on this machine.

Each size preset (conf/model/size/: tiny, small, base, and gpt2_small where it exists) at
sequence 128 and 512 trains a few steps of `bigtrain fit` on synthetic LM tokens, each in its
own child process. The tokens per step are the same everywhere (`--tokens`, default 4,096:
batch 32 at 128, 8 at 512), so the figures compare per token. From each run's summary.json:
tokens/s and MFU of the last log interval (the first interval, with the step's tracing, is
left out), training FLOPs per token; from the kernel: the child's peak RSS.

    python scripts/bench_scaling.py [--steps 6] [--sizes tiny,small,base,gpt2_small]

Writes results/bench_scaling.json and prints a markdown table; records the load average
(os.getloadavg) before and after, since the cores may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "bigtrain.cli.main"]
#: a small parent per run, so the child's peak RSS is its own (see scripts/bench.py)
RSS_WRAPPER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], "
               "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
               "_, status, usage = os.wait4(p.pid, 0); "
               "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)")


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
    r = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *CLI, *args], capture_output=True,
                       text=True, cwd=tmp, check=True)
    code, kib = map(int, r.stdout.split())
    summary = json.loads((run_dir / "summary.json").read_text())
    if code != 0:
        raise RuntimeError(f"{size} at {seq} failed (exit {code}): {summary.get('error')}")
    flops = summary["flops"] or {}
    per_example = flops.get("train_flops_per_example") or 0
    return {"size": size, "seq_len": seq, "batch": batch, "params": summary["params"],
            "tokens_per_sec": summary["tokens_per_sec"], "mfu": summary["mfu"],
            "train_flops_per_token": per_example / seq, "peak_flops": flops.get("peak_flops"),
            "precision": flops.get("precision"), "peak_rss_mib": kib / 1024,
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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="tiny,small,base,gpt2_small")
    ap.add_argument("--seqs", default="128,512")
    ap.add_argument("--tokens", type=int, default=4096, help="tokens per step")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", default=str(ROOT / "scripts" / "results" / "bench_scaling.json"))
    a = ap.parse_args()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes_present(a.sizes.split(",")):
            for seq in map(int, a.seqs.split(",")):
                rows.append(run_one(size, seq, a.tokens, a.steps, Path(tmp)))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cores": len(os.sched_getaffinity(0)),
              "load_before": load_before, "load_after": os.getloadavg(), "steps": a.steps,
              "tokens_per_step": a.tokens, "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(rows))
    print(f"\nload average before {load_before[0]:.1f}, after {result['load_after'][0]:.1f} "
          f"on {result['cores']} cores; {a.out}")


if __name__ == "__main__":
    main()
