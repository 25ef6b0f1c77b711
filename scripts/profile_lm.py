"""Where a training step of workloads.LM_SMALL spends its time: TensorFlow profiler, per op type.

    python -m scripts.profile_lm [--gpt2 | --hub] [--precision bf16] [--steps 10] [--top 25]
                                 [--out FILE.json]

Builds the LM of scripts/bench.py with bigtrain, warms it up, traces `--steps` steps with
`tf.profiler.experimental` and sums the op events of the CPU plane of the trace ("name:Type")
by op type, leaving out control-flow containers whose time is their ops' time; the model's
XLA-compiled islands show as one row, "XLA islands". Prints milliseconds per step, share of
op time and ops per step, and the matmuls split into dense layers and attention, forward and
gradient; writes them to a results file of the run (scripts/harness.py, or --out).
"""

from __future__ import annotations

import collections
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from scripts import harness  # noqa: E402
from scripts.bench_engine import batches, components  # noqa: E402
from scripts.workloads import GPT2_SMALL, GPT2_SMALL_RUN, LM_SMALL, LM_SMALL_RUN  # noqa: E402

CONTAINERS = {"While", "StatelessWhile", "If", "StatelessIf", "PartitionedCall",
              "StatefulPartitionedCall"}  # their time is their ops' time


def op_events(logdir: Path):
    """(op name, op type, duration ps) for every TensorFlow op event in the trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    for pb in logdir.rglob("*.xplane.pb"):
        space = xplane_pb2.XSpace()
        space.ParseFromString(pb.read_bytes())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            names = {k: m.name for k, m in plane.event_metadata.items()}
            for line in plane.lines:
                for ev in line.events:
                    name = names.get(ev.metadata_id, "")
                    if name == "CpuExecutable::ExecuteAsyncOnStream":
                        yield "xla", "XLA islands", ev.duration_ps
                        continue
                    op_name, _, op_type = name.rpartition(":")
                    # op events are "name:Type"; runtime events are "Class::method"
                    op_type = op_type.strip()
                    if (not op_name or "::" in name or op_type in CONTAINERS
                            or op_type.startswith("__inference")):
                        continue
                    yield op_name, op_type, ev.duration_ps


def main() -> None:
    parser = harness.arguments("profile_lm", __doc__)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--override", nargs="*", default=[])
    parser.add_argument("--hub", action="store_true",
                        help="the LoRA fine-tuning of scripts/bench_hub.py (a GPT-2 shaped "
                             "KerasHub preset made here, batch 16) instead of the LM")
    parser.add_argument("--gpt2", action="store_true",
                        help="the LM at GPT-2-small shape of scripts/bench.py (batch 8)")
    args = parser.parse_args()
    run = harness.Run("profile_lm", args.out)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        batch, seq = LM_SMALL.batch, LM_SMALL.seq
        overrides = [*LM_SMALL_RUN, f"strategy.precision={args.precision}", *args.override]
        if args.gpt2:
            overrides = [*GPT2_SMALL_RUN, f"strategy.precision={args.precision}",
                         *args.override]
            batch, seq = GPT2_SMALL.batch, GPT2_SMALL.seq
        if args.hub:
            from scripts import bench_hub
            from scripts.workloads import gpt2_preset

            preset = gpt2_preset(tmp / "gpt2", **bench_hub.SHAPE)
            overrides = bench_hub.lm_overrides(preset, args.precision, *args.override)
            batch, seq = bench_hub.BATCH, bench_hub.SEQ
        _, c = components(overrides, tmp / "run")
        it = iter(c.strategy.experimental_distribute_dataset(batches(c, batch)))
        for _ in range(3):
            c.engine.train_steps(it, 1)
        tic = time.perf_counter()
        for _ in range(args.steps):
            c.engine.train_steps(it, 1)
        wall = (time.perf_counter() - tic) / args.steps
        tf.profiler.experimental.start(str(tmp / "prof"))
        for _ in range(args.steps):
            c.engine.train_steps(it, 1)
        tf.profiler.experimental.stop()
        by_type: dict[str, float] = collections.Counter()
        count: dict[str, int] = collections.Counter()
        matmul_by_layer: dict[str, float] = collections.Counter()
        for op_name, op_type, ps in op_events(tmp / "prof"):
            by_type[op_type] += ps
            count[op_type] += 1
            if "MatMul" in op_type:
                kind = "attention" if "BatchMatMul" in op_type else "dense"
                grad = "grad" if op_name.startswith("gradient_tape") else "fwd"
                matmul_by_layer[f"{kind} ({grad})"] += ps
    total = sum(by_type.values())
    n = args.steps
    print(f"precision {args.precision}: {1e3 * wall:.1f} ms/step wall, "
          f"{batch * seq / wall:,.0f} tokens/s, op time {total / n / 1e9:.1f} ms/step")
    print(f"{'op type':34s} {'ms/step':>8s} {'share':>6s} {'ops/step':>8s}")
    rows = []
    for op_type, ps in sorted(by_type.items(), key=lambda kv: -kv[1])[:args.top]:
        rows.append({"op": op_type, "ms_per_step": ps / n / 1e9, "share": ps / total,
                     "ops_per_step": count[op_type] / n})
        print(f"{op_type:34s} {ps / n / 1e9:8.2f} {100 * ps / total:5.1f}% "
              f"{count[op_type] / n:8.1f}")
    print("\nmatmuls")
    for k, ps in sorted(matmul_by_layer.items(), key=lambda kv: -kv[1]):
        print(f"  {k:30s} {ps / n / 1e9:8.2f} ms/step")
    model = "gpt2_small" if args.gpt2 else "hub_lora" if args.hub else "lm_small"
    path = run.write({"model": model, "precision": args.precision,
                      "ms_per_step_wall": 1e3 * wall, "op_ms_per_step": total / n / 1e9,
                      "ops": rows, "matmuls": {k: v / n / 1e9 for k, v in matmul_by_layer.items()}},
                     table_rows)
    print(f"\nwritten to {path}")


def table_rows(record: dict) -> list[dict]:
    """The results file's table: the op types by time per step, then the matmuls by kind."""
    rows = [{"op type": r["op"], "ms/step": r["ms_per_step"], "share": f"{100 * r['share']:.1f}%",
             "ops/step": r["ops_per_step"]} for r in record["ops"]]
    rows += [{"op type": f"matmuls: {kind}", "ms/step": ms}
             for kind, ms in sorted(record.get("matmuls", {}).items(), key=lambda kv: -kv[1])]
    return rows


if __name__ == "__main__":
    main()
