"""model=hub: KerasHub presets fine-tuned in bigtrain's loop, with LoRA, checkpoints of what
is trained only, merged exports, and every engine guarantee. Presets are tiny ones the tests
make with KerasHub's own classes (hub_presets.py): no network."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import hub_presets
import numpy as np
import pytest
from helpers import checkpoint_tensors, read_json, read_jsonl, run_cli, run_workers, start_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    return {"gpt2": hub_presets.gpt2(root / "gpt2"), "bert": hub_presets.bert(root / "bert"),
            "resnet": hub_presets.resnet(root / "resnet")}


def lm_args(preset, *more: str) -> list[str]:
    return ["model=hub", f"model.preset={preset}", "dataset=synthetic", "dataset.task=lm",
            "dataset.vocab_size=263", "dataset.seq_len=32", "dataset.num_examples=320",
            "trainer.batch_size=16", "trainer.max_steps=12", "trainer.eval_every=6",
            "trainer.checkpoint_every=6", "trainer.log_every=1", "trainer.progress=none",
            "trainer.deterministic=true", "logger=[]", "strategy.precision=fp32", *more]


def typed(*overrides: str):
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed

    return to_typed(compose(list(overrides)))


def fit(run_dir, *overrides: str, hooks=()):

    from bigtrain.run.job import train

    return train(typed(*overrides), run_dir, extra_hooks=hooks)


def cli_fit(root, *args: str):
    """`bigtrain fit ARGS` in ROOT/run, as a user runs it: (run dir, summary)."""
    proc = run_cli("fit", *args, "hydra.run.dir=run", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "run", read_json(root / "run" / "summary.json")


LORA = ("model.lora_rank=2", "optim.lr=0.01")


@pytest.fixture(scope="module")
def lora_run(presets, tmp_path_factory):
    return cli_fit(tmp_path_factory.mktemp("lora"), *lm_args(presets["gpt2"], *LORA))


@pytest.fixture(scope="module")
def full_run(presets, tmp_path_factory):
    return cli_fit(tmp_path_factory.mktemp("full"), *lm_args(presets["gpt2"], "optim.lr=0.001"))


def _variables(prefix) -> dict[str, list[int]]:
    import tensorflow as tf

    return dict(tf.train.list_variables(str(prefix)))


def test_lora_trains_adapters_only_and_checkpoints_only_them(lora_run, full_run):
    run, summary = lora_run
    assert summary["status"] == "completed" and summary["steps"] == 12
    losses = [r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0]  # the adapters learn
    names = _variables(run / "checkpoints" / "ckpt-12")
    assert not any(n.startswith("model/") for n in names), "frozen weights were saved"
    trained = {n for n in names if n.startswith("trained/") and "OPTIMIZER_SLOT" not in n}
    assert trained and all("lora_kernel" in n or "bias" in n for n in trained), trained
    base = json.loads(checkpoint_tensors_raw(run / "checkpoints" / "ckpt-12", "base"))
    assert base["class"] == "GPT2Backbone" and len(base["sha256"]) == 64
    # what is trained, and what that costs on disk, against a full fine-tune
    full_dir, full = full_run
    assert summary["params"] <= 0.05 * full["params"]
    size = sum(f.stat().st_size for f in (run / "checkpoints").glob("ckpt-12.*"))
    full_size = sum(f.stat().st_size for f in (full_dir / "checkpoints").glob("ckpt-12.*"))
    assert size <= 0.10 * full_size, (size, full_size)


def checkpoint_tensors_raw(prefix, name: str) -> str:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    key = next(k for k in reader.get_variable_to_shape_map() if k.startswith(name + "/"))
    value = reader.get_tensor(key)
    return value.decode() if isinstance(value, bytes) else str(value)


def test_info_shows_trainable_and_total_parameters(presets, cli):
    proc = cli("info", *lm_args(presets["gpt2"], "model.lora_rank=4"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.replace(",", "")
    trainable = int(out.split("trainable parameters")[1].split()[0])
    frozen = int(out.split("non-trainable parameters")[1].split()[0])
    assert 0 < trainable < 0.1 * frozen


def test_a_different_base_is_refused_naming_both(presets, tmp_path):
    preset = tmp_path / "base"
    shutil.copytree(presets["gpt2"], preset)
    args = lm_args(preset, "model.lora_rank=2", "trainer.max_steps=6")
    fit(tmp_path / "run", *args)
    hub_presets.gpt2(preset, seed=1)  # same handle, other weights
    from bigtrain.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model\.preset.*trained on top of .*sha256 .* "
                                          r"the base model now is .*sha256"):
        fit(tmp_path / "run", *lm_args(preset, "model.lora_rank=2", "trainer.max_steps=8"))


def _adapted_outputs(run, tokens):
    from bigtrain.inference.restore import open_run

    r = open_run(run, "latest")
    return np.asarray(r.model(tokens, training=False))


def test_export_merges_adapters_savedmodel_keras_and_preset(lora_run, tmp_path):
    import keras
    import tensorflow as tf

    run, _ = lora_run
    tokens = np.random.default_rng(0).integers(0, 263, (3, 32)).astype("int32")
    adapted = _adapted_outputs(run, tokens)
    from bigtrain.inference.restore import export_run

    for fmt in ("savedmodel", "keras", "preset"):
        export_run(run, fmt, checkpoint="latest")
    saved = tf.saved_model.load(str(run / "export" / "savedmodel"))
    served = saved.signatures["serve"](inputs=tf.constant(tokens))
    logits = next(iter(served.values())).numpy()
    np.testing.assert_allclose(logits, adapted, atol=1e-5)
    loaded = keras.models.load_model(str(run / "export" / "model.keras"))
    assert not any("lora" in v.path for v in loaded.weights)  # merged, not carried
    np.testing.assert_allclose(np.asarray(loaded(tokens)), adapted, atol=1e-5)
    # the preset loads in a plain Python process (no bigtrain import), preprocessor included
    script = (
        "import sys, numpy as np, keras_hub\n"
        "m = keras_hub.models.CausalLM.from_preset(sys.argv[1])\n"
        "assert 'bigtrain' not in sys.modules\n"
        "t = np.load(sys.argv[2])\n"
        "out = m({'token_ids': t, 'padding_mask': np.ones_like(t, bool)})\n"
        "np.save(sys.argv[3], np.asarray(out))\n"
        "print(type(m.preprocessor).__name__, repr(m.generate('the', max_length=8)))\n")
    np.save(tmp_path / "t.npy", tokens)
    proc = subprocess.run([sys.executable, "-c", script, str(run / "export" / "preset"),
                           str(tmp_path / "t.npy"), str(tmp_path / "o.npy")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("GPT2CausalLMPreprocessor")
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), adapted, atol=1e-5)


def test_preset_format_is_for_hub_runs_only(tmp_path):
    from bigtrain.core.errors import ConfigError
    from bigtrain.inference.restore import export_run

    run, _ = cli_fit(tmp_path, "debug=smoke", "model=mlp", "model.hidden=[8]", "logger=[]",
                     "trainer.progress=none")
    with pytest.raises(ConfigError, match="--format: preset writes a KerasHub preset, for runs "
                                          "of model=hub; .* trained model=mlp"):
        export_run(run, "preset")


@pytest.mark.parametrize("extra, key, words", [
    (["model.preset=gpt2_bass_en"], "model.preset", "Built-in names like it: gpt2_base_en"),
    (["model.lora_rank=4", "model.lora_targets=[nothing_here]"], "model.lora_targets",
     "layers that can take adapters: .*query"),
    (["dataset.seq_len=100"], "dataset.seq_len", "beyond .* maximum sequence length \\(64\\)"),
    (["dataset.vocab_size=100"], "dataset", "vocabulary of 100 tokens"),
])
def test_bad_input_is_a_config_error_naming_the_key(presets, tmp_path, extra, key, words):
    from bigtrain.core.errors import ConfigError
    from bigtrain.train.fit import build

    args = [a for a in lm_args(presets["gpt2"])
            if not any(a.split("=")[0] == e.split("=")[0] for e in extra)]
    with pytest.raises(ConfigError, match=words) as ex:
        build(typed(*args, *extra), tmp_path / "run")
    assert ex.value.key == key


def test_a_missing_preset_exits_2_in_one_line_and_leaves_no_run(presets, cli, tmp_path):
    args = [a for a in lm_args(presets["gpt2"]) if not a.startswith("model.preset")]
    proc = cli("fit", *args, "model.preset=/no/such/preset", "hydra.run.dir=run")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "model.preset" in last and "/no/such/preset is not a directory" in last, last
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_preset_that_does_not_fit_the_task_is_refused(presets, tmp_path):
    from bigtrain.core.errors import ConfigError
    from bigtrain.train.fit import build

    with pytest.raises(ConfigError, match="BertBackbone, which has no KerasHub CausalLM"):
        build(typed(*lm_args(presets["bert"]), "dataset.vocab_size=77"), tmp_path / "run")


def test_fetching_a_preset_offline_is_a_clear_error(monkeypatch):
    from keras_hub.src.utils import preset_utils

    from bigtrain.core.errors import ConfigError
    from bigtrain.models import hub

    def offline(preset, path):
        raise ConnectionError("Failed to resolve 'www.kaggle.com'")

    monkeypatch.setattr(preset_utils, "get_file", offline)
    for handle in ("gpt2_base_en", "kaggle://keras/gpt2/keras/gpt2_base_en", "hf://x/y"):
        with pytest.raises(ConfigError, match=r"cannot fetch .*could not be reached.*local "
                                              r"preset.*Failed to resolve"):
            hub.locate(handle)


def test_the_offline_error_quotes_the_whole_first_line(monkeypatch):
    """What requests says offline is long, its reason at the end: quoted whole, not cut."""
    from keras_hub.src.utils import preset_utils

    from bigtrain.core.errors import ConfigError
    from bigtrain.models import hub

    said = ("HTTPSConnectionPool(host='api.kaggle.com', port=443): Max retries exceeded with "
            "url: /v1/models.ModelApiService/DownloadModelInstanceVersion (Caused by "
            "NameResolutionError(\"<urllib3.connection.HTTPSConnection object at 0x7f3a>: "
            "Failed to resolve 'api.kaggle.com' ([Errno -3] Temporary failure in name "
            "resolution)\"))")

    def offline(preset, path):
        raise ConnectionError(said + "\nmore lines")

    monkeypatch.setattr(preset_utils, "get_file", offline)
    with pytest.raises(ConfigError) as ex:
        hub.locate("gpt2_base_en")
    assert str(ex.value).endswith(said), str(ex.value)
    assert "\n" not in str(ex.value)

    def babbling(preset, path):  # a line too long to quote: cut at a word, with an ellipsis
        raise ConnectionError("word " * 400)

    monkeypatch.setattr(preset_utils, "get_file", babbling)
    with pytest.raises(ConfigError, match=r"The error: (word ){150,}\.\.\.$"):
        hub.locate("gpt2_base_en")


def test_a_preset_the_hub_does_not_have_is_not_called_a_network_error(monkeypatch):
    """KerasHub raises FileNotFoundError for a missing preset (and for an unreachable hf://
    hub): the message says both, and a bug in the hub's code is not dressed up as either."""
    from keras_hub.src.utils import preset_utils

    from bigtrain.core.errors import ConfigError
    from bigtrain.models import hub

    def missing(preset, path):
        raise FileNotFoundError("`config.json` doesn't exist in preset directory `hf://x/y`.")

    monkeypatch.setattr(preset_utils, "get_file", missing)
    with pytest.raises(ConfigError, match=r"cannot fetch hf://x/y: `config.json` doesn't exist.*"
                                          r"Check the handle"):
        hub.locate("hf://x/y")

    def bug(preset, path):
        raise TypeError("a bug in the hub's client")

    monkeypatch.setattr(preset_utils, "get_file", bug)
    with pytest.raises(TypeError, match="a bug"):
        hub.locate("hf://x/y")


