"""Generation: the transformer's KV-cache decode path against the cache-free path (greedy
gives the same tokens, for every position kind, batched and past the window), sampling
(temperature, top-k, top-p, seed), stop strings, long prompts, several prompts and samples,
and the command's options and output."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError
from bigtrain.data.spec import DatasetSpec
from bigtrain.inference import generate as gen  # noqa: E402
from bigtrain.models import build_model  # noqa: E402
from bigtrain.models.transformer import kv_decoder  # noqa: E402

WINDOW = 12
SPEC = DatasetSpec("t", "lm", (WINDOW,), "int32", 40, 10, 1, 1)
GREEDY = gen.Sampling(temperature=0)


def tiny_lm(positions: str, tied: bool = False, scale: float = 2.0):
    """A random 2-layer LM; its matrices drawn at `scale` (far above initialisation), so
    its greedy text varies with the context instead of repeating a token."""
    keras.utils.set_random_seed(0)
    cfg = to_typed(compose(["model=transformer", f"model.positions={positions}",
                            "model.d_model=32", "model.num_heads=4", "model.num_layers=2",
                            "model.dropout=0", f"model.tie_embeddings={str(tied).lower()}"]))
    model = build_model(cfg.model, SPEC)
    if scale:
        rng = np.random.default_rng(0)
        model.set_weights([rng.normal(0, scale, w.shape).astype(w.dtype) if w.ndim == 2 else w
                           for w in model.get_weights()])
    return model


#: prompts of 1 to 6 tokens, decoded as one batch
PROMPTS = [np.random.default_rng(i).integers(1, 40, size=i + 1).tolist() for i in range(6)]


@pytest.fixture(scope="module", params=["learned", "sinusoidal", "rotary"])
def lm(request):
    """One model per position kind; the learned one ties its output to the embedding."""
    return tiny_lm(request.param, tied=request.param == "learned")


def test_prefill_and_step_give_the_training_forward_pass_logits(lm):
    """The decode path reuses the model's weights and kernels: prefill over a context and
    a step after it give the logits of the model on the whole sequence."""
    x = np.random.default_rng(1).integers(1, 40, size=(2, WINDOW)).astype(np.int32)
    full = np.asarray(lm(x, training=False))
    d = kv_decoder(lm)
    logits, caches = d.prefill(tf.constant(x), 5)
    np.testing.assert_allclose(logits, full[:, 4], rtol=1e-4, atol=1e-4)
    logits, caches = d.step(tf.constant(x[:, 5]), tf.constant(5), caches)
    np.testing.assert_allclose(logits, full[:, 5], rtol=1e-4, atol=1e-4)
    assert np.ptp(full[:, 5]) > 1e-3
    assert (d.head is None) == (lm.get_layer("positions").kind == "learned")  # tied
    assert kv_decoder(build_model(to_typed(compose(["model=rnn"])).model, SPEC)) is None


def test_greedy_with_the_cache_gives_the_tokens_of_the_cache_free_path(lm):
    """Six prompts of 1 to 6 tokens in one batch, 30 new tokens: past the window of 12, so
    the cache is refilled from the newer half of it three times. A prompt decodes as it
    would alone."""
    cached = gen.decode(lm, PROMPTS, 30, GREEDY, WINDOW, cache=True)
    plain = gen.decode(lm, PROMPTS, 30, GREEDY, WINDOW, cache=False)
    assert cached == plain
    assert [len(ids) for ids in cached] == [30] * 6
    assert len(set(sum(cached, []))) > 8  # varied text, not a token repeated
    assert gen.decode(lm, [PROMPTS[0]], 30, GREEDY, WINDOW, cache=False)[0] == cached[0]


def test_a_model_without_a_cache_path_decodes_each_token_over_its_window():
    """The rnn has no KV cache: decode takes the cache-free path, and gives what calling the
    model on the window for every token gives (the loop generate ran before the cache)."""
    keras.utils.set_random_seed(0)
    rnn = build_model(to_typed(compose(["model=rnn", "model.units=16", "model.num_layers=1"]))
                      .model, SPEC)
    out = gen.decode(rnn, PROMPTS[:2], 8, GREEDY, WINDOW, cache=True)
    for prompt, new in zip(PROMPTS[:2], out, strict=True):
        ids = list(prompt)
        for _ in range(8):
            x = np.zeros((1, WINDOW), np.int32)
            x[0, : len(ids)] = ids
            ids.append(int(np.argmax(rnn(x, training=False)[0, len(ids) - 1])))
        assert new == ids[len(prompt):]


def test_a_bf16_model_decodes_through_a_float32_copy_of_its_weights():
    """Mixed precision rounds only the compute: generate decodes in float32, where the
    cached and cache-free paths round alike (greedy: the same tokens, as above)."""
    from types import SimpleNamespace

    cfg = to_typed(compose(["model=transformer", "model.d_model=32", "model.num_layers=1",
                            "model.dropout=0"]))
    bf16 = build_model(cfg.model, SPEC, "bf16")
    run = SimpleNamespace(model=bf16, spec=SPEC, config=cfg)
    copy = gen.float32_model(run)
    assert bf16.compute_dtype == "bfloat16" and copy.compute_dtype == "float32"
    x = np.random.default_rng(2).integers(1, 40, size=(2, WINDOW)).astype(np.int32)
    np.testing.assert_allclose(copy(x), bf16(x), atol=0.05)
    bf16.get_layer("embed").embeddings.assign(bf16.get_layer("embed").embeddings * 2)
    assert gen.float32_model(run) is copy  # built once, its weights refreshed on each call
    np.testing.assert_array_equal(copy.get_layer("embed").embeddings,
                                  bf16.get_layer("embed").embeddings)
    fp32 = tiny_lm("learned")
    assert gen.float32_model(SimpleNamespace(model=fp32)) is fp32


def test_context_start_keeps_half_to_a_whole_window():
    for window in (1, 2, 7, 12):
        starts = [gen.context_start(t, window) for t in range(1, 80)]
        assert starts[:window] == [0] * window  # t <= window: the whole text
        assert starts == sorted(starts)
        for t, s in zip(range(1, 80), starts, strict=True):
            assert t - s <= window and (t <= window or t - s >= max(1, window // 2))
        tensor = [int(gen.context_start(tf.constant(t), window)) for t in range(1, 80)]
        assert tensor == starts


def test_sampling_temperature_top_k_top_p_and_seed():
    logits = tf.math.log(tf.constant([[0.4, 0.3, 0.2, 0.06, 0.04]] * 4000))

    def draws(**kw):
        return np.asarray(gen.pick(logits, gen.Sampling(**kw), 7))

    free = draws(temperature=1.0)
    assert set(free) == {0, 1, 2, 3, 4}
    assert abs(np.mean(free == 0) - 0.4) < 0.03  # the model's own distribution
    assert set(draws(temperature=1.0, top_k=2)) == {0, 1}
    assert set(draws(temperature=1.0, top_p=0.65)) == {0, 1}  # 0.4 + 0.3 reach 0.65
    assert set(draws(temperature=1.0, top_p=0.05)) == {0}
    assert set(draws(temperature=1.0, top_k=4, top_p=0.95)) == {0, 1, 2, 3}
    assert np.mean(draws(temperature=0.1) == 0) > 0.9  # cooler: nearer greedy
    assert set(np.asarray(gen.pick(logits, GREEDY, 7))) == {0}
    assert (draws(temperature=1.0, seed=3) == draws(temperature=1.0, seed=3)).all()
    assert (draws(temperature=1.0, seed=3) != draws(temperature=1.0, seed=4)).any()


def test_decoding_stops_once_every_row_has_stopped():
    model = tiny_lm("learned", scale=0)
    seen = []

    def stopped(row, ids):
        seen.append(len(ids))
        return len(ids) >= 3

    out = gen.decode(model, [[1, 2], [3]], 200, GREEDY, WINDOW, cache=False,
                     stopped=stopped)
    assert all(3 <= len(ids) <= gen.STOP_CHUNK + 1 for ids in out)
    assert max(seen) <= gen.STOP_CHUNK + 1


@pytest.mark.parametrize("kw, option", [
    ({"temperature": -1}, "--temperature"), ({"top_k": -2}, "--top-k"),
    ({"top_p": 0}, "--top-p"), ({"top_p": 1.5}, "--top-p")])
def test_bad_sampling_options_are_named(kw, option):
    with pytest.raises(ConfigError, match=f"^{option}: .*must be"):
        gen.check_request(gen.Sampling(**kw), 1, ())
    with pytest.raises(ConfigError, match="^--num-samples: "):
        gen.check_request(gen.Sampling(), 0, ())
    with pytest.raises(ConfigError, match="^--stop: "):
        gen.check_request(gen.Sampling(), 1, ["x", ""])


# ------------------------------------------------------------------ a trained run
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny transformer LM on the bytes of a small text, window 16, trained 2 steps."""
    from omegaconf import OmegaConf

    from bigtrain.run import rundir
    from bigtrain.run.job import train

    root = tmp_path_factory.mktemp("lm")
    corpus = root / "corpus.txt"
    corpus.write_text("the cat sat on the mat. the dog sat on the log. " * 40)
    args = ["dataset=text", f"dataset.path={corpus}", "dataset.seq_len=16", "model=transformer",
            "model.d_model=32", "model.num_layers=1", "model.positions=rotary",
            "trainer.max_steps=2", "trainer.batch_size=16", "trainer.progress=none",
            "logger=[]", "strategy.precision=fp32"]
    rundir.write_config(root / "run", OmegaConf.to_container(compose(args), resolve=True))
    train(to_typed(compose(args)), root / "run")
    return root / "run"


