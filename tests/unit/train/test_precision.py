"""bf16 trains like fp32: on learnable data the loss curves match within a stated tolerance;
`strategy.precision=auto` picks bf16 only where the hardware has it natively."""

from __future__ import annotations

import pytest

from bigtrain.cli.hydra_glue import compose
from bigtrain.config.schema import to_typed

pytestmark = pytest.mark.slow

#: the largest gap allowed between the bf16 and fp32 loss at any logged step (nats)
TOLERANCE = 0.05
LM = ["dataset=synthetic", "dataset.task=lm", "dataset.vocab_size=64", "dataset.seq_len=32",
      "dataset.num_examples=1024", "model=transformer", "model.d_model=64",
      "model.num_layers=2", "model.num_heads=2", "model.dropout=0", "optim=adam",
      "optim.lr=3e-3", "trainer.batch_size=32", "trainer.max_steps=60", "trainer.log_every=5",
      "trainer.eval_every=30", "trainer.progress=none", "logger=[]"]


def curve(tmp_path, precision):
    from helpers import read_jsonl

    from bigtrain.run.job import train

    run = tmp_path / precision
    train(to_typed(compose([*LM, f"strategy.precision={precision}"])), run)
    return [r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]


def test_bf16_loss_curve_matches_fp32(tmp_path):
    fp32, bf16 = curve(tmp_path, "fp32"), curve(tmp_path, "bf16")
    assert len(fp32) == len(bf16) == 12
    assert fp32[-1] < fp32[0] - 0.5  # the data is learnable: the curve really moves
    gaps = [abs(a - b) for a, b in zip(fp32, bf16, strict=True)]
    assert max(gaps) < TOLERANCE, gaps


def test_auto_precision_follows_native_support():
    from bigtrain.strategy.devices import resolve_precision

    assert resolve_precision("fp32", "cpu", gpus=[], flags={"avx512_bf16"}) == "fp32"
    assert resolve_precision("auto", "tpu", gpus=[], flags=set()) == "bf16"
    assert resolve_precision("auto", "auto", gpus=[("A100", (8, 0))], flags=set()) == "bf16"
    assert resolve_precision("auto", "auto", gpus=[("V100", (7, 0))], flags=set()) == "fp32"
    assert resolve_precision("auto", "cpu", gpus=[], flags={"avx2"}) == "fp32"
    assert resolve_precision("auto", "cpu", gpus=[], flags={"avx512_bf16"}) == "bf16"
    # recurrent models train faster in fp32 on a CPU, bf16 native or not; GPUs keep bf16
    cpu_bf16 = {"gpus": [], "flags": {"amx_bf16"}}
    assert resolve_precision("auto", "cpu", **cpu_bf16, recurrent=True) == "fp32"
    assert resolve_precision("auto", "auto", **cpu_bf16, recurrent=True) == "fp32"
    assert resolve_precision("bf16", "cpu", **cpu_bf16, recurrent=True) == "bf16"
    assert resolve_precision("auto", "auto", gpus=[("A100", (8, 0))], flags=set(),
                             recurrent=True) == "bf16"


@pytest.mark.parametrize("model,expected", [("rnn", "fp32"), ("mlp", "bf16")])
def test_auto_precision_of_a_run_on_a_native_bf16_cpu(tmp_path, monkeypatch, caplog, model,
                                                      expected):
    """On a CPU with native bf16, `auto` trains an RNN in fp32 and says why in the log; an MLP
    in bf16. The summary's precision is the dtype the run computed in."""
    import logging

    from bigtrain.run.job import train
    from bigtrain.strategy import devices

    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    config = to_typed(compose(["dataset=digits", f"model={model}", "trainer.max_steps=2",
                               "trainer.eval_every=0", "trainer.progress=none", "logger=[]",
                               "trainer.batch_size=16"]))
    assert config.strategy.precision == "auto" and config.model.recurrent == (model == "rnn")
    with caplog.at_level(logging.INFO, logger="bigtrain"):
        summary = train(config, tmp_path)
    assert summary["flops"]["precision"] == expected
    why = ("recurrent layers train faster in fp32 on a CPU" if model == "rnn"
           else "native bf16 on this CPU")
    assert f"precision {expected} (auto: {why})" in caplog.text


def test_bf16_language_model_logits_are_a_bf16_matmul_returned_in_float32():
    """The tied LM head (a third of GPT-2 small's FLOPs) multiplies in the compute dtype,
    against the embedding matrix as stored (no transposed copy), and hands the loss float32
    logits; under fp32 it is the float32 product."""
    import numpy as np
    import tensorflow as tf

    from bigtrain.models import dtype_policy
    from bigtrain.models.transformer import TokenEmbedding

    for policy, dtype, tol in (("mixed_bfloat16", tf.bfloat16, 2e-2), ("float32", tf.float32,
                                                                        1e-6)):
        with dtype_policy(policy):
            embed = TokenEmbedding(64, 16)
        embed.build(None)
        x = tf.random.stateless_normal((2, 3, 16), seed=(1, 2))
        fn = tf.function(lambda v, embed=embed: embed(v, logits=True))
        graph = fn.get_concrete_function(x).graph
        matmuls = [op for op in graph.get_operations() if op.type == "MatMul"]
        assert len(matmuls) == 1 and matmuls[0].get_attr("T") == dtype
        assert matmuls[0].get_attr("transpose_b")
        assert not [op for op in graph.get_operations() if op.type == "Transpose"]
        out = fn(x)
        assert out.dtype == tf.float32 and out.shape == (2, 3, 64)
        ref = np.einsum("btd,vd->btv", x.numpy(), embed.embeddings.numpy())
        assert np.abs(out.numpy() - ref).max() < tol
