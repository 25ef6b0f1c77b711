"""Learned tokenizers (issue 17): wordpiece, sentencepiece and bpe vocabularies learned from
the training split, saved in the run dir and reused, text in and text out of every command.

Vocabularies are learned from this Python's standard-library sources and texts the tests
write; nothing is downloaded."""

from __future__ import annotations

import json
import os
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from helpers import read_json, run_cli

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError

#: code with what a lossless tokenizer must keep: indentation, blank lines, a tab, characters
#: the training text never had (byte pieces)
CODE = 'def main(args):\n    """Run it."""\n\n\tif args:\n        return "☃ 漢字 ok"\n'


def stdlib_text(chars: int, skip: int = 0) -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    text = ""
    for f in sorted(root.glob("*.py"))[skip:]:
        text += f.read_text(encoding="utf-8", errors="replace") + "\n"
        if len(text) >= chars:
            break
    return text[:chars]


def dataset(*overrides: str):
    return to_typed(compose(list(overrides))).dataset


# ---------------------------------------------------------------------- no TensorFlow
@pytest.mark.parametrize("overrides,key,words", [
    (["dataset.vocab=sentencepiece"], "dataset.vocab_size", "set dataset.vocab_size"),
    (["dataset.vocab_size=300"], "dataset.vocab_size", "only learned vocabularies"),
    (["dataset.tokenizer=somewhere"], "dataset.tokenizer", "needs dataset.vocab set"),
    (["dataset.vocab=unigram"], "dataset.vocab", "allowed: byte, char, wordpiece"),
])
def test_vocab_keys_that_do_not_fit_together_are_named(overrides, key, words):
    with pytest.raises(ConfigError, match=words) as ex:
        dataset("dataset=text", "dataset.path=stdlib", *overrides)
    assert ex.value.key == key


def test_a_tokenizer_path_missing_or_of_another_kind_is_refused_before_tensorflow(tmp_path):
    saved = tmp_path / "tok"
    saved.mkdir()
    (saved / "tokenizer.json").write_text("{}")
    (saved / "bigtrain_tokenizer.json").write_text(json.dumps({"kind": "bpe"}))
    (tmp_path / "notes.txt").write_text("some text\n" * 50)
    common = ["dataset=text", "dataset.path=notes.txt", "dataset.vocab=wordpiece"]
    missing = run_cli("validate", *common, "dataset.tokenizer=nope", cwd=tmp_path)
    assert missing.returncode == 2 and "dataset.tokenizer:" in missing.stderr
    assert "nope does not exist" in missing.stderr and "Traceback" not in missing.stderr
    other = run_cli("validate", *common, "dataset.tokenizer=tok", cwd=tmp_path)
    assert other.returncode == 2
    assert "tok holds a bpe tokenizer, not wordpiece" in other.stderr
    assert "set dataset.vocab=bpe" in other.stderr


# ---------------------------------------------------------------------- TensorFlow from here
import tensorflow as tf  # noqa: E402

from bigtrain.data import build_dataset, tokenizers  # noqa: E402
from bigtrain.data import text as text_source  # noqa: E402
from bigtrain.data.pipeline import split_arrays  # noqa: E402


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return tokenizers.training_lines([stdlib_text(30_000)])


@pytest.mark.parametrize("kind", ["sentencepiece", "bpe"])
def test_sentencepiece_kinds_are_lossless_deterministic_and_round_trip(kind, lines, tmp_path):
    tok = tokenizers.learn(kind, lines, 400)
    assert (tok.kind, tok.vocab_size, tok.pad_id, tok.start_id, tok.end_id) == \
        (kind, 400, 0, 2, 3)
    ids = tok.encode([CODE])[0]
    assert tok.decode(ids) == CODE  # whitespace kept, unseen characters as byte pieces
    assert 0 < len(ids) < len(CODE.encode())
    assert tokenizers.learn(kind, lines, 400).sha256() == tok.sha256()  # same text, same vocab
    tok.save(tmp_path / "tok")
    assert (tmp_path / "tok" / "tokenizer.json").is_file()  # KerasHub's preset format
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "tok").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    assert (tmp_path / "tok" / "assets" / "tokenizer" / "vocabulary.spm").is_file()
    back = tokenizers.load(tmp_path / "tok")
    assert back.describe() == tok.describe() and back.encode([CODE])[0] == ids
    # the SentencePiece model file alone loads too, as the same kind
    spm_file = tmp_path / "model.spm"
    spm_file.write_bytes((tmp_path / "tok/assets/tokenizer/vocabulary.spm").read_bytes())
    alone = tokenizers.load(spm_file)
    assert alone.kind == kind and alone.encode([CODE])[0] == ids


