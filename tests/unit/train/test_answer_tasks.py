"""Answer tasks (bigtrain eval --task, trainer.eval_tasks): task files read with their
mistakes named, and a scorer whose perplexity, choice accuracy and exact match are those of
the model function it is given."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bigtrain.core.errors import ConfigError
from bigtrain.data import chat_templates
from bigtrain.train import answer_tasks as at


def successor_logits(x):
    """A byte 'model' that is sure each byte is followed by the next byte value."""
    x = np.asarray(x)
    out = np.full((*x.shape, 256), -20.0, np.float32)
    b, t = np.indices(x.shape)
    out[b, t, (x + 1) % 256] = 0.0
    return out


def uniform_logits(x):
    return np.zeros((*np.asarray(x).shape, 256), np.float32)


def byte_scorer(logits, template=None, **kw):
    return at.Scorer(logits, lambda s: list(s.encode()), lambda ids: bytes(
        i for i in ids if 0 <= i < 256).decode(errors="replace"), window=32,
        fmt=at.Format(template), **kw)


def write(tmp_path, lines):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_choice_accuracy_follows_the_log_likelihood_of_each_choice(tmp_path):
    items = at.read_items(write(tmp_path, [
        {"prompt": "a", "choices": ["xyz", "bcd"], "answer": 1},  # 'a' -> 'b' -> 'c' -> 'd'
        {"prompt": "a", "choices": ["bcd", "q"], "answer": 1}]))
    # a template that renders the prompt alone: a choice follows it directly
    bare = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    got = byte_scorer(successor_logits, template=bare).score(items)
    assert got["choice_accuracy"] == 0.5 and got["choice_items"] == 2


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tmp_path):
    items = at.read_items(write(tmp_path, [{"prompt": "p", "response": "some answer"},
                                           {"prompt": "q", "response": "x"}]))
    got = byte_scorer(uniform_logits).score(items)
    assert got["perplexity"] == pytest.approx(256.0, rel=1e-5)


def test_loglikelihood_counts_only_the_continuation_tokens():
    s = byte_scorer(successor_logits)
    [(ll, n)] = s.loglikelihoods([(list(b"ab"), list(b"cd"))])
    assert n == 2 and ll == pytest.approx(0.0, abs=1e-6)
    [(ll, n)] = s.loglikelihoods([(list(b"ab"), list(b"cz"))])
    assert n == 2 and ll < -19  # 'z' after 'c' is unlikely, 'c' after 'b' certain


def test_exact_compares_the_greedy_answer_after_normalization(tmp_path):
    items = at.read_items(write(tmp_path, [{"prompt": "a", "answer": ["The BCDE!"]},
                                           {"prompt": "a", "answer": "bcdz"}]))
    got = byte_scorer(successor_logits, max_new=4).score(items)
    # raw prompts are followed by ' ' in choices only; greedy starts right after 'a'
    assert got["exact"] == 0.5


def test_greedy_stops_at_the_templates_end_of_turn():
    fmt = at.Format(chat_templates.BUILTIN["chatml"])
    assert fmt.turn_end() == "<|im_end|>"
    assert at.Format(None).turn_end() == "\n"
    ctx = fmt.context(at.Item("exact", "Hi?", 1, accepted=["x"]), [])
    assert ctx.endswith("<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n")


def test_few_shot_examples_are_other_lines_of_the_same_kind(tmp_path):
    items = at.read_items(write(tmp_path, [{"prompt": "p1", "answer": "a1"},
                                           {"prompt": "p2", "response": "r2"},
                                           {"prompt": "p3", "answer": "a3"}]))
    ctx = at.Format(None).context(items[0], at._shots(items, 0, 2))
    assert ctx == "p3 a3\n\np1"


@pytest.mark.parametrize("line, words", [
    ("{oops", "line 1: not a JSON object"),
    ({"answer": "x"}, "line 1: needs a 'prompt'"),
    ({"prompt": "p", "choices": ["a"], "answer": 0}, "at least 2"),
    ({"prompt": "p", "choices": ["a", "b"], "answer": 2}, "index of the right choice"),
    ({"prompt": "p"}, "has none of 'response'"),
    ({"prompt": "p", "choices": ["a", "b"], "answer": True}, "index of the right choice"),
    ({"prompt": "p", "response": "r", "answer": "a"}, "both 'response'"),
])
def test_a_bad_task_line_is_named_with_file_and_line(tmp_path, line, words):
    path = tmp_path / "t.jsonl"
    path.write_text((line if isinstance(line, str) else json.dumps(line)) + "\n")
    with pytest.raises(ConfigError) as err:
        at.read_items(path)
    assert err.value.key == "--task" and words in str(err.value) and str(path) in str(err.value)


def test_normalize_is_squads():
    assert at.normalize("  The Eiffel-Tower, in PARIS. ") == "eiffeltower in paris"
    assert at.normalize("an apple a day") == "apple day"
    assert not math.isnan(len(at.normalize("")))


def test_a_chat_answer_cut_as_it_closes_its_turn_loses_the_partial_marker():
    from bigtrain.inference.chat import _without_partial_stop

    assert _without_partial_stop("Lima<|im_en", ["<|im_end|>"]) == "Lima"
    assert _without_partial_stop("Lima<", ["<|im_end|>", "\n"]) == "Lima"
    assert _without_partial_stop("Lima", ["<|im_end|>"]) == "Lima"


def test_a_misspelt_task_metric_in_the_monitor_is_refused_with_the_names(tmp_path):
    from types import SimpleNamespace

    from bigtrain.data.spec import DatasetSpec
    from bigtrain.train.fit import task_evaluation

    path = write(tmp_path, [{"prompt": "p", "answer": "a"}])
    spec = DatasetSpec(name="chat", task="lm", input_shape=(32,), input_dtype="int32",
                       num_outputs=256, num_train=1, num_val=1, num_test=1)
    c = SimpleNamespace(splits=SimpleNamespace(spec=spec, preprocessing={}, tokenizer=None),
                        model=None)
    trainer = SimpleNamespace(eval_tasks=[str(path)], eval_task_shots=0,
                              monitor="val_task_tt_exact")
    with pytest.raises(ConfigError) as err:
        task_evaluation(trainer, c)
    assert err.value.key == "trainer.monitor" and "val_task_t_exact" in str(err.value)
    trainer.monitor = "val_task_t_exact"
    assert callable(task_evaluation(trainer, c))
