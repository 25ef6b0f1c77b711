"""Sampling from a trained language model.

Two decode paths, both compiled (`tf.function` around `tf.while_loop`, a call per chunk of
tokens rather than per token):

- with a key/value cache (bigtrain's transformer, `bigtrain.models.transformer.KVDecoder`):
  the context runs through the model once (`first`, the training forward pass on oneDNN),
  then each new token runs alone against every layer's cached keys and values (`steps`,
  XLA-compiled so the caches are updated in place and the small ops fuse);
- without one (other language models such as the rnn, or `cache=False`): each new token
  reruns the model over its whole window.

Both see the same context for every token, so greedy decoding gives the same tokens on
either path. A run trained in bf16 or fp16 decodes in float32 (`float32_model`: its weights
are float32 anyway), so that the two paths round alike.

The context is the text so far while it fits the window (the dataset's `seq_len`, what the
model was trained on). When it no longer fits, the older half of the window is dropped and
the newer half runs again to refill the cache (`context_start`): the model always sees
between half a window and a window of the latest tokens. A prompt longer than the window
is truncated on the left to its last `window` tokens (the output keeps the whole prompt;
`Generated.truncated` says it was).

Prompts are decoded as one batch (each one `num_samples` times): every row is at the same
position, so a prompt longer than the shortest one is fed token by token past it. Sampling:
temperature (0 = greedy), top-k, then top-p (nucleus), on float32 logits, drawn with
stateless random ops seeded by (`seed`, position): the same prompts, options and seed give
the same text. Stop strings end a row's text before the first one it generates; decoding
then runs in chunks of STOP_CHUNK tokens, checks between chunks, and ends once every row
has stopped.

Text is encoded with the run's vocabulary (preprocessing.json, `vocabulary`).
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from collections.abc import Callable, Sequence

import numpy as np

from bigtrain.core.errors import ConfigError

#: tokens decoded between two checks of the stop strings
STOP_CHUNK = 16


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How the next token is chosen from the logits."""

    temperature: float = 1.0  # 0 = greedy (argmax); the other options are then ignored
    top_k: int = 0  # sample among the k likeliest tokens (0 = all)
    top_p: float = 1.0  # ... among the likeliest whose probabilities sum to >= top_p
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def check(self) -> None:
        if not self.temperature >= 0:
            raise ConfigError("--temperature", f"{self.temperature} is not valid; must be "
                              ">= 0 (0 = greedy)")
        if self.top_k < 0:
            raise ConfigError("--top-k", f"{self.top_k} is not valid; must be >= 0 (0 = all)")
        if not 0 < self.top_p <= 1:
            raise ConfigError("--top-p", f"{self.top_p} is not valid; must be in (0, 1] "
                              "(1 = all)")


@dataclasses.dataclass
class Generated:
    """One continuation: prompt `prompt` (an index into the prompts), sample `sample`."""

    prompt: int
    sample: int
    text: str  # the prompt and its continuation
    ids: list[int]  # the new token ids (up to the stop string, if one was met)
    stop: str | None = None  # the stop string that ended it
    truncated: bool = False  # the prompt was longer than the window


def context_start(position: int, window: int) -> int:
    """Where the context of the token at index `position` begins: 0 while position <= window,
    then a multiple of (window + 1 - keep), keep = window // 2, so that position - start stays
    within [keep, window]; half a window is dropped each time the window is full. Works on
    Python ints and on int32 tensors alike."""
    keep = max(1, window // 2)
    period = window + 1 - keep
    start = (position - keep) // period * period
    return max(start, 0) if isinstance(position, int) else _tf().maximum(start, 0)


def _tf():
    import tensorflow as tf

    return tf


class WindowDecoder:
    """The cache-free path: the model over the whole context, for every token."""

    step = None

    def __init__(self, model):
        self.model = model

    def prefill(self, ids, length):
        return self.model(ids, training=False)[:, length - 1], ()


def pick(logits, sampling: Sampling, position, seed=None):
    """The next token of each row (int32 [B]) from float32 logits [B, V] at index `position`;
    `seed` (a tensor) overrides sampling.seed."""
    tf = _tf()
    if sampling.greedy:
        return tf.argmax(logits, axis=-1, output_type=tf.int32)
    logits = tf.cast(logits, tf.float32) / sampling.temperature
    never = tf.constant(-np.inf, tf.float32)
    if 0 < sampling.top_k < logits.shape[-1]:
        kth = tf.math.top_k(logits, sampling.top_k, sorted=True).values[:, -1:]
        logits = tf.where(logits < kth, never, logits)
    if sampling.top_p < 1:
        ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
        before = tf.math.cumsum(tf.nn.softmax(ordered), axis=-1, exclusive=True)
        cutoff = tf.reduce_min(tf.where(before < sampling.top_p, ordered, np.inf), axis=-1,
                               keepdims=True)
        logits = tf.where(logits < cutoff, never, logits)
    seed = sampling.seed if seed is None else seed
    pair = tf.stack([tf.cast(seed, tf.int64), tf.cast(position, tf.int64)])
    # a categorical draw as the argmax of logits + Gumbel noise (XLA has no multinomial)
    u = tf.random.stateless_uniform(tf.shape(logits), pair, minval=np.finfo(np.float32).tiny)
    return tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=-1, output_type=tf.int32)


