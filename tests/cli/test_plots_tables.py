"""Issue #18, plots and tables that say what they show: `--metric val_x` and `x` alike, each
curve in its panel; legends labelled by the overrides that differ, in full; one outlier does
not squash a loss axis; `bigtrain runs` marks a best per dataset and monitor."""

from __future__ import annotations

import json

import numpy as np
import yaml
from matplotlib.image import imread


def make_run(root, name, overrides, dataset, monitor, best, records, status="completed"):
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / "config.yaml").write_text(yaml.safe_dump({"dataset": dataset}))
    (d / "summary.json").write_text(json.dumps({
        "status": status, "monitor": monitor, "best": {monitor: best},
        "final": {monitor: best}, "steps": 60, "wall_s": 3.0}))
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return d


def curves(loss, val_loss, acc, val_acc):
    out = []
    for i, (lo, a) in enumerate(zip(loss, acc, strict=True)):
        out.append({"step": 10 * (i + 1), "loss": lo, "accuracy": a})
    for i, (vl, va) in enumerate(zip(val_loss, val_acc, strict=True)):
        out.append({"step": 10 * (i + 1), "val_loss": vl, "val_accuracy": va})
    return out


LONG = "dataset.path=/data/projects/very/long/path/to/the/shared/training/table.csv"


def sweep(tmp_path):
    root = tmp_path / "sweep"
    ds = {"name": "csv", "path": "/data/t.csv"}
    make_run(root, "0", [LONG, "optim.schedule.warmup=0.1", "optim.lr=0.001"], ds,
             "val_accuracy", 0.8, curves([2.3, 1.9, 1.6, 1.4, 1.2, 1.1],
                                         [2.3, 1.9, 1.5, 24.0, 1.2, 1.1],
                                         [0.2, 0.4, 0.5, 0.6, 0.7, 0.75],
                                         [0.2, 0.4, 0.5, 0.1, 0.7, 0.8]))
    make_run(root, "1", [LONG, "optim.schedule.warmup=0.1", "optim.lr=0.01"], ds,
             "val_accuracy", 0.85, curves([2.2, 1.8, 1.5, 1.3, 1.1, 1.0],
                                          [2.2, 1.8, 1.4, 1.3, 1.2, 1.0],
                                          [0.3, 0.5, 0.6, 0.7, 0.75, 0.8],
                                          [0.3, 0.5, 0.6, 0.7, 0.75, 0.85]))
    return root


def png_info(path) -> dict:
    from PIL import Image

    with Image.open(path) as im:
        return json.loads(im.text["bigtrain"])


def colored_pixels(img: np.ndarray, x0: float, x1: float) -> int:
    """Saturated (curve-coloured) pixels in a vertical band of the plotting area."""
    h, w = img.shape[:2]
    band = img[int(0.08 * h):int(0.7 * h), int(x0 * w):int(x1 * w), :3]
    return int(((band.max(axis=-1) - band.min(axis=-1)) > 0.3).sum())


def test_val_metric_and_metric_alike_put_each_curve_in_its_panel(cli, tmp_path):
    root = sweep(tmp_path)
    for metric in ("val_accuracy", "accuracy"):
        proc = cli("plot", "sweep", "--metric", metric)
        assert proc.returncode == 0, proc.stderr
        out = root / "plot_accuracy.png"
        assert f"wrote {out.relative_to(tmp_path)}" in proc.stdout
        info = png_info(out)
        assert info["panels"]["train"]["metric"] == "accuracy"
        assert info["panels"]["val"]["metric"] == "val_accuracy"
        assert len(info["panels"]["train"]["runs"]) == len(info["panels"]["val"]["runs"]) == 2
        img = imread(out)
        assert colored_pixels(img, 0.08, 0.45) > 200  # train curves drawn on the left
        assert colored_pixels(img, 0.58, 0.97) > 200  # validation curves drawn on the right


def test_legend_names_runs_by_what_differs_and_a_spike_does_not_squash_losses(cli, tmp_path):
    root = sweep(tmp_path)
    proc = cli("plot", "sweep", "--metric", "loss")
    assert proc.returncode == 0, proc.stderr
    info = png_info(root / "plot_loss.png")
    assert info["labels"] == ["lr=0.001", "lr=0.01"]  # only the override that differs, whole
    val = info["panels"]["val"]
    assert val["clipped"] == 1 and val["ylim"][1] < 3  # the 24 is marked, not scaled to
    assert "ylim" not in info["panels"]["train"]  # no outlier there: plain limits


def test_labels_keep_every_differing_override_whole():
    from bigtrain.run.plots import labels

    rows = [{"job": i, "overrides": {"dataset.path": p, "optim.schedule.warmup": w,
                                     "model.schedule.warmup": w}}
            for i, (p, w) in enumerate([("/a/very/long/common/prefix/of/a/path/one.csv", "0.1"),
                                        ("/a/very/long/common/prefix/of/a/path/two.csv", "0.1"),
                                        ("/a/very/long/common/prefix/of/a/path/one.csv", "0.1")])]
    got = labels(rows)
    assert got[0] == ("path=/a/very/long/common/prefix/of/a/path/one.csv "
                      "optim.schedule.warmup=0.1 model.schedule.warmup=0.1 (0)")
    assert len(set(got)) == 3  # runs alike in their overrides are told apart by their job


def test_runs_marks_a_best_per_dataset_and_monitor(cli, tmp_path):
    root = tmp_path / "outputs"
    digits = {"name": "digits"}
    make_run(root, "a", ["model=mlp"], digits, "val_accuracy", 0.90, [])
    make_run(root, "b", ["model=cnn"], digits, "val_accuracy", 0.95, [])
    make_run(root, "c", ["dataset=csv", "dataset.path=house.csv"],
             {"name": "csv", "path": "house.csv"}, "val_loss", 0.30, [])
    make_run(root, "d", ["dataset=csv", "dataset.path=house.csv", "optim.lr=1"],
             {"name": "csv", "path": "house.csv"}, "val_loss", 0.50, [])
    proc = cli("runs", "outputs", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["job"]: r for r in json.loads(proc.stdout)}
    assert {j: r["is_best"] for j, r in rows.items()} == {"a": False, "b": True, "c": True,
                                                          "d": False}
    table = cli("runs", "outputs")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any("b *" in ln and "digits" in ln for ln in lines), table.stdout
    assert any("c *" in ln and "csv house.csv" in ln for ln in lines), table.stdout
    assert "best of its dataset and monitor" in table.stdout
