"""`bigtrain eval RUN --task FILE`: a language model's answers scored on task files
(bigtrain/run/answer_tasks.py), through the run's chat template unless told otherwise."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from bigtrain.core import files
from bigtrain.core.errors import ConfigError
from bigtrain.data import chat_templates
from bigtrain.train import answer_tasks

log = logging.getLogger("bigtrain")


def chat_facts(pre: dict) -> dict:
    """What preprocessing.json records of the run's chat template ({} for none)."""
    return (pre.get("input") or {}).get("chat") or {}


def format_for(pre: dict, template: str) -> tuple[answer_tasks.Format, str]:
    """The prompt format `template` asks for: auto (the run's chat template, or raw text if
    it trained without one), none (raw text), a built-in name or a .jinja file; and its
    name."""
    chat = chat_facts(pre)
    specials = dict(chat.get("specials") or {})
    if template == "auto":
        if chat.get("template"):
            return answer_tasks.Format(chat["template"], specials), \
                f"the run's ({chat.get('template_name')})"
        return answer_tasks.Format(None), "none (raw text)"
    if template == "none":
        return answer_tasks.Format(None), "none (raw text)"
    name, source = chat_templates.resolve(template, None, "--template")
    return answer_tasks.Format(source, specials), name


def logits_function(r):
    """ids [B, T] -> float32 logits of the run's model: a float32 copy (adapters merged for
    a KerasHub model), so scores do not depend on the training precision."""
    import numpy as np

    from bigtrain.inference.generate import float32_model
    from bigtrain.models import hub

    model = hub.merged(r.model, r.spec) if hub.holds_hub_task(r.model) else float32_model(r)

    def logits(x):
        return np.asarray(model(x, training=False), np.float32)

    return logits


def evaluate_tasks(run_dir: Path, tasks: Sequence[Path], checkpoint: str = "auto",
                   shots: int = 0, template: str = "auto", max_new: int = 32) -> dict:
    from bigtrain.data import preprocess
    from bigtrain.inference.generate import vocabulary
    from bigtrain.inference.restore import open_run

    if shots < 0:
        raise ConfigError("--shots", f"{shots} is not valid; must be >= 0")
    if max_new < 1:
        raise ConfigError("--max-new", f"{max_new} is not valid; must be >= 1")
    pre = preprocess.read(Path(run_dir))
    if pre is not None and preprocess.spec_of(pre).task != "lm":
        raise ConfigError("--task", f"{run_dir} trained a {preprocess.spec_of(pre).task} "
                          "model; answer tasks score a language model")
    items = {Path(t): answer_tasks.read_items(Path(t)) for t in tasks}  # before loading
    for path, its in items.items():
        fewest = min(sum(it.kind == k for it in its) for k in {it.kind for it in its})
        if shots > fewest - 1:
            log.warning("--shots %d: %s has %d line(s) of its rarest kind, so its items get "
                        "%d example(s) at most", shots, path, fewest, fewest - 1)
    r = open_run(run_dir, checkpoint)
    fmt, fmt_name = format_for(r.preprocessing, template)
    encode, decode = vocabulary(r.preprocessing, r.run_dir)
    pad = r.tokenizer.pad_id if r.tokenizer is not None else 0
    tic = time.perf_counter()
    with r.ema_weights():
        scorer = answer_tasks.Scorer(logits_function(r), encode, decode,
                                     r.spec.input_shape[0], fmt, pad_id=pad, max_new=max_new)
        metrics: dict[str, float] = {}
        for path, its in items.items():
            for k, v in scorer.score(its, shots).items():
                metrics[f"task_{answer_tasks.task_name(path)}_{k}"] = v
    result = {"tasks": [str(t) for t in tasks], "shots": shots, "template": fmt_name,
              "checkpoint": r.checkpoint, "checkpoint_kind": r.kind, "step": r.step,
              "metrics": metrics, "seconds": time.perf_counter() - tic, "time": time.time()}
    names = "_".join(answer_tasks.task_name(t) for t in tasks)[:80]
    files.atomic_write_text(
        Path(run_dir) / f"eval_task_{names}_{shots}shot_{r.checkpoint_tag}.json",
        json.dumps(result, indent=2) + "\n")
    return result
