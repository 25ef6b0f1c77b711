"""`bigtrain predict`'s side of a trained run: inputs read by bigtrain/inference/inputs.py
run through the run's `Serving` functions (the ones its SavedModel exports), in batches, with
progress; the answers are shaped and written by bigtrain/inference/answers.py.
`labelled_dataset` reads labelled data in the training format for `eval --data`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from bigtrain.core.errors import ConfigError
from bigtrain.data import preprocess
from bigtrain.inference.answers import Predictions
from bigtrain.inference.inputs import Inputs, bad_input, read_inputs

log = logging.getLogger("bigtrain")


def run(restored, inputs: Inputs, batch_size: int = 256, on_bad: str = "fail",
        progress: bool = False) -> Predictions:
    """Answers for every input, through the run's serving function (in batches; a batch
    that fails is retried one input at a time to name the bad ones)."""
    import tensorflow as tf

    serving = restored.serving()
    fn = serving.predict_strings if inputs.kind == "table" else serving.predict_raw
    wanted = "values" if serving.task == "regression" else "probabilities"
    what = {"image": "is not a readable image", "text": "cannot be read",
            "table": "cannot be read"}[inputs.kind]

    def call(idx) -> np.ndarray:
        feed = {k: tf.constant(v, tf.string) for k, v in inputs.select(idx).items()}
        return fn(feed)[wanted].numpy()

    parts: list[np.ndarray] = []
    keep: list[int] = []
    bar = _progress(len(inputs)) if progress else None
    with restored.ema_weights():
        try:  # trace the function first, so that the time measured is the throughput
            call([0])
        except tf.errors.InvalidArgumentError:
            pass  # a bad first input: named below
        start = time.perf_counter()
        for lo in range(0, len(inputs), batch_size):
            idx = list(range(lo, min(len(inputs), lo + batch_size)))
            try:
                parts.append(call(idx))
                keep += idx
            except tf.errors.InvalidArgumentError:
                for i in idx:
                    try:
                        parts.append(call([i]))
                        keep.append(i)
                    except tf.errors.InvalidArgumentError as ex:
                        bad_input(inputs, on_bad, f"{inputs.ids[i]} {what} ({_reason(ex)})")
            if bar is not None:
                bar[0].update(bar[1], completed=idx[-1] + 1)
    seconds = time.perf_counter() - start
    if bar is not None:
        bar[0].stop()
    width = 1 if not parts else parts[0].shape[-1]
    outputs = np.concatenate(parts) if parts else np.zeros((0, width), np.float32)
    return Predictions([inputs.ids[i] for i in keep], [inputs.labels[i] for i in keep],
                       {wanted: outputs}, inputs.bad, inputs.skipped, seconds)


def _reason(ex) -> str:
    """What a TensorFlow op said of a bad input: the last line of its message that is neither
    graph-mode framing ("Graph execution error:", "Detected at node", the Python frames) nor
    the node's name ("[[{{node DecodeImage}}]]")."""
    for line in reversed((ex.message or str(ex)).splitlines()):
        text = line.strip()
        if text and not text.startswith(("[[", "File ", "Detected at node",
                                         "Graph execution error")):
            return text[:200]
    return type(ex).__name__


def _progress(total: int):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from bigtrain.core.console import CONSOLE

    bar = Progress(TextColumn("[bold]predict"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=CONSOLE, transient=True)
    bar.start()
    return bar, bar.add_task("predict", total=total)


# ------------------------------------------------------------------ answers
def labelled_dataset(restored, path: Path):
    """(tf.data.Dataset of (model input, label), examples) of labelled data in the training
    format at `path`, through the run's preprocessing (the same as predict's)."""
    import tensorflow as tf

    pre = restored.preprocessing
    if pre["input"]["kind"] not in ("table", "image", "text"):
        raise ConfigError("--data", f"eval --data reads tables, image folders and labelled "
                          f"texts; this run's data ({pre['dataset']}) has none of them: use "
                          "--split")
    inputs = read_inputs(pre, [str(path)], "fail", labelled=True, key="--data")
    serving = restored.serving()
    xs = []
    for lo in range(0, len(inputs), 256):
        idx = range(lo, min(len(inputs), lo + 256))
        feed = {k: tf.constant(v, tf.string) for k, v in inputs.select(idx).items()}
        try:
            xs.append(serving.to_model_inputs(feed).numpy())
        except tf.errors.InvalidArgumentError as ex:
            reason = (ex.message or str(ex)).strip().splitlines()[0][:200]
            raise ConfigError("--data", f"{path}: an input does not read ({reason}); "
                              "`bigtrain predict` names it") from None
    x = np.concatenate(xs)
    if pre["task"] == "regression":
        values = [preprocess.parse_number(v) for v in inputs.labels]
        bad = next((i for i, v in enumerate(values) if v is None), None)
        if bad is not None:
            raise ConfigError("--data", f"{inputs.ids[bad]}: label {inputs.labels[bad]!r} is "
                              "not a number")
        y = np.array(values, np.float32)[:, None]
    else:
        index = {c: k for k, c in enumerate(pre["classes"])}
        bad = next((i for i, v in enumerate(inputs.labels) if v not in index), None)
        if bad is not None:
            raise ConfigError("--data", f"{inputs.ids[bad]}: label {inputs.labels[bad]!r} is "
                              "not one of the run's classes (" + ", ".join(pre["classes"][:10])
                              + ")")
        y = np.array([index[v] for v in inputs.labels], np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)), len(y)