@pytest.fixture(scope="module")
def run(run_dir):
    """The run opened once: its compiled decode functions are shared by the tests."""
    from bigtrain.inference.restore import open_run

    return open_run(run_dir)


def test_several_prompts_and_samples_with_a_seed(run):
    sampling = gen.Sampling(temperature=1.0, top_k=20, top_p=0.95, seed=5)
    result = gen.generate(run, ["the ", "a dog"], 12, sampling, num_samples=3)
    outs = result.outputs
    assert [(o.prompt, o.sample) for o in outs] == [(i, j) for i in range(2) for j in range(3)]
    assert all(o.text.startswith(["the ", "a dog"][o.prompt]) for o in outs)
    assert all(len(o.ids) == 12 for o in outs) and result.tokens == 72 and result.cached
    assert len({o.text for o in outs[:3]}) > 1  # each sample its own draw
    again = gen.generate(run, ["the ", "a dog"], 12, sampling, num_samples=3).outputs
    assert [o.text for o in again] == [o.text for o in outs]
    other = gen.generate(run, ["the ", "a dog"], 12, gen.Sampling(1.0, 20, 0.95, seed=6),
                         num_samples=3).outputs
    assert [o.text for o in other] != [o.text for o in outs]


def test_stop_strings_and_a_prompt_longer_than_the_window(run):
    long = "on the mat. the dog sat on the log. the c"
    prompts = [long, long[-16:], "the c"]
    plain = gen.generate(run, prompts, 24, GREEDY).outputs
    assert plain[0].truncated and not plain[1].truncated
    assert plain[0].text.startswith(long)  # the output keeps the whole prompt
    assert plain[0].text[len(long):] == plain[1].text[16:]  # the model saw its last 16 bytes

    tails = [o.text[len(p):] for o, p in zip(plain, prompts, strict=True)]
    stop = tails[2][4:6]
    stopped = gen.generate(run, prompts, 24, GREEDY, stop=["zzz", stop]).outputs
    assert stopped[2].stop == stop
    for out, before, prompt, tail in zip(stopped, plain, prompts, tails, strict=True):
        if stop not in tail:
            assert out.text == before.text and out.stop is None
            continue
        cut = tail.index(stop)
        assert out.text == prompt + tail[:cut] and out.stop == stop
        assert out.ids == before.ids[: cut + len(stop)]  # up to the byte completing the stop