#: compiled decode functions, per model: (path, window, length, sampling) -> (first, steps)
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(model, decoder, window: int, length: int, sampling: Sampling):
    """`_functions`, traced once per model and settings (a process that decodes again,
    the benchmark or a test, reuses them)."""
    done = _COMPILED.setdefault(model, {})
    key = (type(decoder).__name__, window, length, dataclasses.replace(sampling, seed=0))
    if key not in done:
        done[key] = _functions(decoder, window, length, sampling)
    return done[key]


def _functions(decoder, window: int, length: int, sampling: Sampling):
    """Two compiled functions over ids [B, >= end + length] (the prompts, then the tokens
    decoded so far), the prompts' lengths [B] and the seed; a row's prompt tokens are kept,
    the others picked. `length`: the context's padded length (the window, or less when all
    fits); `sampling.seed` is not used (the seed is an input: no new trace per seed).

    - `first(ids, prompt_len, seed, t, begin)`: the token at index t from the context
      ids[begin:t] run anew (the prefill); returns (ids, caches).
    - `steps(ids, prompt_len, seed, t, begin, caches, n)`: the tokens at t .. t+n-1, one step
      each: on the cache (contexts that all begin at `begin`; XLA-compiled, so the caches are
      updated in place), or each from its whole context (no cache). Returns (ids, caches).
    """
    tf = _tf()

    def choose(ids, prompt_len, seed, t, logits):
        token = tf.where(t < prompt_len, ids[:, t], pick(logits, sampling, t, seed))
        return tf.where(tf.range(tf.shape(ids)[1])[None] == t, token[:, None], ids)

    def refill(ids, t, begin):
        context = tf.slice(ids, tf.stack([0, begin]), [ids.shape[0], length])
        return decoder.prefill(context, t - begin)

    @tf.function(autograph=False)
    def first(ids, prompt_len, seed, t, begin):
        logits, caches = refill(ids, t, begin)
        return choose(ids, prompt_len, seed, t, logits), caches

    def body(i, ids, prompt_len, seed, t, begin, caches):
        if decoder.step is None:
            logits, caches = refill(ids, t, context_start(t, window))
        else:
            logits, caches = decoder.step(ids[:, t - 1], t - 1 - begin, caches)
        ids = choose(ids, prompt_len, seed, t, logits)
        return i + 1, ids, prompt_len, seed, t + 1, begin, caches

    @tf.function(autograph=False, jit_compile=decoder.step is not None)
    def steps(ids, prompt_len, seed, t, begin, caches, n):
        out = tf.while_loop(lambda i, *_: i < n, body,
                            (tf.constant(0), ids, prompt_len, seed, t, begin, caches))
        return out[1], out[6]

    return first, steps


