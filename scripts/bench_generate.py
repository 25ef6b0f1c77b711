"""New tokens per second of greedy generation: bigtrain's transformer with its KV cache,
the same model without it, and KerasHub's cached `generate` on a GPT-2 of the same shape.

    python -m scripts.bench_generate [--new 64,512] [--reps 3] [--window 640] [--out FILE.json]

The models (random weights, built from their configs, nothing downloaded): workloads.LM_SMALL's
vocabulary 256, d 256, 4 layers of 4 heads, MLP 1024; learned positions, tied output
embedding, a window of `--window` tokens, float32 (`bigtrain generate` decodes in float32
whatever the run's precision). One prompt of 16 tokens, batch 1, greedy, `--new` new tokens:

  - `bigtrain_cache`: `bigtrain.inference.generate.decode` (the KV cache path, as
    `bigtrain generate` runs it);
  - `bigtrain_no_cache`: the same call with `cache=False` (every token reruns the model
    over the window: the path other models take), compiled as well;
  - `keras_hub`: `keras_hub.models.GPT2CausalLM(GPT2Backbone(...), preprocessor=None)`,
    `compile(sampler="greedy")` (its default: no XLA), `generate({"token_ids",
    "padding_mask"}, stop_token_ids=None)` on a [1, 16 + new] input;
  - `keras_hub_xla`: the same, compiled with `jit_compile=True`;
  - `eager_no_cache` (64 new tokens only): the loop `bigtrain generate` ran before the
    cache, the Keras model called eagerly per token on the whole window.

Every one is warmed up first (traced and compiled at the shapes it is timed at), then the
repetitions run side by side, the order rotated each time (scripts/harness.py's
alternation); each figure is the median of `--reps` runs, wall time of the whole call
(prefill included). bigtrain's cached tokens are checked to equal its cache-free ones.
`first_call_s` is each warm-up call: tracing and compiling included (bigtrain_no_cache's
decodes 16 tokens). Results go to a results file of the run (its machine and load average
with it).
"""

from __future__ import annotations

import json
import os
import time

from scripts import harness, report
from scripts.workloads import LM_SMALL

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VOCAB, D, LAYERS, HEADS, PROMPT = (LM_SMALL.vocab, LM_SMALL.d_model, LM_SMALL.layers,
                                   LM_SMALL.heads, 16)


def bigtrain_model(window: int):
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed
    from bigtrain.data.spec import DatasetSpec
    from bigtrain.models import build_model

    cfg = to_typed(compose(["model=transformer", f"model.d_model={D}",
                            f"model.num_heads={HEADS}", f"model.num_layers={LAYERS}",
                            f"model.mlp_ratio={LM_SMALL.mlp_ratio}", "model.positions=learned",
                            "model.tie_embeddings=true", "model.dropout=0"]))
    return build_model(cfg.model, DatasetSpec("bench", "lm", (window,), "int32", VOCAB, 1, 0, 0))


def hub_model(window: int, jit: bool):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=HEADS, hidden_dim=D,
        intermediate_dim=LM_SMALL.mlp_ratio * D, dropout=0.0, max_sequence_length=window)
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    lm.compile(sampler="greedy", **({"jit_compile": True} if jit else {}))
    return lm


def eager_no_cache(model, window: int, prompt: list[int], new: int) -> list[int]:
    """`bigtrain.inference.generate.sample` as it was before the KV cache, greedy."""
    import numpy as np

    ids = list(prompt)
    for _ in range(new):
        context = ids[-window:]
        x = np.zeros((1, window), np.int32)
        x[0, : len(context)] = context
        logits = np.asarray(model(x, training=False))[0, len(context) - 1]
        ids.append(int(np.argmax(logits)))
    return ids[len(prompt):]


