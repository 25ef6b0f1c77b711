"""dataset=chat: conversations and pairs through a chat template into windows whose targets
are the answers only; bad records named by file and line; the truncation policy; and the
objective's loss over trained targets, weighted by token."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from bigtrain.core.errors import ConfigError
from bigtrain.data import chat, chat_templates
from bigtrain.data.schemas import ChatConfig

CONV = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Capital of Peru?"},
        {"role": "assistant", "content": "Lima."}]


def write_jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records), encoding="utf-8")
    return path


def pairs(n: int = 40) -> list[dict]:
    return [{"prompt": f"Say {i}.", "response": f"{i}"} for i in range(n)]


def cfg(path, **kw) -> ChatConfig:
    c = ChatConfig(path=str(path), **kw)
    c.validate()
    return c


def test_segments_mark_each_answer_and_add_up_to_the_whole_rendering():
    source = chat_templates.BUILTIN["chatml"]
    segs = chat_templates.segments(source, CONV)
    assert "".join(t for t, _ in segs) == chat_templates.render(source, CONV)
    assert [t for t, answer in segs if answer] == ["Hello.<|im_end|>\n", "Lima.<|im_end|>\n"]
    prompts = "".join(t for t, answer in segs if not answer)
    assert "Hello." not in prompts and "<|im_start|>assistant\n" in prompts


def test_templates_render_as_transformers_does_blocks_trimmed():
    # Transformers renders with trim_blocks and lstrip_blocks: the newline after a block
    # tag and the indentation before one are dropped
    source = ("{% for m in messages %}\n    {% if m['role'] == 'user' %}\n"
              "U:{{ m['content'] }}\n    {% endif %}\n{% endfor %}")
    out = chat_templates.render(source, [{"role": "user", "content": "a"},
                                         {"role": "user", "content": "b"}])
    assert out == "U:a\nU:b\n"


def test_a_template_that_raises_or_is_not_a_prefix_is_refused_by_name(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", pairs())
    bad = tmp_path / "t.jinja"
    # renders the last message differently: no prompt is a prefix of its continuation
    bad.write_text("{% for m in messages %}{% if loop.last %}LAST {% endif %}"
                   "{{ m['content'] }}{% endfor %}")
    with pytest.raises(ConfigError) as err:
        chat.build_chat(cfg(path, template=str(bad)))
    assert err.value.key == "dataset.template" and "prefix" in str(err.value)
    raising = tmp_path / "r.jinja"
    raising.write_text("{{ raise_exception('System role not supported') }}")
    with pytest.raises(ConfigError, match="System role not supported"):
        chat.build_chat(cfg(path, template=str(raising)))


@pytest.mark.parametrize("line, words", [
    ("{not json", "line 3: not a JSON object"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "line 3: message 0 has role 'robot'"),
    ({"prompt": "p", "response": "  "}, "line 3: has an empty answer"),
    ({"prompt": "p"}, "line 3: has no 'response' field"),
    ({"messages": [{"role": "user", "content": "q"}]}, "line 3: has no assistant message"),
    ({"messages": [{"role": "user"}]}, "line 3: message 0 lacks 'role' or 'content'"),
])
def test_a_bad_record_is_named_with_file_and_line_or_skipped_and_counted(tmp_path, line,
                                                                        words):
    records = pairs(2) + [line] + pairs(20)
    path = write_jsonl(tmp_path / "d.jsonl", records)
    with pytest.raises(ConfigError) as err:
        chat.read_conversations(cfg(path))
    assert err.value.key == "dataset.path"
    assert f"{path} {words}" in str(err.value) and "on_bad_record=skip" in str(err.value)
    convs, skipped = chat.read_conversations(cfg(path, on_bad_record="skip"))
    assert (len(convs), skipped) == (22, 1)


def test_csv_and_parquet_read_the_same_pairs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pairs(10)
    (tmp_path / "d.csv").write_text("prompt,response\n" + "".join(
        f"{r['prompt']},{r['response']}\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    want, _ = chat.read_conversations(cfg(write_jsonl(tmp_path / "d.jsonl", rows)))
    for name in ("d.csv", "d.parquet"):
        assert chat.read_conversations(cfg(tmp_path / name))[0] == want


def test_targets_are_the_answers_only_and_all_with_train_on_all(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"messages": CONV}] * 30)
    splits = chat.build_chat(cfg(path, seq_len=256))
    x, y = next(splits.train.as_numpy_iterator())
    trained = bytes(int(v) for v in y[y >= 0]).decode()
    assert trained == "Hello.<|im_end|>\nLima.<|im_end|>\n"
    assert splits.spec.masked and splits.spec.num_outputs == 256
    # inputs are the rendered text; a target is the next input where it is trained
    k = int(np.flatnonzero(y >= 0)[0])
    assert y[k] == x[k + 1]
    every = chat.build_chat(cfg(path, seq_len=256, train_on="all"))
    x2, y2 = next(every.train.as_numpy_iterator())
    n = int((y2 >= 0).sum())
    assert n == len(chat_templates.render(chat_templates.BUILTIN["chatml"], CONV).encode()) - 1
    assert (x2 == x).all()


def test_truncation_cuts_old_prompt_tokens_keeps_the_answer_or_drops(tmp_path):
    e = chat.Encoded(ids=list(range(10)), trained=[False] * 6 + [True] * 4)
    cut = chat.fit_window(e, 6, "left")
    assert cut.ids == [4, 5, 6, 7, 8, 9] and cut.trained == [False, False] + [True] * 4
    assert chat.fit_window(e, 3, "left") is None  # the answer alone does not fit
    assert chat.fit_window(e, 6, "drop") is None
    assert chat.fit_window(e, 10, "drop") is e


def test_too_long_examples_are_counted_in_the_log(tmp_path, caplog):
    long = [{"prompt": "word " * 60, "response": "ok"}] * 10 + pairs(20)
    path = write_jsonl(tmp_path / "d.jsonl", long)
    with caplog.at_level("WARNING", logger="bigtrain"):
        splits = chat.build_chat(cfg(path, seq_len=96, truncation="drop"))
    assert splits.spec.num_train + splits.spec.num_val + splits.spec.num_test == 20
    assert "10 dropped" in caplog.text


def test_masked_loss_is_the_mean_over_trained_targets():
    import tensorflow as tf

    from bigtrain.train.objective import Objective

    rng = np.random.default_rng(0)
    logits = tf.constant(rng.standard_normal((2, 5, 7)), tf.float32)
    y = tf.constant([[1, -1, 3, -1, -1], [-1, -1, -1, 2, 6]], tf.int32)
    obj = Objective("lm", 7, masked=True)
    per = obj.per_example_loss(y, logits)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(y, 0), logits).numpy()
    keep = y.numpy() >= 0
    stats = obj.finalize(obj.stats(y, logits, per).numpy())
    assert stats["loss"] == pytest.approx(ce[keep].mean(), rel=1e-6)
    hits = (np.argmax(logits.numpy(), -1) == y.numpy())[keep].mean()
    assert stats["accuracy"] == pytest.approx(hits)


def test_accumulated_micro_batches_weigh_tokens_like_one_batch():
    """With unequal trained targets per micro-batch, the gradient of 2 accumulated halves is
    the gradient of the whole batch: the loss is divided by the global batch's trained
    count, not each micro-batch's."""
    import keras
    import tensorflow as tf

    from bigtrain.train.engine import Engine, StepConfig
    from bigtrain.train.objective import Objective

    y = np.full((4, 6), -1, np.int32)
    y[0, :5] = 1
    y[2, 0] = 2
    y[3, :2] = 3
    x = np.arange(24, dtype=np.int32).reshape(4, 6) % 7
    grads = []
    for k in (1, 2):
        keras.utils.set_random_seed(0)
        inp = keras.Input((6,), dtype="int32")
        hot = keras.layers.Lambda(lambda t: keras.ops.one_hot(t, 7))(inp)
        model = keras.Model(inp, keras.layers.Dense(7)(hot))
        engine = Engine(tf.distribute.get_strategy(), model, keras.optimizers.SGD(1.0),
                        Objective("lm", 7, masked=True),
                        StepConfig(global_batch=4, tokens_per_example=6, grad_accum=k))
        before = [v.numpy().copy() for v in model.trainable_variables]
        engine._replica_train_step(tf.constant(x), tf.constant(y))
        grads.append([b - v.numpy() for b, v in zip(before, model.trainable_variables,
                                                    strict=True)])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_bigtrain_data_shows_the_rendered_example_with_the_trained_tokens_highlighted(
        tmp_path):
    from helpers import run_cli

    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"Say {i}.", "response": f"ok {i}"}
                                              for i in range(30)])
    proc = run_cli("data", "dataset=chat", f"dataset.path={path}", "dataset.seq_len=96",
                   "--examples", "1", cwd=tmp_path, env={"FORCE_COLOR": "1", "COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "template chatml, loss on the answers" in out
    # the answer (and the end of its turn) in bold green, the prompt dimmed
    assert re.search(r"\x1b\[1;32mok \d+<\|im_end\|>", out), out
    assert re.search(r"\x1b\[2m<\|im_start\|>user", out), out
    # piped (no terminal, no colour): the trained tokens are bracketed
    proc = run_cli("data", "dataset=chat", f"dataset.path={path}", "dataset.seq_len=96",
                   "--examples", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"⟦ok \d+<\|im_end\|>\n?⟧", proc.stdout), proc.stdout
