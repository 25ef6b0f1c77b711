"""Each model's recipe: final validation accuracy and wall time, one run after another.

    python scripts/bench_models.py [--seeds 1] [--models a,b,...]
    python scripts/bench_models.py --seeds 3 --models transformer_default,rnn_default,image_folder

Runs `bigtrain fit <recipe>` (digits unless the recipe names a dataset) with
`trainer.seed=0..seeds-1`, reads each run's summary.json, merges the figures into
results/bench_models.json (recipes not run keep their entries) and prints a markdown table:
seed 0, and the mean and min over the seeds. The `*_default` recipes and `image_folder` are the
plain commands with every default (12 epochs, batch 32, adam at 2e-3 constant, precision=auto).

`image_folder` trains on a folder built here from scikit-learn's two bundled photos
(`load_sample_images()`: china.jpg, flower.jpg): 60 random square crops of each (a quarter to
0.6 of the shorter side, random left-right flip), 96x96, alternately JPEG and PNG, one class
per photo; the folder is the same for every seed (its own seed 0), the split follows the seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--models", default=",".join(RECIPES),
                        help="comma-separated recipe names (default: all)")
    parser.add_argument("--out", default="scripts/results/bench_models.json")
    args = parser.parse_args()
    names = args.models.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    out = Path(args.out)
    results: dict[str, dict] = json.loads(out.read_text()) if out.exists() else {}
    with tempfile.TemporaryDirectory() as d:
        photos = None
        if any(PHOTOS in " ".join(RECIPES[n]) for n in names):
            photos = make_photo_folder(Path(d) / "photos")
        for name in names:
            accs, test_accs, walls = [], [], []
            for seed in range(args.seeds):
                run = Path(d) / f"{name}-{seed}"
                cmd = [sys.executable, "-m", "bigtrain.cli.main", "fit", *recipe(name, photos),
                       f"trainer.seed={seed}", "trainer.progress=none",
                       "trainer.monitor=val_accuracy", f"hydra.run.dir={run}"]
                tic = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                walls.append(time.perf_counter() - tic)
                summary = json.loads((run / "summary.json").read_text())
                accs.append(summary["final"]["val_accuracy"])
                test_accs.append(summary["final"]["test_accuracy"])
                print(f"  {name} seed {seed}: val {accs[-1]:.4f} test {test_accs[-1]:.4f} "
                      f"wall {walls[-1]:.1f}s", flush=True)
            results[name] = {"overrides": RECIPES[name], "val_accuracy": statistics.mean(accs),
                             "val_accuracy_min": min(accs), "val_accuracy_seeds": accs,
                             "test_accuracy": statistics.mean(test_accs),
                             "wall_s": statistics.mean(walls), "target": TARGETS[name],
                             "seeds": args.seeds, "date": time.strftime("%Y-%m-%d")}
            r = results[name]
            print(f"{name}: val {r['val_accuracy']:.4f} (min {r['val_accuracy_min']:.4f}) "
                  f"test {r['test_accuracy']:.4f} wall {r['wall_s']:.1f}s", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| recipe | overrides | seeds | val acc seed 0 | val acc mean | val acc min "
          "| test acc mean | target | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        r = results[name]
        low = r["val_accuracy_min"]
        mark = ("met" if low >= r["target"] else
                "mean met, min missed" if r["val_accuracy"] >= r["target"] else "MISSED")
        print(f"| {name} | `{' '.join(r['overrides']) or '(none)'}` | {r['seeds']} | "
              f"{r['val_accuracy_seeds'][0]:.3f} | {r['val_accuracy']:.3f} | {low:.3f} | "
              f"{r['test_accuracy']:.3f} | >= {r['target']:.2f} ({mark}) | {r['wall_s']:.1f} |")


if __name__ == "__main__":
    main()
