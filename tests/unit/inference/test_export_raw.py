"""Exports that take raw inputs and load anywhere: for a CSV table with string labels, an image
folder (CNN: FusedBatchNorm) and a text-classification run, the SavedModel and the .keras file
are loaded in a fresh Python process where bigtrain cannot be imported, fed raw held-out
inputs, and must give `bigtrain predict`'s answers and `bigtrain eval --data`'s accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import read_json, run_cli
from serving_data import read_csv, write_images, write_table, write_texts

pytestmark = pytest.mark.slow

FIT = ["trainer.progress=none", "logger=[]", "strategy.precision=fp32", "trainer.batch_size=16",
       "optim.lr=0.01", "trainer.eval_every=10", "hydra.run.dir=run"]

RUNS = {
    "table": ["dataset=csv", "dataset.path=data/train.csv", "dataset.label=kind", "model=mlp",
              "model.hidden=[32]", "trainer.max_steps=60"],
    "image": ["dataset=image_folder", "dataset.path=data/train", "dataset.image_size=[12,12]",
              "model=cnn", "model.widths=[8]", "trainer.max_steps=30"],
    "text": ["dataset=text_classification", "dataset.path=data/train.csv",
             "dataset.max_len=48", "model=cnn", "model.widths=[8]", "trainer.max_steps=30"],
}

# Runs where `import bigtrain` fails: plain TensorFlow and Keras, raw inputs, and the
# preprocessing.json beside the .keras file (implemented here from its documented format).
PLAIN = r'''
import csv, json, sys
try:
    import bigtrain
except ImportError:
    pass
else:
    sys.exit("bigtrain was importable")
import keras
import numpy as np
import tensorflow as tf

kind, savedmodel, keras_file, pre_file, out = sys.argv[1:6]
inputs = sys.argv[6:]
pre = json.load(open(pre_file, encoding="utf-8"))
spec = pre["input"]
ids, labels = [], []
if kind == "table":
    rows = list(csv.DictReader(open(inputs[0], newline="", encoding="utf-8")))
    ids = [str(i + 1) for i in range(len(rows))]
    labels = [r[spec["label"]] for r in rows]
    missing = set(spec["missing_values"])
    def is_missing(v):
        return v.strip().lower() in missing
    feed, parts = {}, []
    for c in spec["columns"]:
        cells = [r[c["name"]] for r in rows]
        if c["type"] == "numeric":
            feed[c["key"]] = tf.constant([np.nan if is_missing(v) else float(v) for v in cells],
                                         tf.float32)
            parts.append([[0.0 if is_missing(v) else (float(v) - c["mean"]) / c["std"]]
                          for v in cells])
        else:
            feed[c["key"]] = tf.constant(cells)
            vocab = c["vocabulary"]
            hot = np.zeros((len(cells), len(vocab) + 1))
            for i, v in enumerate(cells):
                hot[i, len(vocab) if is_missing(v) or v not in vocab else vocab.index(v)] = 1
            parts.append(hot)
    x = np.concatenate([np.asarray(p, np.float64) for p in parts], axis=1).astype("float32")
    strings = {c["key"]: tf.constant([r[c["name"]] for r in rows]) for c in spec["columns"]}
elif kind == "image":
    ids = inputs
    labels = [p.split("/")[-2] for p in inputs]
    blobs = [open(p, "rb").read() for p in inputs]
    feed = {"images": tf.constant(blobs)}
    def load(b):
        img = tf.io.decode_image(b, channels=spec["channels"], expand_animations=False)
        img = tf.cast(img, tf.float32) / spec["scale"]
        return tf.image.resize(img, (spec["height"], spec["width"])).numpy()
    x = np.stack([load(b) for b in blobs])
else:
    rows = list(csv.DictReader(open(inputs[0], newline="", encoding="utf-8")))
    ids = [str(i + 1) for i in range(len(rows))]
    labels = [r[spec["label"]] for r in rows]
    texts = [r[spec["column"]].encode("utf-8") for r in rows]
    feed = {"texts": tf.constant(texts)}
    n = spec["max_len"]
    x = np.full((len(texts), n), spec["pad_id"], np.int32)
    for i, t in enumerate(texts):
        ids_ = np.frombuffer(t[:n], np.uint8).astype(np.int32) + spec["byte_offset"]
        x[i, :len(ids_)] = ids_

model = tf.saved_model.load(savedmodel)
answer = model.signatures["serving_default"](**feed)
result = {"signatures": sorted(model.signatures), "ids": ids, "labels": labels,
          "classes": [c.decode() for c in answer["classes"].numpy()],
          "probabilities": answer["probabilities"].numpy().tolist(),
          "dtypes": {k: v.dtype.name for k, v in answer.items()},
          "bigtrain_loaded": any(m.startswith("bigtrain") for m in sys.modules)}
if kind == "table":
    again = model.signatures["serve_strings"](**strings)
    result["strings_classes"] = [c.decode() for c in again["classes"].numpy()]
k = keras.models.load_model(keras_file, safe_mode=True)
logits = np.asarray(k(x, training=False), np.float64)
p = np.exp(logits - logits.max(axis=1, keepdims=True))
result["keras_probabilities"] = (p / p.sum(axis=1, keepdims=True)).tolist()
result["keras_classes"] = [pre["classes"][i] for i in p.argmax(axis=1)]
json.dump(result, open(out, "w"))
'''


def without_bigtrain(tmp: Path) -> dict[str, str]:
    """An environment in which `import bigtrain` fails: a `bigtrain.py` that raises
    ImportError shadows the installed package (PYTHONPATH comes before site-packages and the
    editable install's finder), and the process runs in a directory without the repo."""
    stub = tmp / "stub"
    stub.mkdir(exist_ok=True)
    (stub / "bigtrain.py").write_text("raise ImportError('bigtrain is not installed here')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BIGTRAIN_DEBUG")}
    env.update(PYTHONPATH=str(stub), TF_CPP_MIN_LOG_LEVEL="2")
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """runs(kind) -> (workdir, held-out inputs): trained with `bigtrain fit` and exported both
    ways on first use, then shared by the tests of this module (in this worker)."""
    from bigtrain.inference.restore import export_run

    done: dict[str, tuple[Path, Path]] = {}

    def get(kind: str) -> tuple[Path, Path]:
        if kind not in done:
            root = tmp_path_factory.mktemp(kind)
            maker = {"table": write_table, "image": write_images, "text": write_texts}[kind]
            _, held = maker(root / "data")
            fit = run_cli("fit", *RUNS[kind], *FIT, cwd=root)
            assert fit.returncode == 0, fit.stderr[-2000:]
            export_run(root / "run", "savedmodel")
            export_run(root / "run", "keras")
            done[kind] = (root, held)
        return done[kind]

    return get


