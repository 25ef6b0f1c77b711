"""Sampling from a trained language model.

No KV cache: each new token reruns the model over the whole window (the dataset's sequence
length), so generating N tokens costs N full forward passes, O(N * T^2) attention work for a
window of T. Fine for the small models trained here; a cache is future work. Text is encoded as
UTF-8 bytes, so the model's vocabulary must cover 256 byte values.
"""

from __future__ import annotations

import numpy as np

from bigtrain.config.errors import ConfigError


def sample(model, window: int, prompt_ids: list[int], max_new: int, temperature: float,
           top_k: int, seed: int = 0) -> list[int]:
    """Append `max_new` sampled ids to `prompt_ids` (greedy if temperature == 0)."""
    rng = np.random.default_rng(seed)
    ids = list(prompt_ids)
    for _ in range(max_new):
        context = ids[-window:]
        x = np.zeros((1, window), np.int32)
        x[0, : len(context)] = context  # causal: the zero padding after it is never seen
        logits = np.asarray(model(x, training=False))[0, len(context) - 1].astype(np.float64)
        if temperature == 0:
            ids.append(int(np.argmax(logits)))
            continue
        if 0 < top_k < logits.size:
            cutoff = np.sort(logits)[-top_k]
            logits = np.where(logits >= cutoff, logits, -np.inf)
        p = np.exp((logits - logits.max()) / temperature)
        ids.append(int(rng.choice(logits.size, p=p / p.sum())))
    return ids


def generate_text(run_dir, prompt: str, max_new: int, temperature: float, top_k: int,
                  seed: int = 0, checkpoint: str = "latest") -> str:
    from bigtrain.train.restore import load_run

    _, c, _, _ = load_run(run_dir, checkpoint)
    spec = c.splits.spec
    if spec.task != "lm":
        raise ConfigError("RUN_DIR", f"{run_dir} trained a {spec.task} model; generate needs a "
                          "language model (dataset task lm)")
    if spec.num_outputs < 256:
        raise ConfigError("RUN_DIR", f"its vocabulary has {spec.num_outputs} tokens; text is "
                          "encoded as bytes, which needs 256")
    prompt_ids = list(prompt.encode("utf-8")) or [0]
    ids = sample(c.model, spec.input_shape[0], prompt_ids, max_new, temperature, top_k, seed)
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