def decode(model, prompts: Sequence[Sequence[int]], max_new: int, sampling: Sampling,
           window: int, cache: bool = True,
           stopped: Callable[[int, list[int]], bool] | None = None) -> list[list[int]]:
    """`max_new` new token ids for each prompt (ids, each at most `window` long), decoded as
    one batch; with the KV cache when the model has one and `cache`. `stopped(row, ids)`
    (optional) says whether a row's new ids so far end it: decoding then stops once every
    row has stopped (their ids may run past the stop; the caller cuts them)."""
    import tensorflow as tf

    from bigtrain.models.transformer import kv_decoder

    decoder = (kv_decoder(model) if cache else None) or WindowDecoder(model)
    cached = decoder.step is not None
    lengths = np.array([len(p) for p in prompts], np.int32)
    if lengths.min() < 1 or lengths.max() > window:
        raise ValueError(f"prompts must hold 1..{window} ids")
    end = int(lengths.max()) + max_new  # every row at the same index: the longest sets it
    # the cache holds what the text can fill; a Keras model takes only its input's length
    length = min(window, end) if cached else window
    buffer = np.zeros((len(prompts), end + length), np.int32)
    for row, p in enumerate(prompts):
        buffer[row, : len(p)] = p
    first, steps = _compiled(model, decoder, window, length, sampling)
    ids, prompt_len = tf.constant(buffer), tf.constant(lengths)
    seed = tf.constant(sampling.seed, tf.int64)
    t = int(lengths.min())
    begin, caches = -1, ()
    chunk = end - t if stopped is None else STOP_CHUNK
    check = t + chunk
    while t < end:
        if cached and context_start(t, window) != begin:  # the first token, or a full window
            begin = context_start(t, window)
            ids, caches = first(ids, prompt_len, seed, tf.constant(t), tf.constant(begin))
            t += 1
        else:  # up to the next check, or the next full window: contexts [begin, t) fit
            limit = min(end, check, begin + window + 1 if cached else end)
            ids, caches = steps(ids, prompt_len, seed, tf.constant(t), tf.constant(begin),
                                caches, tf.constant(limit - t))
            t = limit
        if stopped is not None and t >= check:
            now = ids.numpy()
            if all(stopped(row, now[row, p: min(t, p + max_new)].tolist())
                   for row, p in enumerate(lengths)):
                break
            check = t + chunk
    final = ids.numpy()
    return [final[row, p: min(t, p + max_new)].tolist() for row, p in enumerate(lengths)]


def continuation(decode_ids: Callable[[list[int]], str], prompt_ids: list[int],
                 new_ids: list[int]) -> str:
    """The text `new_ids` add after the prompt: the tail of the decoded whole where the
    prompt decodes to a prefix of it (tokenizers that join pieces), else the new ids alone."""
    whole, head = decode_ids(list(prompt_ids) + list(new_ids)), decode_ids(list(prompt_ids))
    return whole[len(head):] if whole.startswith(head) else decode_ids(list(new_ids))


def _first_stop(text: str, stops: Sequence[str]) -> tuple[int, str | None]:
    """Where the earliest stop string begins in `text` (len(text) if none) and which."""
    found = [(text.find(s), s) for s in stops if s in text]
    return min(found) if found else (len(text), None)


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


#: float32 copies of models that compute in another precision: model -> copy
_FLOAT32: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def float32_model(restored):
    """The run's model computing in float32: itself, or (a run trained in bf16 or fp16) a
    float32 copy holding its current weights. The weights are float32 either way (mixed
    precision rounds only the compute), so this decodes at least as accurately, and the
    cached and cache-free paths then round alike."""
    from bigtrain.models import build_model

    model = restored.model
    if model.compute_dtype == "float32":
        return model
    if model not in _FLOAT32:
        spec = dataclasses.replace(restored.spec, num_outputs=int(model.output.shape[-1]))
        _FLOAT32[model] = build_model(restored.config.model, spec, "fp32")
    copy = _FLOAT32[model]
    copy.set_weights(model.get_weights())
    return copy


def check_request(sampling: Sampling, num_samples: int, stop: Sequence[str]) -> None:
    """The options of a request, checked before anything is loaded."""
    sampling.check()
    if num_samples < 1:
        raise ConfigError("--num-samples", f"{num_samples} is not valid; must be >= 1")
    if any(s == "" for s in stop):
        raise ConfigError("--stop", "an empty string is not valid (it would stop at once); "
                          "give the text to stop at")


@dataclasses.dataclass
class Generation:
    """What `generate` did: its texts and how long decoding took."""

    outputs: list[Generated]
    window: int  # the model's context length (dataset.seq_len)
    seconds: float  # decoding, tracing and compiling included
    tokens: int  # new tokens decoded, in all rows (past a stop string included)
    cached: bool  # decoded with the KV cache
    checkpoint: str  # which checkpoint (Restored.describe)

    def describe(self) -> str:
        rate = self.tokens / self.seconds if self.seconds > 0 else float("inf")
        how = "with the KV cache" if self.cached else "without a cache"
        return (f"generated {len(self.outputs)} text(s), {self.tokens} new tokens in "
                f"{self.seconds:.2f} s ({rate:,.0f} tokens/s, {how}, in float32 whatever the "
                f"training precision; compiling included) "
                f"with the {self.checkpoint}")