# ---------------------------------------------------------------- engine guarantees
def test_mirrored_bf16_accumulation_clipping_ema(presets, tmp_path):
    run, summary = cli_fit(tmp_path, *lm_args(
        presets["gpt2"], "model.lora_rank=4", "strategy=mirrored", "strategy.logical_cpus=2",
        "strategy.precision=bf16", "trainer.grad_accum=2", "trainer.clip_norm=1.0",
        "optim.ema=0.9", "trainer.max_steps=6", "trainer.eval_every=6"))
    assert summary["status"] == "completed"
    assert np.isfinite(summary["final"]["val_loss"])


def test_fp16_loss_scaling(presets, tmp_path):
    summary = fit(tmp_path / "run", *lm_args(presets["gpt2"], "model.lora_rank=4",
                                             "strategy.precision=fp16", "trainer.max_steps=6"))
    assert summary["status"] == "completed" and np.isfinite(summary["final"]["loss"])


def test_nan_guard_rolls_back_lora_weights(presets, tmp_path):
    import tensorflow as tf

    import bigtrain.train.fit as fit_mod
    from bigtrain.core.hooks import Hook

    class Poison(Hook):
        model, done = None, False

        def on_steps(self, state):
            if state.step == 7 and not self.done:
                self.done = True
                for v in self.model.trainable_variables:
                    v.assign(tf.fill(v.shape, float("nan")))

    hook = Poison()
    original = fit_mod.build

    def remember(config, run_dir, **kw):
        c = original(config, run_dir, **kw)
        hook.model = c.model
        return c

    fit_mod.build = remember
    try:
        summary = fit(tmp_path / "run", *lm_args(presets["gpt2"], "model.lora_rank=4",
                                                 "trainer.on_nan=rollback",
                                                 "trainer.steps_per_loop=1"), hooks=(hook,))
    finally:
        fit_mod.build = original
    assert summary["status"] == "completed" and summary["nan_rollbacks"] == 1
    assert np.isfinite(summary["final"]["val_loss"])