def test_the_stub_makes_bigtrain_unimportable(tmp_path):
    p = subprocess.run([sys.executable, "-c", "import tensorflow, keras, bigtrain"],
                       cwd=tmp_path, env=without_bigtrain(tmp_path), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode != 0 and "bigtrain is not installed here" in p.stderr


@pytest.mark.parametrize("kind", list(RUNS))
def test_exports_load_without_bigtrain_and_agree_with_predict_and_eval(runs, kind, tmp_path):
    root, held = runs(kind)
    run = root / "run"
    predict = run_cli("predict", "run", str(held), "--out", "p.jsonl", cwd=root)
    assert predict.returncode == 0, predict.stderr[-2000:]
    answers = [json.loads(line) for line in (root / "p.jsonl").read_text().splitlines()]
    evaluated = run_cli("eval", "run", "--data", str(held), cwd=root)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    # the checkpoint eval, predict and export chose by default (auto): the same for all three
    (eval_file,) = run.glob(f"eval_data-{held.stem}_*.json")
    eval_accuracy = read_json(eval_file)["metrics"]["accuracy"]

    if kind == "image":
        inputs = sorted(str(p) for p in held.rglob("*") if p.is_file())
    else:
        inputs = [str(held)]
    script = tmp_path / "plain.py"
    script.write_text(PLAIN)
    result_file = tmp_path / "result.json"
    plain = subprocess.run(
        [sys.executable, str(script), kind, str(run / "export" / "savedmodel"),
         str(run / "export" / "model.keras"), str(run / "export" / "model.preprocessing.json"),
         str(result_file), *inputs],
        cwd=tmp_path, env=without_bigtrain(tmp_path), capture_output=True, text=True,
        timeout=300)
    assert plain.returncode == 0, plain.stderr[-3000:]
    result = json.loads(result_file.read_text())
    assert not result["bigtrain_loaded"]
    assert result["signatures"] == (["serve", "serve_strings", "serving_default"]
                                    if kind == "table" else ["serve", "serving_default"])
    assert result["dtypes"]["probabilities"] == "float32"
    assert result["dtypes"]["logits"] == "float32" and result["dtypes"]["classes"] == "string"

    # the SavedModel answers what `bigtrain predict` answered, input by input
    assert len(answers) == len(result["classes"])
    if kind == "image":  # predict walks the folder in sorted order, as the script does
        assert [a["id"] for a in answers] == inputs
    assert [a["class"] for a in answers] == result["classes"]
    probs = np.array(result["probabilities"])
    np.testing.assert_allclose([a["probability"] for a in answers], probs.max(axis=1),
                               atol=2e-6)
    # the .keras file with preprocessing.json applied by hand: the same model
    np.testing.assert_allclose(result["keras_probabilities"], probs, atol=1e-4)
    assert result["keras_classes"] == result["classes"]
    if kind == "table":
        assert result["strings_classes"] == result["classes"]
    # and the accuracy `bigtrain eval --data` measured
    labels = result["labels"]
    accuracy = np.mean([c == y for c, y in zip(result["classes"], labels, strict=True)])
    assert accuracy == pytest.approx(eval_accuracy, abs=1e-9)
    assert f"{eval_accuracy:.6g}" in evaluated.stdout
    # a validation split this small is no ground to choose by: all take the latest, and say so
    assert "latest checkpoint" in evaluated.stdout and "latest checkpoint" in predict.stderr
    assert "too small to choose by" in predict.stderr
    if kind != "image":
        assert f"accuracy {accuracy:.4f}" in predict.stderr
    assert accuracy >= 0.7, (kind, accuracy)  # raw inputs are read as in training


def test_an_image_that_does_not_decode_is_named_or_skipped(runs):
    root, held = runs("image")
    broken = root / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    good = sorted(str(p) for p in held.rglob("*.png"))[:3]
    p = run_cli("predict", "run", *good, str(broken), cwd=root)
    assert p.returncode == 2, p.stderr[-2000:]
    assert f"INPUT: {broken} is not a readable image" in p.stderr and "Traceback" not in p.stderr
    # the decoder's own words, not graph-mode framing ("Graph execution error:")
    reason = p.stderr.split("is not a readable image (", 1)[1].split(")")[0]
    assert reason and "Graph execution error" not in reason, p.stderr
    s = run_cli("predict", "run", *good, str(broken), "--on-bad", "skip", "--out", "s.csv",
                cwd=root)
    assert s.returncode == 0, s.stderr[-2000:]
    assert [r["id"] for r in read_csv(root / "s.csv")] == good
    assert "left out 1 bad input(s)" in s.stderr