def generate(run, prompts: Sequence[str], max_new: int, sampling: Sampling = Sampling(),
             num_samples: int = 1, stop: Sequence[str] = (), checkpoint: str = "auto",
             cache: bool = True, start_token: bool = True) -> Generation:
    """Continue each prompt `num_samples` times with a run's language model, in one batch;
    the outputs in order: prompt by prompt, sample by sample. `run`: a run dir (its
    `checkpoint` is restored), or a run already opened (`restore.open_run`: a process that
    generates again reuses the compiled decode functions). `start_token`: a KerasHub model's
    prompt begins with its tokenizer's start token, as KerasHub packs text; false for a
    prompt rendered by a chat template, which puts in what the model trained with."""
    check_request(sampling, num_samples, stop)
    prompts = list(prompts) or [""]
    from bigtrain.inference.restore import Restored, open_run
    from bigtrain.models.transformer import kv_decoder

    def check_lm(run_dir, spec) -> None:
        if spec.task != "lm":
            raise ConfigError("RUN_DIR", f"{run_dir} trained a {spec.task} model; generate "
                              "needs a language model (dataset task lm)")

    if not isinstance(run, Restored):
        from pathlib import Path

        from bigtrain.data import preprocess

        pre = preprocess.read(Path(run)) if Path(run).is_dir() else None
        if pre is not None:  # refused before a model is built and restored
            check_lm(run, preprocess.spec_of(pre))
    r = run if isinstance(run, Restored) else open_run(run, checkpoint)
    spec = r.spec
    check_lm(r.run_dir, spec)
    window = spec.input_shape[0]
    from bigtrain.models import hub

    if hub.holds_hub_task(r.model):
        return _generate_with_keras_hub(r, prompts, max_new, sampling, num_samples, stop,
                                        start_token)
    encode, decode_ids = vocabulary(r.preprocessing, r.run_dir)
    encoded = [[int(i) for i in encode(p)] or [0] for p in prompts]  # "": start from id 0
    contexts = [ids[-window:] for ids in encoded]  # too long: truncated on the left
    rows = [(i, j) for i in range(len(prompts)) for j in range(num_samples)]

    def text_of(row: int, new: list[int]) -> str:
        return continuation(decode_ids, contexts[rows[row][0]], new)

    def stopped(row: int, new: list[int]) -> bool:
        return _first_stop(text_of(row, new), stop)[1] is not None

    tic = time.perf_counter()
    with r.ema_weights():
        model = float32_model(r)
        news = decode(model, [contexts[i] for i, _ in rows], max_new, sampling, window,
                      cache, stopped if stop else None)
    seconds = time.perf_counter() - tic
    out = []
    for row, ((i, j), new) in enumerate(zip(rows, news, strict=True)):
        text = text_of(row, new)
        cut, hit = _first_stop(text, stop)
        if hit is not None:  # up to the id that completes the stop string
            new = next(new[:n] for n in range(len(new) + 1) if stopped(row, new[:n]))
        out.append(Generated(i, j, prompts[i] + text[:cut], new, hit,
                             len(encoded[i]) > window))
    cached = cache and kv_decoder(model) is not None
    return Generation(out, window, seconds, sum(map(len, news)), cached, r.describe())


#: a restored KerasHub model's merged float32 task, its preprocessor and the sampling it is
#: compiled for: restored model -> {"task", "pre", "sampling"}
_HUB_TASKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def keras_hub_sampler(sampling: Sampling):
    """The KerasHub sampler that chooses as `sampling` says."""
    import keras_hub

    if sampling.greedy:
        return keras_hub.samplers.GreedySampler()
    common = {"seed": sampling.seed, "temperature": sampling.temperature}
    if sampling.top_p < 1:
        return keras_hub.samplers.TopPSampler(p=sampling.top_p, k=sampling.top_k or None,
                                              **common)
    if sampling.top_k:
        return keras_hub.samplers.TopKSampler(k=sampling.top_k, **common)
    return keras_hub.samplers.RandomSampler(**common)