def test_a_plain_run_generates_without_importing_keras_hub(run, monkeypatch):
    """keras_hub costs 1.6 s to import: a transformer run's `generate` must not pay it."""
    import sys

    class Refuse:
        tried = []

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "keras_hub":
                self.tried.append(name)
                raise ImportError(f"{name} imported")
            return None

    monkeypatch.delitem(sys.modules, "keras_hub", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Refuse(), *sys.meta_path])
    out = gen.generate(run, ["the "], 3, GREEDY).outputs
    assert len(out[0].ids) == 3 and Refuse.tried == []


def invoke(*args: str):
    from typer.testing import CliRunner

    from bigtrain.cli.main import app

    return CliRunner().invoke(app, ["generate", *args])


def test_the_command_prints_each_text_under_a_header(run_dir):
    result = invoke(str(run_dir), "--prompt", "the ", "--prompt", "a", "--num-samples", "2",
                    "--max-new", "8", "--temperature", "0.7", "--top-p", "0.9", "--seed", "2",
                    "--stop", "\n", "--prompt", "x" * 20)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    headers = [ln for ln in lines if ln.startswith("==> ")]
    assert headers == [f"==> prompt {i}, sample {j} <==" for i in (1, 2, 3) for j in (1, 2)]
    assert lines[1].startswith("the ")
    assert "prompt 3 is longer than the window (16 tokens)" in result.stderr
    assert "generated 6 text(s)" in result.stderr and "with the KV cache" in result.stderr
    assert "in float32 whatever the training precision" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--top-p", "0"], "--top-p: 0.0 is not valid; must be in (0, 1]"),
    (["--stop", ""], "--stop: an empty string is not valid"),
    (["--temperature", "-1"], "--temperature"),
])
def test_the_command_refuses_bad_options(tmp_path, args, message):
    result = invoke(str(tmp_path), *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert "Traceback" not in result.output
