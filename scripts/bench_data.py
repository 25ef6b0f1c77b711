"""Input pipelines against what the model consumes, per source, in one run.

    python -m scripts.bench_data [--reps 3] [--out FILE.json]

For image_folder (PNG files the script writes), csv (a table it writes) and text (this
Python's standard library), it measures the training pipeline alone (examples/s: shuffle,
batch, prefetch, and decoding for images, cold on the first epoch and then cached) and the
default model's training consumption on the same data (examples/s of bigtrain's loop), and
prints their ratio, the two alternating `--reps` times (medians). The target is a pipeline
>= 3x what the model consumes.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bigtrain.data.inspect import pipeline_examples_per_sec  # noqa: E402
from scripts import harness, report  # noqa: E402
from scripts.bench_engine import components, time_bigtrain  # noqa: E402
from scripts.workloads import DIGITS_BATCH  # noqa: E402


def write_images(root: Path, classes: int = 10, per_class: int = 100) -> Path:
    rng = np.random.default_rng(0)
    for k in range(classes):
        d = root / f"class{k}"
        d.mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
            (d / f"{i}.png").write_bytes(tf.io.encode_png(img).numpy())
    return root


def write_table(path: Path, rows: int = 20000) -> Path:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"x{i}" for i in range(16)] + ["colour", "label"])
        for _ in range(rows):
            x = rng.normal(size=16)
            w.writerow([f"{v:.4f}" for v in x] + [rng.choice(["r", "g", "b"]),
                                                  int(x[0] + x[1] > 0)])
    return path


def measure(name: str, overrides: list[str], reps: int, tmp: Path) -> dict:
    _, c = components(overrides, tmp / f"{name}-model")
    batch = DIGITS_BATCH
    cold = pipeline_examples_per_sec(c.splits, batch, batches=min(
        50, c.splits.steps_per_epoch(batch) - 4))
    med = harness.alternate({
        "pipeline": lambda: pipeline_examples_per_sec(c.splits, batch),
        "model_consumes": lambda: batch / time_bigtrain(c, batch, 40, 10),
    }, reps).medians()
    out = {"pipeline_first_epoch": cold, **med}
    out["ratio"] = out["pipeline"] / out["model_consumes"]
    out["ratio_first_epoch"] = cold / out["model_consumes"]
    return out


COLUMNS = ("source + default model", "pipeline, first epoch ex/s", "pipeline ex/s",
           "model consumes ex/s", "ratio", "ratio, first epoch")


def table_rows(record: dict) -> list[dict]:
    """The results file's table: a row per source."""
    return [dict(zip(COLUMNS, (name, r["pipeline_first_epoch"], r["pipeline"],
                               r["model_consumes"], f"{r['ratio']:.1f}x",
                               f"{r['ratio_first_epoch']:.1f}x"), strict=True))
            for name, r in harness.payload(record).items()
            if isinstance(r, dict) and "ratio" in r]


def main() -> None:
    parser = harness.arguments("bench_data", __doc__)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    run = harness.Run("bench_data", args.out)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        images = write_images(tmp / "images")
        table = write_table(tmp / "table.csv")
        cases = {
            "image_folder + cnn": ["dataset=image_folder", f"dataset.path={images}",
                                   "model=cnn"],
            "csv + mlp": ["dataset=csv", f"dataset.path={table}", "dataset.label=label",
                          "model=mlp"],
            "text (stdlib, bytes) + transformer": ["dataset=text_stdlib",
                                                   "dataset.max_chars=1000000",
                                                   "model=transformer"],
        }
        tic = time.perf_counter()
        results = {k: measure(k.split()[0], v, args.reps, tmp) for k, v in cases.items()}
    path = run.write(results, table_rows, COLUMNS)
    print(report.table(table_rows(results), COLUMNS))
    print(f"\n({time.perf_counter() - tic:.0f} s; written to {path})")


if __name__ == "__main__":
    main()