def _generate_with_keras_hub(r, prompts: list[str], max_new: int, sampling: Sampling,
                             num_samples: int, stop: Sequence[str],
                             start_token: bool = True) -> Generation:
    """A fine-tuned KerasHub causal LM (model=hub) decodes with KerasHub's own cached
    `generate`: the adapters merged into a float32 copy, the base preset's preprocessor
    (its tokenizer) attached, the sampler chosen by `sampling`. Prompt and new tokens share
    the run's window (dataset.seq_len): a longer prompt is cut on the left."""
    from bigtrain.models import hub

    window = r.spec.input_shape[0]
    tok = r.tokenizer
    encoded = [tok.encode([p])[0] if p else [] for p in prompts]
    truncated = [len(ids) > window - 1 for ids in encoded]
    texts = [tok.decode(ids[-(window - 1):]) if cut else p
             for p, ids, cut in zip(prompts, encoded, truncated, strict=True)]
    longest = max((min(len(ids), window - 1) for ids in encoded), default=0)
    tic = time.perf_counter()
    held = _HUB_TASKS.get(r.model)
    if held is None:  # merged and set up once per restored run: a chat's turns reuse it
        with r.ema_weights():
            task = hub.hub_task(hub.merged(r.model, r.spec))
        task.preprocessor = None
        held = _HUB_TASKS[r.model] = {"task": task, "pre": {}, "sampling": None}
    task = held["task"]
    if start_token not in held["pre"]:
        # packed and unpacked here rather than inside `generate`, to know the ids it decoded
        held["pre"][start_token] = type(task).preprocessor_cls.from_preset(
            hub.locate(r.config.model.preset), sequence_length=window,
            add_start_token=start_token)
    pre = held["pre"][start_token]
    if held["sampling"] != sampling:  # compiling resets KerasHub's traced generate
        task.compile(sampler=keras_hub_sampler(sampling))
        held["sampling"] = sampling
    rows = [(i, j) for i in range(len(prompts)) for j in range(num_samples)]
    packed = pre.generate_preprocess([texts[i] for i, _ in rows],
                                     sequence_length=min(window, longest + 1 + max_new))
    ends = [pre.tokenizer.end_token_id] + ([pre.tokenizer.end_token2_id]
                                           if hasattr(pre.tokenizer, "end_token2_id") else [])
    for s in stop:  # a stop string that is one token (a chat template's end of turn) ends
        ids_of = tok.encode([s])[0]  # decoding at once, as the end token does
        if len(ids_of) == 1 and ids_of[0] not in ends:
            ends.append(int(ids_of[0]))
    made = task.generate(packed, stop_token_ids=ends)
    seconds = time.perf_counter() - tic
    ids = np.asarray(made["token_ids"])
    starts = np.asarray(packed["padding_mask"]).sum(axis=1)
    stops_at = np.asarray(made["padding_mask"]).sum(axis=1)
    out, tokens = [], 0
    for row, (i, j) in enumerate(rows):
        # the batch decodes to the longest prompt's length: a shorter prompt keeps max_new
        new_ids = [int(t) for t in ids[row, starts[row]:min(stops_at[row], starts[row] + max_new)]]
        tokens += len(new_ids)  # an end token included: it was decoded too
        if new_ids and new_ids[-1] in ends:
            new_ids = new_ids[:-1]
        new_text = tok.decode(new_ids)
        cut, hit = _first_stop(new_text, stop)
        if hit is not None:  # up to the id that completes the stop string
            new_ids = next(new_ids[:n] for n in range(len(new_ids) + 1)
                           if hit in tok.decode(new_ids[:n]))
        out.append(Generated(i, j, prompts[i] + new_text[:cut], new_ids, hit, truncated[i]))
    return Generation(out, window, seconds, tokens, True,
                      r.describe() + " (KerasHub's cached sampler)")


def generate_text(run_dir, prompt: str, max_new: int, temperature: float, top_k: int,
                  seed: int = 0, checkpoint: str = "auto") -> str:
    """One continuation of one prompt (see `generate`)."""
    sampling = Sampling(temperature=temperature, top_k=top_k, seed=seed)
    return generate(run_dir, [prompt], max_new, sampling, checkpoint=checkpoint).outputs[0].text