def test_wordpiece_splits_words_and_says_how_many_tokens_the_text_holds(lines, tmp_path):
    few = lines[:200] + ["def main(args): return args"] * 20  # words seen 10+ times
    tok = tokenizers.learn("wordpiece", few, 210)
    assert tok.kind == "wordpiece" and tok.vocab_size <= 210
    assert (tok.pad_id, tok.start_id, tok.end_id) == (0, 1, 2)
    assert tok.decode(tok.encode(["def main(args):"])[0]) == "def main ( args ) :"
    with pytest.raises(ConfigError, match=r"dataset.vocab_size: 100000 is more than the "
                       r"training split can fill: it gives at most \d+ wordpiece tokens"):
        tokenizers.learn("wordpiece", few, 100_000)
    (tmp_path / "vocab.txt").write_text("\n".join(tok.layer.get_vocabulary()) + "\n")
    loaded = tokenizers.load(tmp_path / "vocab.txt")
    assert loaded.kind == "wordpiece" and loaded.encode(["def x"]) == tok.encode(["def x"])


@pytest.mark.parametrize("size,words", [
    (100_000, r"100000 is more than the training split can fill: it gives at most \d+ "
              r"sentencepiece tokens; use dataset.vocab_size <= \d+"),
    (50, r"50 is too small for sentencepiece here: it needs at least \d+"),
])
def test_a_size_the_text_cannot_fill_is_named_with_the_bound(lines, size, words):
    with pytest.raises(ConfigError, match=words) as ex:
        tokenizers.learn("sentencepiece", lines, size)
    assert ex.value.key == "dataset.vocab_size"


def test_paths_that_hold_no_tokenizer_are_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        tokenizers.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no tokenizer.json"):
        tokenizers.load(tmp_path / "empty")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "preprocessing.json").write_text("{}")
    with pytest.raises(ConfigError, match="a run dir without a saved tokenizer"):
        tokenizers.load(tmp_path / "run")


def test_documents_are_joined_with_the_end_id_in_order(lines):
    tok = tokenizers.learn("bpe", lines, 400)
    docs = ["first line\nsecond line\n" * 3, "another file\n"]
    pieces, ends = text_source.pieces_of(docs, 30)
    assert "".join(pieces) == "".join(docs) and ends.count(True) == 2
    assert all(len(p) >= 30 for p, last in zip(pieces, ends, strict=True) if not last)
    stream = text_source.token_stream(tok, pieces, ends).tolist()
    expected = [i for d in docs for i in tok.encode([d])[0] + [tok.end_id]]
    assert stream == expected


def test_lm_vocabulary_comes_from_the_training_split_only(tmp_path, monkeypatch):
    numbered = "".join(f"line {i:05d} of the corpus, some words\n" for i in range(3000))
    (tmp_path / "corpus.txt").write_text(numbered)
    seen: list[str] = []
    learn = tokenizers.learn

    def spy(kind, lines, size, *args):
        seen.extend(lines)
        return learn(kind, lines, size, *args)

    monkeypatch.setattr(tokenizers, "learn", spy)
    cfg = dataset("dataset=text", f"dataset.path={tmp_path}/corpus.txt", "dataset.seq_len=16",
                  "dataset.vocab=bpe", "dataset.vocab_size=320")
    splits = build_dataset(cfg)
    pieces, _ = text_source.pieces_of([numbered], 4 * 17)
    train, val, test = split_arrays(len(pieces), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    held_out = {line for i in np.concatenate([val, test]) for line in pieces[i].splitlines()}
    assert seen and held_out and not held_out & set(seen)
    assert set(seen) == {line for i in train for line in pieces[i].splitlines()}
    spec = splits.spec
    assert spec.num_outputs == 320 and spec.input_shape == (16,) and spec.num_val > 0
    x, y = next(iter(splits.train.batch(4)))
    np.testing.assert_array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])
    assert 0 < splits.tokens_per_char < 1
    assert splits.preprocessing["input"]["vocab"]["tokenizer"] == splits.tokenizer.describe()


