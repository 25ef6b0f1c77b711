"""Sampling from a trained language model.

No KV cache: each new token reruns the model over the whole window (the dataset's sequence
length), so generating N tokens costs N full forward passes, O(N * T^2) attention work for a
window of T. Fine for the small models trained here; a cache is future work. Text is encoded
with the run's vocabulary (preprocessing.json): UTF-8 bytes, or the characters of a `char`
vocabulary.
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


def vocabulary(pre: dict, run_dir=None) -> tuple:
    """(encode, decode) of a language model's text, from its preprocessing.json: the run's
    tokenizer (`<run_dir>/tokenizer/`, bigtrain.data.tokenizers), bytes, the characters of a
    `char` vocabulary, or (ids vocabularies of >= 256 tokens) bytes."""
    vocab = (pre.get("input") or {}).get("vocab") or {}
    if vocab.get("type") == "tokenizer":
        from bigtrain.data import tokenizers

        where = f"{vocab['tokenizer']['dir']}/ folder"
        if run_dir is None:
            raise ConfigError("RUN_DIR", f"this run's text goes through the "
                              f"{vocab['tokenizer']['kind']} tokenizer in its {where}: "
                              "vocabulary(pre, run_dir) needs the run dir")
        tok = tokenizers.of_run(run_dir)
        if tok is None:
            raise ConfigError("RUN_DIR", f"this run's text goes through its "
                              f"{vocab['tokenizer']['kind']} tokenizer, kept in its {where}, "
                              "which is missing")
        return (lambda text: tok.encode([text])[0] if text else []), tok.decode
    if vocab.get("type") == "char":
        first, unknown = int(vocab["first_id"]), int(vocab["unknown_id"])
        table = {ch: first + i for i, ch in enumerate(vocab["chars"])}
        chars = {first + i: ch for i, ch in enumerate(vocab["chars"])}

        def encode(text: str) -> list[int]:
            return [table.get(ch, unknown) for ch in text]

        def decode(ids: list[int]) -> str:
            return "".join(chars.get(i, "") for i in ids)

        return encode, decode
    size = int(pre["spec"]["num_outputs"])
    if vocab.get("type") not in (None, "byte") and size < 256:
        raise ConfigError("RUN_DIR", f"its vocabulary has {size} token ids and no text "
                          "encoding; generate encodes text as bytes, which needs 256")

    def encode_bytes(text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode_bytes(ids: list[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    return encode_bytes, decode_bytes


def generate_text(run_dir, prompt: str, max_new: int, temperature: float, top_k: int,
                  seed: int = 0, checkpoint: str = "best") -> str:
    from bigtrain.train.restore import open_run

    r = open_run(run_dir, checkpoint)
    spec = r.spec
    if spec.task != "lm":
        raise ConfigError("RUN_DIR", f"{run_dir} trained a {spec.task} model; generate needs a "
                          "language model (dataset task lm)")
    encode, decode = vocabulary(r.preprocessing)
    prompt_ids = encode(prompt) or [0]
    with r.ema_weights():
        ids = sample(r.model, spec.input_shape[0], prompt_ids, max_new, temperature, top_k,
                     seed)
    return decode(ids)