def test_sigkill_and_resume_is_bitwise_exact(presets, lora_run, tmp_path):
    reference, _ = lora_run  # the same args, uninterrupted
    args = [*lm_args(presets["gpt2"], *LORA), "hydra.run.dir=run"]
    killed = run_cli("fit", *args, cwd=tmp_path, env={"BIGTRAIN_FAULTS": "sigkill@step=8"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_cli("fit", *args, cwd=tmp_path)
    assert resumed.returncode == 0 and "resumed from" in resumed.stderr, resumed.stderr
    want = checkpoint_tensors(reference / "checkpoints" / "ckpt-12")
    got = checkpoint_tensors(tmp_path / "run" / "checkpoints" / "ckpt-12")
    assert got.keys() == want.keys() and any(k.startswith("trained/") for k in got)
    assert [k for k in got if got[k] != want[k]] == []


def test_sigterm_preempts_a_lora_run(presets, tmp_path):
    args = [*lm_args(presets["gpt2"], "model.lora_rank=4", "trainer.max_steps=100000",
                     "trainer.epochs=1000", "trainer.checkpoint_every=100000",
                     "trainer.eval_every=100000"), "hydra.run.dir=run"]
    proc = start_cli("fit", *args, cwd=tmp_path)
    try:
        import time

        metrics = tmp_path / "run" / "metrics.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size):
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate(timeout=5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 75, err
    step = read_json(tmp_path / "run" / "summary.json")["steps"]
    names = _variables(tmp_path / "run" / "checkpoints" / f"ckpt-{step}")
    assert any(n.startswith("trained/") for n in names)


# ---------------------------------------------------------------- the preset's tokenizer
def test_text_corpus_is_tokenized_with_the_presets_tokenizer(presets, tmp_path):
    from bigtrain.data import tokenizers

    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the thin winter on the hill\n" * 60)
    run, summary = cli_fit(tmp_path, "model=hub", f"model.preset={presets['gpt2']}",
                           "model.lora_rank=2", "dataset=text", f"dataset.path={corpus}",
                           "dataset.seq_len=16", "trainer.max_steps=4", "trainer.batch_size=8",
                           "trainer.progress=none", "logger=[]")
    assert summary["status"] == "completed"
    saved = tokenizers.load(run / "tokenizer")
    preset = tokenizers.load(presets["gpt2"])
    assert saved.vocab_size == preset.vocab_size == 263
    assert saved.encode(["the thin"]) == preset.encode(["the thin"])
    assert summary["tokenizer"]["kind"] == "preset"
    # generate: KerasHub's cached sampler on the merged model, text in and text out; greedy
    # gives the text of the exported preset's own generate in a plain KerasHub process
    from bigtrain.inference.generate import Sampling, generate
    from bigtrain.inference.restore import export_run

    made = generate(run, ["the thin", "on"], 6, Sampling(temperature=0), num_samples=2)
    assert [(g.prompt, g.sample) for g in made.outputs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert made.outputs[0].text.startswith("the thin") and len(made.outputs[0].text) > 8
    assert made.outputs[0].text == made.outputs[1].text  # greedy: samples agree
    assert "KerasHub" in made.describe()
    # the ids are those KerasHub decoded, counted as such (not the text encoded again)
    for g in made.outputs:
        assert len(g.ids) <= 6 and saved.decode(g.ids) == g.text[len(["the thin", "on"][g.prompt]):]
    assert sum(len(g.ids) for g in made.outputs) <= made.tokens <= 4 * 6
    preset_dir = export_run(run, "preset", tmp_path / "preset")
    script = ("import sys, keras_hub\n"
              "m = keras_hub.models.CausalLM.from_preset(sys.argv[1])\n"
              "m.compile(sampler='greedy')\n"
              "print(m.generate(['the thin'], max_length=int(sys.argv[2])))\n")
    longest = len(preset.encode(["the thin"])[0]) + 1 + 6
    proc = subprocess.run([sys.executable, "-c", script, str(preset_dir), str(longest)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == repr([made.outputs[0].text]), proc.stdout


def test_info_and_data_read_a_text_corpus_with_the_presets_tokenizer(presets, cli, tmp_path):
    """`bigtrain info` and `bigtrain data` tokenize as `fit` does: with the preset's
    tokenizer (263 tokens here), not bytes (256), which the preset would refuse."""
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the thin winter on the hill\n" * 60)
    args = ["model=hub", f"model.preset={presets['gpt2']}", "model.lora_rank=2", "dataset=text",
            f"dataset.path={corpus}", "dataset.seq_len=16"]
    info = cli("info", *args)
    assert info.returncode == 0, info.stderr
    assert "trainable parameters" in info.stdout
    data = cli("data", *args, "--examples", "1", "--batches", "2")
    assert data.returncode == 0, data.stderr
    assert "263" in data.stdout and "outputs 256" not in data.stdout, data.stdout


def test_a_learned_vocabulary_with_a_preset_is_refused(presets, tmp_path):
    from bigtrain.core.errors import ConfigError
    from bigtrain.train.fit import build

    with pytest.raises(ConfigError, match="dataset.vocab=wordpiece conflicts with model=hub"):
        build(typed("model=hub", f"model.preset={presets['gpt2']}", "dataset=text",
                    "dataset.path=stdlib", "dataset.vocab=wordpiece", "dataset.vocab_size=300"),
              tmp_path / "run")


@pytest.fixture(scope="module")
def bert_run(presets, tmp_path_factory):
    import csv
    import random

    root = tmp_path_factory.mktemp("bert")
    rng = random.Random(0)
    words = {"pos": ["good", "great"], "neg": ["bad", "awful"]}
    with open(root / "reviews.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "label"])
        for _ in range(160):
            label = rng.choice(["pos", "neg"])
            w.writerow([f"the film was very {rng.choice(words[label])}", label])
    return cli_fit(root, "model=hub", f"model.preset={presets['bert']}",
                   "dataset=text_classification", f"dataset.path={root / 'reviews.csv'}",
                   "dataset.text_column=review", "dataset.max_len=12", "trainer.max_steps=40",
                   "trainer.batch_size=16", "optim.lr=0.003", "trainer.progress=none",
                   "logger=[]", "strategy.precision=fp32")


def test_a_texts_length_follows_the_preset_unless_it_is_set(presets, tmp_path):
    """dataset.max_len unset (0): the preset's maximum sequence length (the tiny BERT's 64), not
    256, which the preset refuses; set beyond it, a clear line."""
    from bigtrain.core.errors import ConfigError
    from bigtrain.train.fit import build

    (tmp_path / "reviews.csv").write_text("text,label\n" + "".join(
        f"the film was very {w},{w}\n" for w in ["good", "bad"] * 8))
    args = ["model=hub", f"model.preset={presets['bert']}", "dataset=text_classification",
            f"dataset.path={tmp_path / 'reviews.csv'}", "trainer.batch_size=4", "logger=[]"]
    assert build(typed(*args), tmp_path / "run").splits.spec.input_shape == (64,)
    with pytest.raises(ConfigError, match=r"dataset.max_len: 100 is beyond .*maximum sequence "
                                          r"length \(64\); use 64 or less \(or leave "
                                          r"dataset.max_len unset: it follows the preset\)"):
        build(typed(*args, "dataset.max_len=100"), tmp_path / "run2")
    # another model's texts keep 256 bytes
    assert build(typed(*args[2:], "model=transformer"), tmp_path / "run3"
                 ).splits.spec.input_shape == (256,)


def test_eval_on_a_split_rebuilds_the_texts_at_the_length_the_run_found(presets, tmp_path):
    from bigtrain.inference.restore import evaluate_run

    (tmp_path / "reviews.csv").write_text("text,label\n" + "".join(
        f"the film was very {w},{w}\n" for w in ["good", "bad", "great"] * 8))
    run, _ = cli_fit(tmp_path, "model=hub", f"model.preset={presets['bert']}",
                     "dataset=text_classification", f"dataset.path={tmp_path / 'reviews.csv'}",
                     "trainer.batch_size=4", "trainer.max_steps=2", "trainer.progress=none",
                     "logger=[]", "strategy.precision=fp32")
    assert read_json(run / "preprocessing.json")["input"]["max_len"] == 64
    assert "val_accuracy" in evaluate_run(run, "val")["metrics"]


def test_bert_classifier_over_a_csv_learns_predicts_and_exports(bert_run, tmp_path):
    import keras

    from bigtrain.data import tokenizers
    from bigtrain.inference.restore import export_run

    run, summary = bert_run
    assert summary["final"]["val_accuracy"] >= 0.9, summary["final"]
    proc = run_cli("predict", str(run), "-", cwd=tmp_path,
                   input="the film was very good\nthe film was very awful\n")
    assert proc.returncode == 0, proc.stderr
    classes = [line.split(",")[1] for line in proc.stdout.strip().splitlines()[1:]]
    assert classes == ["pos", "neg"], proc.stdout
    # the .keras export takes token ids packed by the preset's tokenizer ([CLS] ... [SEP])
    out = export_run(run, "keras", tmp_path / "m.keras")
    model = keras.models.load_model(str(out))
    tok = tokenizers.load(run / "tokenizer")
    ids = [[tok.start_id, *t, tok.end_id] for t in tok.encode(["the film was very good"])]
    x = np.full((1, 12), tok.pad_id, "int32")
    x[0, :len(ids[0])] = ids[0]
    probs = keras.ops.softmax(model(x)).numpy()[0]
    assert probs[1] > 0.5  # classes in label order: neg, pos
    # the SavedModel takes raw text: the preset's tokenizer is in its graph
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 - the tokenizer's ops

    saved = tf.saved_model.load(str(export_run(run, "savedmodel", tmp_path / "sm")))
    out = saved.signatures["serving_default"](texts=tf.constant(["the film was very awful"]))
    assert out["classes"].numpy()[0].decode() == "neg"


def test_image_backbone_head_only_on_grayscale_digits_exports(presets, tmp_path):
    import keras

    from bigtrain.inference.restore import export_run, open_run

    run, summary = cli_fit(tmp_path, "model=hub", f"model.preset={presets['resnet']}",
                           "model.freeze=backbone", "dataset=digits", "trainer.max_steps=6",
                           "trainer.progress=none", "logger=[]", "strategy.precision=fp32")
    assert summary["params"] == 16 * 10 + 10  # the head over the backbone's 16 features
    names = _variables(run / "checkpoints" / "ckpt-6")
    assert not any(n.startswith("model/") for n in names)
    images = np.random.default_rng(0).random((2, 8, 8)).astype("float32")
    restored = np.asarray(open_run(run, "latest").model(images, training=False))
    model = keras.models.load_model(str(export_run(run, "keras", tmp_path / "m.keras",
                                                   checkpoint="latest")))
    assert [lyr.name for lyr in model.layers][1:3] == ["channel", "rgb"]
    np.testing.assert_allclose(np.asarray(model(images)), restored, atol=1e-5)


def test_two_workers_on_loopback_match_one(tmp_path):
    # no dropout: two workers draw other masks than one does
    preset = hub_presets.gpt2(tmp_path / "preset", dropout=0.0)
    args = [*lm_args(preset, *LORA), "trainer.max_steps=6", "trainer.eval_every=3"]
    one, _ = cli_fit(tmp_path, *args)
    codes, outs = run_workers("fit", *args, "strategy=multi_worker",
                              f"hydra.run.dir={tmp_path / 'two'}", cwd=tmp_path,
                              env={"TMPDIR": str(tmp_path)})
    assert codes == [0, 0], [out[-3000:] for out in outs]
    assert "CollectiveAllReduceStrategy over 2 replica(s)" in outs[0]

    def losses(run):
        return [(r["step"], r["loss"]) for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]

    a, b = losses(one), losses(tmp_path / "two")
    assert [s for s, _ in a] == [s for s, _ in b] and len(a) == 6
    assert max(abs(x - y) for (_, x), (_, y) in zip(a, b, strict=True)) < 1e-5


def test_a_mistake_found_while_building_is_one_line(presets, cli):
    """Hydra's 'Error executing job with overrides: [...]' is not printed over the report."""
    proc = cli("fit", *lm_args(presets["gpt2"], "model.lora_rank=2",
                               "model.lora_targets=[nothing_here]"), "hydra.run.dir=run")
    assert proc.returncode == 2, proc.stderr
    assert "Error executing job" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "bigtrain: error: model.lora_targets: no layer of GPT2Backbone is named nothing_here")


def test_tensorflows_start_up_lines_stay_off_the_console(presets, tmp_path):
    """In a fresh process (not forked from one that has TensorFlow loaded), the preset check
    that loads KerasHub goes through bigtrain's TensorFlow import: no C++ start-up lines."""
    from helpers import TF_NOISE

    proc = run_cli("fit", *lm_args(presets["gpt2"], "model.lora_rank=2",
                                   "model.lora_targets=[nothing_here]"), "hydra.run.dir=run",
                   cwd=tmp_path, fresh=True)
    assert proc.returncode == 2, proc.stderr
    assert not TF_NOISE.search(proc.stderr), proc.stderr