def test_non_utf8_text_is_refused_for_a_learned_vocabulary(tmp_path):
    (tmp_path / "good.txt").write_text("plain words\n" * 200)
    (tmp_path / "junk.txt").write_bytes(b"fine\n\xff\xfe binary\n")
    with pytest.raises(ConfigError, match=r"junk.txt is not UTF-8 text \(line 2"):
        build_dataset(dataset("dataset=text", f"dataset.path={tmp_path}",
                              "dataset.vocab=sentencepiece", "dataset.vocab_size=300"))


def test_classification_packs_start_ids_end_and_serving_agrees(tmp_path, lines):
    import keras

    from bigtrain.inference.serving import Serving

    texts = {"pos": ["a fine film", "good acting, good plot"],
             "neg": ["a dull film " * 20, "bad acting"]}
    for label, items in texts.items():
        (tmp_path / "reviews" / label).mkdir(parents=True)
        for n in range(10):
            (tmp_path / "reviews" / label / f"{n}.txt").write_text(items[n % 2] + f" #{n}")
    splits = build_dataset(dataset("dataset=text_classification",
                                   f"dataset.path={tmp_path}/reviews", "dataset.vocab=bpe",
                                   "dataset.vocab_size=290", "dataset.max_len=20"))
    tok, spec = splits.tokenizer, splits.spec
    assert spec.input_shape == (20,) and spec.input_vocab == tok.vocab_size == 290
    rows = [(x, int(y)) for x, y in splits.train.as_numpy_iterator()]
    for x, _ in rows:
        assert x[0] == tok.start_id and tok.end_id in x.tolist()
        end = x.tolist().index(tok.end_id)
        assert (x[end + 1:] == tok.pad_id).all()
    decoded = {tok.decode(x.tolist()) for x, _ in rows}
    assert "bad acting #1" in decoded or "bad acting #3" in decoded  # short texts whole
    longest = max(rows, key=lambda r: len(tok.decode(r[0].tolist())))[0]
    assert longest[-1] == tok.end_id  # cut to max_len, the end id kept

    inputs = keras.Input((20,), dtype="int32")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(290, 4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    serving = Serving(splits.preprocessing, model, tok)
    raw = ["good acting, good plot #4", "a dull film " * 20 + "#1"]
    expected = tok.encode(raw)
    got = serving.to_model_inputs({"texts": tf.constant(raw)}).numpy()
    for ids, row in zip(expected, got, strict=True):
        assert row.tolist() == ([tok.start_id] + ids[:18] + [tok.end_id] + [0] * 20)[:20]
    with pytest.raises(ConfigError, match="tokenizer/ folder, which is missing"):
        Serving(splits.preprocessing, model, None)


def test_other_datasets_refuse_a_tokenizer(lines):
    tok = tokenizers.learn("bpe", lines, 400)
    with pytest.raises(ConfigError, match="dataset=digits has no text to tokenize"):
        build_dataset(dataset("dataset=digits"), tokenizer=tok)


# ---------------------------------------------------------------------- a trained run
LM = ["dataset=text", "dataset.path=corpus", "dataset.vocab=sentencepiece",
      "dataset.vocab_size=400", "dataset.seq_len=32", "model=transformer", "model/size=tiny",
      "dataset.test_fraction=0", "trainer.batch_size=8", "trainer.eval_every=3",
      "trainer.checkpoint_every=3", "trainer.progress=none", "logger=[]", "hydra.run.dir=run"]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """An LM run on two stdlib files with a learned sentencepiece vocabulary, trained 3 steps
    by `bigtrain fit`, then resumed to 6 in this process (what `fit` runs once its run dir is
    set up): (root, the first fit, the resumed run's log, the vocabulary file after the
    first)."""
    import logging

    from bigtrain.run.job import train

    root = tmp_path_factory.mktemp("tokenizers")
    (root / "corpus").mkdir()
    (root / "corpus" / "a.py").write_text(stdlib_text(20_000))
    (root / "corpus" / "b.py").write_text(stdlib_text(20_000, skip=5))
    first = run_cli("fit", *LM, "trainer.max_steps=3", cwd=root, fresh=True)  # TF's own output
    assert first.returncode == 0, first.stderr[-3000:]
    vocab = (root / "run/tokenizer/assets/tokenizer/vocabulary.spm").read_bytes()

    class Lines(logging.Handler):
        def __init__(self):
            super().__init__(logging.INFO)
            self.lines: list[str] = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    said, logger = Lines(), logging.getLogger("bigtrain")
    level = logger.level
    logger.addHandler(said)
    logger.setLevel(logging.INFO)
    try:
        train(to_typed(compose([*LM[:1], f"dataset.path={root}/corpus", *LM[2:],
                                "trainer.max_steps=6"])), root / "run")
    finally:
        logger.removeHandler(said)
        logger.setLevel(level)
    return root, first, "\n".join(said.lines), vocab


@pytest.mark.slow
def test_the_run_dir_keeps_its_tokenizer_and_a_resume_reuses_it(lm_run):
    root, first, resumed, vocab = lm_run
    run = root / "run"
    meta = read_json(run / "tokenizer" / "bigtrain_tokenizer.json")
    assert meta["kind"] == "sentencepiece" and meta["vocab_size"] == 400
    recorded = read_json(run / "preprocessing.json")["input"]["vocab"]
    assert recorded["type"] == "tokenizer" and recorded["tokenizer"]["sha256"] == meta["sha256"]
    summary = read_json(run / "summary.json")
    assert summary["steps"] == 6 and summary["tokenizer"]["kind"] == "sentencepiece"
    assert 0.1 < summary["tokenizer"]["tokens_per_char"] < 1
    assert "tokenizer: learned sentencepiece, 400 tokens" in first.stderr
    assert "oneDNN" not in first.stderr and "normalizer.cc" not in first.stderr  # to fit.log
    assert "tokenizer: reusing" in resumed and "tokenizer: learned" not in resumed
    assert "resumed from" in resumed
    assert (run / "tokenizer/assets/tokenizer/vocabulary.spm").read_bytes() == vocab


@pytest.mark.slow
def test_another_run_reuses_a_saved_tokenizer_without_learning(lm_run, monkeypatch):
    root, *_ = lm_run
    monkeypatch.setattr(tokenizers, "learn", lambda *a: pytest.fail("learned again"))
    splits = build_dataset(dataset(*LM[:3], f"dataset.path={root}/corpus",
                                   f"dataset.tokenizer={root}/run", "dataset.seq_len=32"))
    saved = read_json(root / "run/tokenizer/bigtrain_tokenizer.json")
    assert splits.tokenizer.sha256() == saved["sha256"] and splits.spec.num_outputs == 400
    with pytest.raises(ConfigError, match="has 400 tokens; leave dataset.vocab_size unset"):
        build_dataset(dataset(*LM[:3], f"dataset.path={root}/corpus", "dataset.vocab_size=64",
                              f"dataset.tokenizer={root}/run"))


@pytest.mark.slow
def test_generate_eval_and_export_take_text_through_the_runs_tokenizer(lm_run, monkeypatch):
    import tensorflow_text  # noqa: F401  # registers the ops the SavedModel holds

    from bigtrain.inference.generate import vocabulary
    from bigtrain.inference.restore import evaluate_run, export_run

    root, *_ = lm_run
    run = root / "run"
    monkeypatch.setattr(tokenizers, "learn", lambda *a: pytest.fail("learned again"))
    encode, decode = vocabulary(read_json(run / "preprocessing.json"), run)
    ids = encode(CODE)
    assert decode(ids) == CODE and max(ids) < 400
    assert evaluate_run(run, "val", "latest")["metrics"]["val_loss"] > 0
    out = export_run(run, "savedmodel", checkpoint="latest")
    saved = tf.saved_model.load(str(out))
    assert {"serving_default", "tokenize", "detokenize"} <= set(saved.signatures)
    tokens = saved.signatures["tokenize"](texts=tf.constant([CODE, "x = 1"]))
    assert tokens["token_ids"].numpy()[0].tolist() == ids
    back = saved.signatures["detokenize"](token_ids=tokens["token_ids"])["texts"].numpy()
    assert [b.decode() for b in back] == [CODE, "x = 1"]


def test_bigtrain_data_shows_the_vocabulary_decoded_examples_and_tokens_per_character(
        tmp_path, monkeypatch, capsys):
    from bigtrain.cli.data import data

    (tmp_path / "notes.py").write_text(stdlib_text(12_000) + CODE)
    monkeypatch.setenv("COLUMNS", "200")
    data(["dataset=text", f"dataset.path={tmp_path}/notes.py", "dataset.vocab=bpe",
          "dataset.vocab_size=400", "dataset.seq_len=16", "trainer.batch_size=4"],
         examples=2, out=None, batches=2)
    shown = capsys.readouterr().out
    assert "bpe (SentencePieceTokenizer), 400 tokens, learned from the training split; pad " \
        "0, start 2, end 3" in shown
    per_char = float(shown.split("tokens per character")[1].split()[0])
    assert 0.2 < per_char < 1
    assert "decoded" in shown and "'" in shown.split("decoded")[1]  # texts, quoted


def test_a_pad_id_that_is_a_real_token_is_decoded_as_text():
    """KerasHub's Qwen tokenizer pads with id 0, which is '!' in Qwen's vocabulary: decoding
    keeps it (it is text); a pad id that is a special token is left out."""
    import keras_hub
    from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

    from bigtrain.data.tokenizers import Tokenizer

    symbols = [ch for _, ch in sorted(zip(*bytes_to_unicode(), strict=True))]
    symbols.remove("!")
    vocab = {"!": 0, **{s: i + 1 for i, s in enumerate(symbols)}}
    vocab["<|endoftext|>"] = len(vocab)
    vocab["Ġt"] = len(vocab)
    layer = keras_hub.models.QwenTokenizer(vocabulary=vocab, merges=["Ġ t"], dtype="int32")
    tok = Tokenizer.from_keras_hub(layer)
    assert tok.pad_id == 0
    ids = tok.encode(["Hi! there!"])[0]
    assert 0 in ids and tok.decode(ids) == "Hi! there!"
    end = tok.end_id
    assert tok.decode([*ids, end]) == "Hi! there!"
    assert tok.decode([*ids, end], keep_special=True) == "Hi! there!<|endoftext|>"


def test_a_tokenizers_digest_does_not_depend_on_the_order_of_its_special_token_set():
    """KerasHub lists unsplittable_tokens from a set: their order changes with the hash seed,
    and a resume compares digests."""
    import keras_hub
    from hub_presets import byte_level_bpe

    from bigtrain.data.tokenizers import Tokenizer

    base = byte_level_bpe()
    vocab, merges = dict(base.vocabulary), list(base.merges)
    for t in ("<|im_start|>", "<|im_end|>"):
        vocab.setdefault(t, len(vocab))
    digests = set()
    for order in (["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
                  ["<|endoftext|>", "<|im_end|>", "<|im_start|>"]):
        layer = keras_hub.tokenizers.BytePairTokenizer(
            vocabulary=dict(vocab), merges=list(merges), unsplittable_tokens=order,
            dtype="int32")
        digests.add(Tokenizer.from_keras_hub(layer).sha256())
    assert len(digests) == 1
