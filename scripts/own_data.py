"""Right answers on a user's own table with the default command: bigtrain beside the model-free
baseline and scikit-learn, on the same held-out rows.

    python -m scripts.own_data [--seeds 0 1 2] [--out FILE.json]

For each table (scikit-learn's bundled diabetes with raw, unscaled features; wine; iris) and
each seed: 20% of the rows are held out (seeded), the other 80% written as a CSV, and a user's
first command runs on it, `bigtrain fit dataset=csv dataset.path=train.csv dataset.label=target`
(nothing else: the defaults choose the model, the scaling, the length), then
`bigtrain eval RUN --data heldout.csv` scores the held-out rows with the run's default
checkpoint. On the same rows: the baseline (the training rows' mean, or their most frequent
class) and a reference fitted on the same 80%: `Ridge(alpha=1.0)` on the raw features
(regression), `StandardScaler` + `LogisticRegression(max_iter=1000)` (classification).

Then iris (150 rows) with `dataset.folds=5`: the cross-validated accuracy's mean and spread
over the folds, as summary.json records them.

Results go to a results file of the run (scripts/harness.py); `ratio` is bigtrain's MAE over
Ridge's (lower is better), or bigtrain's accuracy over the reference's (higher is better).
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from scripts import harness

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
TABLES = ("diabetes", "wine", "iris")


def load(name: str):
    from sklearn import datasets

    if name == "diabetes":
        return datasets.load_diabetes(scaled=False)
    return {"wine": datasets.load_wine, "iris": datasets.load_iris}[name]()


def write(path: Path, names, x, y) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*names, "target"])
        w.writerows([*(f"{v:g}" for v in row), f"{t:g}"] for row, t in zip(x, y, strict=True))
    return path


def bigtrain(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([*harness.BIGTRAIN, *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bigtrain {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out


def one(name: str, seed: int, work: Path) -> dict:
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, mean_absolute_error
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = load(name)
    regression = name == "diabetes"
    x_tr, x_te, y_tr, y_te = train_test_split(
        d.data, d.target, test_size=0.2, random_state=seed,
        stratify=None if regression else d.target)
    here = work / f"{name}-{seed}"
    here.mkdir()
    write(here / "train.csv", d.feature_names, x_tr, y_tr)
    write(here / "heldout.csv", d.feature_names, x_te, y_te)
    bigtrain("fit", "dataset=csv", "dataset.path=train.csv", "dataset.label=target",
             "trainer.progress=none", "hydra.run.dir=run", cwd=here)
    bigtrain("eval", "run", "--data", "heldout.csv", cwd=here)
    (scores,) = (here / "run").glob("eval_data-heldout_*.json")
    metrics = json.loads(scores.read_text())["metrics"]
    if regression:
        reference = mean_absolute_error(y_te, Ridge(alpha=1.0).fit(x_tr, y_tr).predict(x_te))
        mean = mean_absolute_error(y_te, np.full_like(y_te, y_tr.mean(), dtype=float))
        return {"table": name, "seed": seed, "metric": "mae", "bigtrain": metrics["mae"],
                "baseline": mean, "bigtrain_reported_baseline": metrics.get("baseline_mae"),
                "reference": float(reference), "reference_model": "Ridge(alpha=1.0)",
                "ratio": metrics["mae"] / reference}
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_tr, y_tr)
    reference = accuracy_score(y_te, model.predict(x_te))
    majority = np.bincount(y_tr.astype(int)).argmax()
    return {"table": name, "seed": seed, "metric": "accuracy", "bigtrain": metrics["accuracy"],
            "baseline": float(np.mean(y_te == majority)),
            "bigtrain_reported_baseline": metrics.get("baseline_accuracy"),
            "reference": float(reference), "reference_model": "LogisticRegression",
            "ratio": metrics["accuracy"] / reference}


def folds(work: Path, k: int = 5) -> dict:
    d = load("iris")
    here = work / "iris-folds"
    here.mkdir()
    write(here / "iris.csv", d.feature_names, d.data, d.target)
    bigtrain("fit", "dataset=csv", "dataset.path=iris.csv", "dataset.label=target",
             f"dataset.folds={k}", "trainer.progress=none", "hydra.run.dir=cv", cwd=here)
    summary = json.loads((here / "cv" / "summary.json").read_text())
    return {"rows": len(d.target), "folds": summary["folds"],
            "val_accuracy_mean": summary["final"]["val_accuracy"],
            "val_accuracy_spread": summary["spread"]["val_accuracy"],
            "val_baseline_accuracy_mean": summary["final"].get("val_baseline_accuracy"),
            "per_fold_val_accuracy": [
                json.loads((here / "cv" / f"fold-{i}" / "summary.json").read_text())["final"][
                    "val_accuracy"] for i in range(summary["folds"])]}


def main() -> None:
    parser = harness.arguments("own_data", __doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    run = harness.Run("own_data", args.out)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in TABLES:
            for seed in args.seeds:
                rows.append(one(name, seed, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
        means = []
        for name in TABLES:
            mine = [r for r in rows if r["table"] == name]
            mean = {k: statistics.mean(r[k] for r in mine)
                    for k in ("bigtrain", "baseline", "reference")}
            means.append({"table": name, "metric": mine[0]["metric"], "seed": "mean",
                          **mean, "reference_model": mine[0]["reference_model"],
                          "ratio": mean["bigtrain"] / mean["reference"]})
        cv = folds(Path(tmp))
    path = run.write({"per_seed": rows, "k_fold": cv}, rows=means,
                     columns=["table", "metric", "bigtrain", "baseline", "reference",
                              "reference_model", "ratio"])
    print(json.dumps({"means": means, "k_fold": cv}, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
