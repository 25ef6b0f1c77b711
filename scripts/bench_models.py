"""Each model's recipe: final validation accuracy and wall time, one run after another.

    python -m scripts.bench_models [--seeds 1] [--models a,b,...]
    python -m scripts.bench_models --seeds 3 --models transformer_default,rnn_default,image_folder

Runs `bigtrain fit <recipe>` (digits unless the recipe names a dataset) with
`trainer.seed=0..seeds-1`, reads each run's summary.json, writes the recipes it ran to the
run's results file (scripts/harness.py; other runs' recipes stay in their own files) and
prints a markdown table: seed 0, and the mean and min over the seeds. The `*_default`
recipes and `image_folder` are the plain commands with every default (12 epochs, batch 32,
adam at 2e-3 constant, precision=auto).

`image_folder` trains on a folder built here from scikit-learn's two bundled photos
(`load_sample_images()`: china.jpg, flower.jpg): 60 random square crops of each (a quarter to
0.6 of the shorter side, random left-right flip), 96x96, alternately JPEG and PNG, one class
per photo; the folder is the same for every seed (its own seed 0), the split follows the seed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

# scripts.harness and scripts.report are imported in main():
# tests/scripts/test_bench_models.py loads this file by its path for RECIPES, recipe() and
# make_photo_folder()

PHOTOS = "{photos}"  # replaced by the generated photo folder

RECIPES = {
    "default": [],  # plain `bigtrain fit`: digits + cnn + adam, 12 epochs (target: >= 95%)
    "mlp": ["model=mlp", "trainer.epochs=30", "optim/schedule=cosine"],
    "cnn": ["model=cnn", "trainer.epochs=20", "optim/schedule=cosine"],
    "rnn": ["model=rnn", "model.cell=gru", "model.bidirectional=true", "trainer.epochs=30",
            "optim/schedule=cosine"],
    "transformer": ["model=transformer", "trainer.epochs=25", "optim/schedule=warmup_cosine"],
    # the defaults as they are (issue 15): no epochs, schedule or size set
    "transformer_default": ["model=transformer", "optim=adam"],
    "rnn_default": ["model=rnn"],
    # the defaults before issue 15, for the side-by-side accuracy and wall time
    "transformer_default_old": ["model=transformer", "optim=adam", "model.dropout=0.1",
                                "model.patch_size=2"],
    "rnn_default_old": ["model=rnn", "model.cell=lstm", "model.num_layers=1"],
    "image_folder": ["dataset=image_folder", f"dataset.path={PHOTOS}"],
    # the CNN's batch-norm momentum before issue 15's last step (0.9, ~10 steps' average; the
    # default is 0.8, ~5 steps), on the folder and on digits
    "image_folder_bn09": ["dataset=image_folder", f"dataset.path={PHOTOS}",
                          "model.bn_momentum=0.9"],
    "default_bn09": ["model.bn_momentum=0.9"],
}
TARGETS = {"default": 0.95, "mlp": 0.95, "cnn": 0.98, "rnn": 0.95, "transformer": 0.95,
           "transformer_default": 0.96, "rnn_default": 0.96, "transformer_default_old": 0.96,
           "rnn_default_old": 0.96, "image_folder": 0.95,
           "image_folder_bn09": 0.95, "default_bn09": 0.95}


def make_photo_folder(root: Path, per_class: int = 60, size: int = 96, seed: int = 0) -> Path:
    """Two classes of real photo content: random crops of scikit-learn's bundled photos."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    rng = np.random.default_rng(seed)
    root = Path(root)
    for filename, image in zip(data.filenames, data.images, strict=True):
        folder = root / Path(filename).stem
        folder.mkdir(parents=True, exist_ok=True)
        h, w = image.shape[:2]
        for i in range(per_class):
            side = int(min(h, w) * rng.uniform(0.25, 0.6))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = Image.fromarray(image[y:y + side, x:x + side]).resize((size, size),
                                                                        Image.BILINEAR)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            if i % 2:
                crop.save(folder / f"{i:03d}.png")
            else:
                crop.save(folder / f"{i:03d}.jpg", quality=90)
    return root


def recipe(name: str, photos: Path | None) -> list[str]:
    return [o.replace(PHOTOS, str(photos)) for o in RECIPES[name]]


COLUMNS = ("recipe", "overrides", "seeds", "val acc seed 0", "val acc mean", "val acc min",
           "test acc mean", "target", "wall s")


def table_rows(record: dict) -> list[dict]:
    """The results file's table: a row per recipe (older files: some without every seed's
    accuracy)."""
    rows = []
    recipes = record.get("recipes") or {  # older files: the recipes beside the harness's keys
        k: v for k, v in record.items() if isinstance(v, dict) and "val_accuracy" in v}
    for name, r in recipes.items():
        seeds = r.get("val_accuracy_seeds") or [None]
        low = r.get("val_accuracy_min", r["val_accuracy"])
        mark = ("met" if low >= r["target"] else
                "mean met, min missed" if r["val_accuracy"] >= r["target"] else "MISSED")
        rows.append(dict(zip(COLUMNS, (
            name, f"`{' '.join(r['overrides']) or '(none)'}`", r["seeds"], seeds[0],
            r["val_accuracy"], low, r["test_accuracy"], f">= {r['target']:.2f} ({mark})",
            r["wall_s"]), strict=True)))
    return rows


def main() -> None:
    from scripts import harness, report

    parser = harness.arguments("bench_models", __doc__)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--models", default=",".join(RECIPES),
                        help="comma-separated recipe names (default: all)")
    args = parser.parse_args()
    names = args.models.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    run = harness.Run("bench_models", args.out)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as d:
        photos = None
        if any(PHOTOS in " ".join(RECIPES[n]) for n in names):
            photos = make_photo_folder(Path(d) / "photos")
        for name in names:
            accs, test_accs, walls = [], [], []
            for seed in range(args.seeds):
                run_dir = Path(d) / f"{name}-{seed}"
                cmd = [*harness.BIGTRAIN, "fit", *recipe(name, photos), f"trainer.seed={seed}",
                       "trainer.progress=none", "trainer.monitor=val_accuracy",
                       f"hydra.run.dir={run_dir}"]
                tic = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                walls.append(time.perf_counter() - tic)
                summary = json.loads((run_dir / "summary.json").read_text())
                accs.append(summary["final"]["val_accuracy"])
                test_accs.append(summary["final"]["test_accuracy"])
                print(f"  {name} seed {seed}: val {accs[-1]:.4f} test {test_accs[-1]:.4f} "
                      f"wall {walls[-1]:.1f}s", flush=True)
            results[name] = {"overrides": RECIPES[name], "val_accuracy": statistics.mean(accs),
                             "val_accuracy_min": min(accs), "val_accuracy_seeds": accs,
                             "test_accuracy": statistics.mean(test_accs),
                             "wall_s": statistics.mean(walls), "target": TARGETS[name],
                             "seeds": args.seeds}
            r = results[name]
            print(f"{name}: val {r['val_accuracy']:.4f} (min {r['val_accuracy_min']:.4f}) "
                  f"test {r['test_accuracy']:.4f} wall {r['wall_s']:.1f}s", flush=True)
            run.write({"recipes": results}, table_rows, COLUMNS)
    path = run.write({"recipes": results}, table_rows, COLUMNS)
    print()
    print(report.table(table_rows({"recipes": results}), COLUMNS))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
