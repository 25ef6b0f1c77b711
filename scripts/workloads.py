"""What the benchmarks train, in one place: the language-model shapes, the bigtrain overrides
that build each workload, its FLOPs count, and the offline KerasHub preset. No TensorFlow at
import (bench_gpu --torch-only and bench_torch read the shapes without it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class LMShape:
    """A decoder-only transformer LM as bigtrain's `model=transformer` builds it, and a batch."""

    vocab: int
    seq: int
    d_model: int
    layers: int
    heads: int
    mlp_ratio: int = 4
    batch: int = 32


#: the small LM the CPU benchmarks train (3.26M parameters; issue 9's shape): vocab 256,
#: seq 128, d_model 256, 4 layers of 4 heads, MLP ratio 4, batch 32
LM_SMALL = LMShape(vocab=256, seq=128, d_model=256, layers=4, heads=4, mlp_ratio=4, batch=32)
#: GPT-2 small (conf/model/size/gpt2_small.yaml with GPT-2's 50,257-token vocabulary), at a
#: CPU's sequence and batch
GPT2_SMALL = LMShape(vocab=50257, seq=128, d_model=768, layers=12, heads=12, mlp_ratio=4,
                     batch=8)
#: bench_gpu's dry run on a CPU (device_check.sh --dry-run)
LM_TINY = LMShape(vocab=256, seq=64, d_model=64, layers=2, heads=2, mlp_ratio=4, batch=4)

#: the batch of the digits workloads (bigtrain's default)
DIGITS_BATCH = 32

#: LM_SMALL as bigtrain overrides (synthetic Markov-chain tokens, Adam, no dropout)
LM_SMALL_RUN = ["dataset=synthetic", "dataset.task=lm", f"dataset.vocab_size={LM_SMALL.vocab}",
                f"dataset.seq_len={LM_SMALL.seq}", "dataset.num_examples=2048",
                "model=transformer", f"model.d_model={LM_SMALL.d_model}",
                f"model.num_layers={LM_SMALL.layers}", f"model.num_heads={LM_SMALL.heads}",
                f"model.mlp_ratio={LM_SMALL.mlp_ratio}", "model.dropout=0", "optim=adam",
                f"trainer.batch_size={LM_SMALL.batch}"]
#: GPT2_SMALL as bigtrain overrides (model/size=gpt2_small: the same d_model, layers, heads)
GPT2_SMALL_RUN = ["dataset=synthetic", "dataset.task=lm",
                  f"dataset.vocab_size={GPT2_SMALL.vocab}", f"dataset.seq_len={GPT2_SMALL.seq}",
                  "dataset.num_examples=256", "model=transformer", "model/size=gpt2_small",
                  "model.dropout=0", "optim=adam", f"trainer.batch_size={GPT2_SMALL.batch}"]
DIGITS_CNN = ["dataset=digits", "model=cnn", "optim=adam", f"trainer.batch_size={DIGITS_BATCH}"]
DIGITS_RNN = ["dataset=digits", "model=rnn", "optim=adam", f"trainer.batch_size={DIGITS_BATCH}"]
DIGITS_MLP = ["dataset=digits", "model=mlp", "model.dropout=0", "optim=adam",
              f"trainer.batch_size={DIGITS_BATCH}"]


def lm_flops_per_token(shape: LMShape) -> float:
    """Training FLOPs per token of the LM: 3x the forward's matmuls (projections, attention
    scores and values over the whole sequence, the vocabulary head; no embedding lookups).
    Both sides of a comparison (bigtrain, PyTorch) are counted with it."""
    d = shape.d_model
    per_layer = (2 * d * 3 * d + 2 * d * d + 2 * 2 * d * shape.mlp_ratio * d
                 + 2 * 2 * shape.seq * d)
    return 3 * (shape.layers * per_layer + 2 * d * shape.vocab)


def gpt2_preset(path: Path, **shape) -> Path:
    """A GPT-2 causal-LM KerasHub preset of random weights with a byte-level tokenizer, made
    offline with KerasHub's own classes: the tests' fixture (tests/hub_presets.py, imported
    as `tests.hub_presets` from the repository root; the one place scripts/ names it)."""
    from tests.hub_presets import gpt2

    return gpt2(Path(path), **shape)
