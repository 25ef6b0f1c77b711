"""Predictions per second of `bigtrain predict` on raw inputs: CSV rows and image files.

    python -m scripts.bench_predict [--rows 5000] [--images 2000] [--reps 5] [--out FILE.json]

The script writes a table (scikit-learn's breast-cancer features, resampled with noise to
`--rows` rows, string labels) and a folder of 32x32 PNGs, trains a small run on each with
`bigtrain fit` (mlp on the table, the default cnn on the images), then measures:

  - `bigtrain predict RUN INPUT --out FILE` end to end, as a user runs it (wall seconds,
    start-up, TensorFlow import and model build included) and the rate it reports;
  - in-process, median of `--reps` alternating repetitions: reading and checking the raw
    inputs, and the answers per second of the serving function (preprocessing in the graph
    + the model), traced first;
  - the exported SavedModel's `serving_default` on the same raw inputs, in-process (tables:
    numbers as float32), and for tables `serve_strings` (every cell a string, as predict
    reads a CSV).

Results go to a results file of the run (scripts/harness.py).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts import harness, report

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CLI = harness.BIGTRAIN
FIT = ["trainer.progress=none", "logger=[]", "hydra.run.dir=run"]


def write_table(path: Path, rows: int) -> Path:
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(d.data), size=rows)
    x = d.data[pick] * rng.normal(1, 0.02, size=(rows, d.data.shape[1]))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*d.feature_names, "diagnosis"])
        for xi, y in zip(x, d.target[pick], strict=True):
            w.writerow([f"{v:.5g}" for v in xi] + [d.target_names[y]])
    return path


def write_images(root: Path, count: int) -> Path:
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(1)
    for i in range(count):
        name, level = [("dark", 70), ("light", 180)][i % 2]
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        img = np.clip(rng.normal(level, 40, size=(32, 32, 3)), 0, 255).astype(np.uint8)
        (d / f"{i}.png").write_bytes(tf.io.encode_png(img).numpy())
    return root


def cli(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    tic = time.perf_counter()
    proc = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    if proc.returncode:
        sys.exit(f"bigtrain {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return wall, proc


def reported_rate(stderr: str) -> float:
    line = next(ln for ln in stderr.splitlines() if ln.startswith("predicted "))
    return float(line.rsplit(", ", 1)[1].split("/s")[0].replace(",", ""))


def measure(name: str, root: Path, fit_args: list[str], inputs: list[str], reps: int) -> dict:
    import tensorflow as tf

    from bigtrain.inference import predict as predicting
    from bigtrain.inference.inputs import read_inputs
    from bigtrain.inference.restore import export_run, open_run

    fit_wall, _ = cli(["fit", *fit_args, *FIT], root)
    wall, proc = cli(["predict", "run", *inputs, "--out", "p.csv"], root)
    r = open_run(root / "run")
    data = read_inputs(r.preprocessing, [str(root / i) for i in inputs])
    n = len(data)
    saved = tf.saved_model.load(str(export_run(root / "run", "savedmodel")))
    columns = r.preprocessing["input"]["columns"] if data.kind == "table" else []
    signatures = {"serving_default": (
        {c["key"]: tf.constant([float(v) for v in data.cells[c["key"]]], tf.float32)
         for c in columns} if columns else {"images": tf.constant(data.blobs)})}
    if columns:  # what predict calls: every cell a string
        signatures["serve_strings"] = {c["key"]: tf.constant(data.cells[c["key"]])
                                       for c in columns}
    batched = {sig: [{k: v[i:i + 256] for k, v in feed.items()} for i in range(0, n, 256)]
               for sig, feed in signatures.items()}
    for sig, batches in batched.items():
        saved.signatures[sig](**batches[0])  # traced before timing
    state = {"data": data}

    def read() -> float:
        tic = time.perf_counter()
        state["data"] = read_inputs(r.preprocessing, [str(root / i) for i in inputs])
        return time.perf_counter() - tic

    def predict() -> float:
        result = predicting.run(r, state["data"])
        return len(result.ids) / result.seconds

    def serve(sig: str) -> float:
        fn = saved.signatures[sig]
        tic = time.perf_counter()
        for b in batched[sig]:
            fn(**b)
        return n / (time.perf_counter() - tic)

    sides = {"read": read, "predict": predict}
    sides.update({sig: lambda sig=sig: serve(sig) for sig in batched})
    med = harness.alternate(sides, reps).medians()  # a busy moment hits every path alike
    out = {
        "inputs": n,
        "fit_wall_s": round(fit_wall, 2),
        "cli_predict_wall_s": round(wall, 2),
        "cli_end_to_end_per_s": round(n / wall, 1),
        "cli_reported_per_s": reported_rate(proc.stderr),
        "read_inputs_s": round(med["read"], 3),
        "predict_per_s": round(med["predict"], 1),
    }
    for sig in batched:
        out[f"savedmodel_{sig}_per_s"] = round(med[sig], 1)
    print(f"{name}: {json.dumps(out)}", flush=True)
    return out


def main() -> None:
    ap = harness.arguments("bench_predict", __doc__)
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    run = harness.Run("bench_predict", args.out)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        table = Path(tmp) / "table"
        table.mkdir()
        write_table(table / "cancer.csv", args.rows)
        results["csv_mlp"] = measure(
            "csv + mlp", table, ["dataset=csv", "dataset.path=cancer.csv",
                                 "dataset.label=diagnosis", "model=mlp",
                                 "trainer.max_steps=100"], ["cancer.csv"], args.reps)
        images = Path(tmp) / "images"
        write_images(images / "train", 200)
        write_images(images / "predict", args.images)
        results["image_folder_cnn"] = measure(
            "image_folder + cnn", images, ["dataset=image_folder", "dataset.path=train",
                                           "trainer.max_steps=30"], ["predict"], args.reps)
    path = run.write(results, table_rows)
    print(report.table(table_rows(results)))
    print(f"wrote {path}")


def table_rows(record: dict) -> list[dict]:
    """The results file's table: a row per input kind."""
    rows = []
    for key, label in (("csv_mlp", "csv + mlp"), ("image_folder_cnn", "image_folder + cnn")):
        r = record.get(key)
        if r:
            rows.append({"inputs": f"{label} ({r['inputs']:,})",
                         "bigtrain predict, end to end /s": r["cli_end_to_end_per_s"],
                         "its reported rate /s": r["cli_reported_per_s"],
                         "in-process predict /s": r["predict_per_s"],
                         "reading inputs s": r["read_inputs_s"],
                         "SavedModel serving_default /s": r.get(
                             "savedmodel_serving_default_per_s"),
                         "SavedModel serve_strings /s": r.get("savedmodel_serve_strings_per_s"),
                         "fit wall s": r["fit_wall_s"]})
    return rows


if __name__ == "__main__":
    main()