def main() -> None:
    ap = harness.arguments("bench_generate", __doc__)
    ap.add_argument("--new", default="64,512", help="new tokens per run, comma separated")
    ap.add_argument("--reps", type=int, default=3, help="timed runs of each, alternating")
    ap.add_argument("--window", type=int, default=640, help="the models' context length")
    args = ap.parse_args()
    news = [int(n) for n in args.new.split(",")]
    if max(news) + PROMPT > args.window:
        ap.error(f"--window {args.window} must hold the prompt ({PROMPT}) and {max(news)} "
                 "new tokens (KerasHub's generate cannot go past it)")

    run = harness.Run("bench_generate", args.out)
    import keras
    import numpy as np
    import tensorflow as tf

    cores = os.cpu_count() or 1
    tf.config.threading.set_intra_op_parallelism_threads(cores)
    tf.config.threading.set_inter_op_parallelism_threads(1 if cores <= 2 else 2)
    keras.mixed_precision.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    from bigtrain.inference.generate import STOP_CHUNK, Sampling, decode

    ours = bigtrain_model(args.window)
    hub, hub_xla = hub_model(args.window, jit=False), hub_model(args.window, jit=True)
    prompt = np.random.default_rng(0).integers(1, VOCAB, size=PROMPT).tolist()
    greedy = Sampling(temperature=0)

    def ours_run(new: int, cache: bool, warm: bool = False):
        stopped = (lambda row, ids: True) if warm and not cache else None  # one chunk
        return decode(ours, [prompt], new, greedy, args.window, cache, stopped)[0]

    def hub_run(lm, new: int):
        ids = np.zeros((1, PROMPT + new), np.int32)
        ids[0, :PROMPT] = prompt
        mask = np.arange(PROMPT + new)[None] < PROMPT
        out = lm.generate({"token_ids": ids, "padding_mask": mask}, stop_token_ids=None)
        return np.asarray(out["token_ids"])[0, PROMPT:].tolist()

    results: dict = {}
    for new in news:
        runs = {
            "bigtrain_cache": lambda new=new, **kw: ours_run(new, True, **kw),
            "bigtrain_no_cache": lambda new=new, **kw: ours_run(new, False, **kw),
            "keras_hub": lambda new=new, **kw: hub_run(hub, new),
            "keras_hub_xla": lambda new=new, **kw: hub_run(hub_xla, new),
        }
        if new <= 64:
            runs["eager_no_cache"] = lambda new=new, **kw: eager_no_cache(
                ours, args.window, prompt, new)
        warm = {}
        for name, fn in runs.items():
            if name == "eager_no_cache":
                continue  # nothing to compile
            tic = time.perf_counter()
            warm[name] = fn(warm=True)
            warm[name + "_first_call_s"] = round(time.perf_counter() - tic, 2)
            what = f" ({STOP_CHUNK} tokens)" if name == "bigtrain_no_cache" else ""
            print(f"{new} new tokens: {name} warmed up in {warm[name + '_first_call_s']} s"
                  f"{what}", flush=True)
        tokens: dict[str, list[int]] = {}

        def timed(name: str, fn, tokens=tokens) -> float:
            tic = time.perf_counter()
            tokens[name] = fn()
            return time.perf_counter() - tic

        def show(name: str, seconds: float, new=new) -> None:
            print(f"{new} new tokens: {name} {seconds:.2f} s ({new / seconds:,.0f} tokens/s)",
                  flush=True)

        measured = harness.alternate(
            {name: lambda name=name, fn=fn: timed(name, fn) for name, fn in runs.items()},
            args.reps, rotate=True, on_value=show)
        times = measured.values
        rate = {name: new / t for name, t in measured.medians().items()}
        results[str(new)] = {
            "tokens_per_s": {k: round(v, 1) for k, v in rate.items()},
            "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "first_call_s": {k[: -len("_first_call_s")]: v for k, v in warm.items()
                             if k.endswith("_first_call_s")},
            "cache_over_no_cache": round(rate["bigtrain_cache"] / rate["bigtrain_no_cache"], 1),
            "cache_over_keras_hub": round(rate["bigtrain_cache"] / rate["keras_hub"], 2),
            "cache_over_keras_hub_xla": round(rate["bigtrain_cache"] / rate["keras_hub_xla"], 2),
            "same_tokens_cache_and_no_cache": tokens["bigtrain_cache"] ==
            tokens["bigtrain_no_cache"],
        }
        if "eager_no_cache" in rate:
            results[str(new)]["cache_over_eager_no_cache"] = round(
                rate["bigtrain_cache"] / rate["eager_no_cache"], 1)
            results[str(new)]["same_tokens_eager"] = tokens["eager_no_cache"] == \
                tokens["bigtrain_cache"]
        print(f"{new} new tokens: " + json.dumps(results[str(new)]), flush=True)

    out = {"model": {"vocab": VOCAB, "d_model": D, "layers": LAYERS, "heads": HEADS,
                     "mlp": LM_SMALL.mlp_ratio * D, "window": args.window, "prompt": PROMPT,
                     "batch": 1, "precision": "fp32", "parameters": int(ours.count_params()),
                     "keras_hub_parameters": int(hub.count_params())},
           "reps": args.reps, "results": results}
    path = run.write(out, table_rows)
    print(report.table(table_rows(out)))
    print(f"written to {path}")


def table_rows(record: dict) -> list[dict]:
    """The results file's table: new tokens/s of each method at each length, then the
    ratios of the KV cache to the others."""
    results = record["results"]
    counts = list(results)
    rows = []
    methods = dict.fromkeys(m for r in results.values() for m in r["tokens_per_s"])
    for method in methods:
        rows.append({"new tokens/s": method, **{
            f"{n} new tokens": results[n]["tokens_per_s"].get(method) for n in counts}})
    for key, label in (("cache_over_no_cache", "cache over no cache"),
                       ("cache_over_keras_hub", "cache over KerasHub"),
                       ("cache_over_keras_hub_xla", "cache over KerasHub, XLA"),
                       ("cache_over_eager_no_cache", "cache over the eager loop")):
        rows.append({"new tokens/s": label, **{
            f"{n} new tokens": f"{results[n][key]}x" if key in results[n] else None
            for n in counts}})
    return rows


if __name__ == "__main__":
    main()
