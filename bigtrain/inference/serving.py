"""A trained model with its preprocessing in the graph: raw inputs in, answers out.

`Serving` turns a run's preprocessing.json (bigtrain/data/preprocess.py) into TensorFlow ops:
table cells (strings or numbers) are standardized and one-hot encoded, encoded images are
decoded, scaled and resized, texts become byte ids. Its functions are the ones `bigtrain
predict` calls in-process and the ones `bigtrain export` writes as the SavedModel's
signatures, so the two cannot disagree:

    serving_default  raw inputs -> {"probabilities", "classes", "class_ids", "logits"}
                     (regression: {"values"}; language models: token ids -> next-token
                     {"probabilities", "logits"})
    serve_strings    tables only: every column as strings, as read from a CSV file
    serve            model inputs (as the model was trained on) -> float32 logits or values
    tokenize         runs with a tokenizer (bigtrain/data/tokenizers.py): texts ->
                     {"token_ids" (padded with the pad id), "lengths"}
    detokenize       token_ids -> {"texts"} (pad, start and end ids left out)

A SavedModel of a run with a tokenizer holds TensorFlow Text ops (SentencePiece, WordPiece):
`import tensorflow_text` before `tf.saved_model.load` registers them.

Outputs are float32 whatever precision the model computes in. `portable_model` converts
bigtrain's own layers to standard Keras ones for a `.keras` file that loads without bigtrain.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from bigtrain.core import files
from bigtrain.core.errors import ConfigError
from bigtrain.data import preprocess

log = logging.getLogger("bigtrain")


class Serving:
    """The model and its preprocessing as TensorFlow functions (see the module doc)."""

    def __init__(self, pre: dict[str, Any], model, tokenizer=None):
        """`tokenizer`: the run's bigtrain.data.tokenizers.Tokenizer, where preprocessing.json
        names one (`tokenizers.of_run(run_dir)`)."""
        self.pre = pre
        self.model = model
        self.input = pre["input"]
        self.kind = self.input["kind"]
        self.tokenizer = tokenizer
        self._check_tokenizer()
        self.task = pre["task"]
        self.spec = preprocess.spec_of(pre)
        self.classes = list(pre.get("classes") or [])
        self.targets = list(pre.get("targets") or [])
        self.tables: list[tf.lookup.StaticHashTable] = []  # resources an export must track
        if self.kind == "table":
            self._table_setup()
        self._class_names = tf.constant(self.classes or [""], tf.string)
        self.binary_logit = self.task == "classification" and int(model.outputs[0].shape[-1]) == 1
        self.predict_raw = tf.function(self.raw_fn, input_signature=[self.raw_signature()]) \
            if self.kind != "none" else None
        self.predict_strings = tf.function(self.raw_fn,
                                           input_signature=[self.strings_signature()]) \
            if self.kind == "table" else None
        self.to_model_inputs = tf.function(self.inputs_of,
                                           input_signature=[self.strings_signature()]) \
            if self.kind == "table" else tf.function(self.inputs_of,
                                                     input_signature=[self.raw_signature()]) \
            if self.kind not in ("none", "lm") else None

    # ------------------------------------------------------------------ signatures
    def model_input_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec([None, *self.spec.input_shape], self.spec.input_dtype,
                             name="inputs")

    def raw_signature(self) -> dict[str, tf.TensorSpec]:
        """The raw inputs `serving_default` takes."""
        if self.kind == "table":
            return {c["key"]: tf.TensorSpec([None], tf.float32 if c["type"] == "numeric"
                                            else tf.string, name=c["key"])
                    for c in self.input["columns"]}
        if self.kind == "image":
            return {"images": tf.TensorSpec([None], tf.string, name="images")}
        if self.kind == "text":
            return {"texts": tf.TensorSpec([None], tf.string, name="texts")}
        if self.kind == "lm":
            return {"tokens": tf.TensorSpec([None, self.input["seq_len"]], tf.int32,
                                            name="tokens")}
        raise ConfigError("RUN_DIR", "this run's data source did not record how to read raw "
                          "inputs (preprocessing.json input kind 'none'); only model inputs "
                          "can be served")

    def strings_signature(self) -> dict[str, tf.TensorSpec]:
        """Tables: every column as strings (CSV cells)."""
        return {c["key"]: tf.TensorSpec([None], tf.string, name=c["key"])
                for c in self.input["columns"]}

    # ------------------------------------------------------------------ preprocessing
    def _check_tokenizer(self) -> None:
        recorded = preprocess.tokenizer_of(self.pre)
        if recorded is None:
            self.tokenizer = None
            return
        if self.tokenizer is None:
            raise ConfigError("RUN_DIR", f"this run tokenizes its text with a {recorded['kind']} "
                              f"tokenizer, kept in its {recorded['dir']}/ folder, which is "
                              "missing")
        if self.tokenizer.sha256() != recorded["sha256"]:
            raise ConfigError("RUN_DIR", f"its {recorded['dir']}/ folder holds another "
                              "tokenizer than the one it trained with (preprocessing.json "
                              "records its sha256)")
        if self.kind == "text":
            from bigtrain.data.tokenizers import packer

            self._pack = packer(self.tokenizer, self.input["max_len"])

    def _table_setup(self) -> None:
        self._missing = tf.constant(self.input["missing_values"], tf.string)
        self._lookups: dict[str, tf.lookup.StaticHashTable] = {}
        for c in self.input["columns"]:
            if c["type"] == "categorical":
                vocab = list(c["vocabulary"])
                n = len(vocab)
                # an empty vocabulary (no known value) sends everything to the last bucket
                keys = tf.constant(vocab or [""], tf.string)
                values = tf.range(n, dtype=tf.int64) if n else tf.constant([0], tf.int64)
                table = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(keys, values), default_value=n)
                self._lookups[c["key"]] = table
                self.tables.append(table)

    def _is_missing(self, cells: tf.Tensor) -> tf.Tensor:
        folded = tf.strings.lower(tf.strings.strip(cells))
        return tf.reduce_any(tf.equal(folded[:, None], self._missing[None, :]), axis=1)

    def _numeric(self, column: dict[str, Any], values: tf.Tensor) -> tf.Tensor:
        """[N] cells (strings, or numbers with NaN for missing) -> [N, 1] float64."""
        if values.dtype == tf.string:
            missing = self._is_missing(values)
            safe = tf.where(missing, tf.constant("0"), tf.strings.strip(values))
            number = tf.strings.to_number(safe, tf.float64)
            values = tf.where(missing, tf.constant(np.nan, tf.float64), number)
        values = tf.cast(values, tf.float64)
        z = (values - column["mean"]) / column["std"]
        return tf.where(tf.math.is_nan(values), tf.zeros_like(z), z)[:, None]

    def _categorical(self, column: dict[str, Any], cells: tf.Tensor) -> tf.Tensor:
        """[N] strings -> [N, len(vocabulary) + 1] one-hot (last: missing or unseen)."""
        n = len(column["vocabulary"])
        index = self._lookups[column["key"]].lookup(cells)
        index = tf.where(self._is_missing(cells), tf.constant(n, tf.int64), index)
        return tf.one_hot(index, n + 1, dtype=tf.float64)

    def _decode_image(self, data: tf.Tensor) -> tf.Tensor:
        h, w, c = self.input["height"], self.input["width"], self.input["channels"]
        image = tf.io.decode_image(data, channels=c, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32) / self.input["scale"], (h, w))
        return tf.ensure_shape(image, (h, w, c))

    def inputs_of(self, raw: dict[str, tf.Tensor]) -> tf.Tensor:
        """Raw inputs -> the model's inputs (the preprocessing of the training data)."""
        if self.kind == "table":
            parts = []
            for c in self.input["columns"]:
                cells = raw[c["key"]]
                parts.append(self._numeric(c, cells) if c["type"] == "numeric"
                             else self._categorical(c, cells))
            x = tf.concat(parts, axis=1)
            if self.spec.input_dtype.startswith("int"):
                x = tf.round(x)
            x = tf.cast(x, self.spec.input_dtype)
            return tf.reshape(x, [-1, *self.spec.input_shape])
        if self.kind == "image":
            h, w, c = self.input["height"], self.input["width"], self.input["channels"]
            return tf.map_fn(self._decode_image, raw["images"],
                             fn_output_signature=tf.TensorSpec((h, w, c), tf.float32))
        if self.kind == "text" and self.tokenizer is not None:
            ids = self._pack(self.tokenizer.encode_tf(raw["texts"]))
            return tf.ensure_shape(tf.cast(ids, tf.int32), (None, self.input["max_len"]))
        if self.kind == "text":
            texts, max_len = raw["texts"], self.input["max_len"]
            length = tf.minimum(tf.strings.length(texts), max_len)
            data = tf.io.decode_raw(texts, tf.uint8, fixed_length=max_len)
            ids = tf.cast(data, tf.int32) + self.input["byte_offset"]
            keep = tf.range(max_len)[None, :] < length[:, None]
            ids = tf.where(keep, ids, self.input["pad_id"])
            return tf.ensure_shape(ids, (None, max_len))
        if self.kind == "lm":
            return raw["tokens"]
        raise ConfigError("RUN_DIR", "no raw-input preprocessing recorded for this run")

    # ------------------------------------------------------------------ outputs
    def answers(self, outputs: tf.Tensor) -> dict[str, tf.Tensor]:
        """Model outputs -> float32 answers."""
        out = tf.cast(outputs, tf.float32)
        if self.task == "regression":
            return {"values": out}
        if self.task == "lm":
            return {"probabilities": tf.nn.softmax(out, axis=-1), "logits": out}
        if self.binary_logit:
            p = tf.sigmoid(out[:, 0])
            probabilities = tf.stack([1.0 - p, p], axis=-1)
        else:
            probabilities = tf.nn.softmax(out, axis=-1)
        ids = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "class_ids": ids,
                "classes": tf.gather(self._class_names, ids), "logits": out}

    def raw_fn(self, raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """`serving_default` (and `serve_strings`): raw inputs -> answers."""
        return self.answers(self.model(self.inputs_of(raw), training=False))

    def inputs_fn(self, x: tf.Tensor) -> tf.Tensor:
        """`serve`: model inputs -> float32 logits (or values)."""
        return tf.cast(self.model(x, training=False), tf.float32)

    def tokenize_fn(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        """`tokenize`: [N] texts -> [N, longest] int32 ids padded with the pad id, lengths."""
        ids = self.tokenizer.encode_tf(texts)
        return {"token_ids": ids.to_tensor(default_value=self.tokenizer.pad_id),
                "lengths": tf.cast(ids.row_lengths(), tf.int32)}

    def detokenize_fn(self, token_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        """`detokenize`: [N, L] int32 ids -> [N] texts; pad, start and end ids left out."""
        tok = self.tokenizer
        keep = tf.ones_like(token_ids, tf.bool)
        for special in {tok.pad_id, tok.start_id, tok.end_id} - {None}:
            keep &= token_ids != special
        keep &= (token_ids >= 0) & (token_ids < tok.vocab_size)
        return {"texts": tok.layer.detokenize(tf.ragged.boolean_mask(token_ids, keep))}


# ------------------------------------------------------------------ exports
def export_savedmodel(serving: Serving, out: Path) -> list[str]:
    """Write the SavedModel; return its signature names. preprocessing.json is copied into
    `assets.extra/`."""
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(serving.model)
    for table in serving.tables:
        archive.track(table)
    names = []
    if serving.kind != "none":
        archive.add_endpoint("serving_default", serving.raw_fn,
                             input_signature=[serving.raw_signature()])
        names.append("serving_default")
    if serving.kind == "table":
        archive.add_endpoint("serve_strings", serving.raw_fn,
                             input_signature=[serving.strings_signature()])
        names.append("serve_strings")
    archive.add_endpoint("serve", serving.inputs_fn,
                         input_signature=[serving.model_input_spec()])
    names.append("serve")
    if serving.tokenizer is not None:
        layer = serving.tokenizer.layer
        if not layer.built:  # a tokenizer has no weights; built, ExportArchive tracks it
            layer.build(None)
        archive.track(layer)
        archive.add_endpoint("tokenize", serving.tokenize_fn,
                             input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
        archive.add_endpoint("detokenize", serving.detokenize_fn, input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="token_ids")])
        names += ["tokenize", "detokenize"]

    def write(tmp: Path) -> None:
        archive.write_out(str(tmp), verbose=False)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        (extra / preprocess.FILENAME).write_text(preprocess.dumps(serving.pre),
                                                 encoding="utf-8")

    files.replace_dir(Path(out), write)
    return names


def portable_model(model):
    """A copy of `model` that plain Keras loads: bigtrain's layers replaced by their standard
    equivalents (`standard_equivalent()`, e.g. FusedBatchNorm -> BatchNormalization) with the
    same weights, every layer in float32. A bigtrain layer without one is refused."""
    import keras

    own = sorted({type(layer).__name__ for layer in _layers(model)
                  if type(layer).__module__.startswith("bigtrain")
                  and not hasattr(layer, "standard_equivalent")})
    if own:
        raise ConfigError("--format", f"model {model.name!r} uses bigtrain's own layers ("
                          + ", ".join(own) + "), which have no standard Keras equivalent: a "
                          ".keras file of it would need bigtrain to load. Export it with "
                          "--format savedmodel (it loads with TensorFlow alone, raw inputs "
                          "included)")

    def clone(layer):
        if not isinstance(layer, keras.layers.Layer):
            return layer  # a Keras op in the graph (x / 127.5): no weights, no dtype policy
        standard = layer.standard_equivalent() if hasattr(layer, "standard_equivalent") \
            else layer
        config = standard.get_config()
        config["dtype"] = "float32"
        return type(standard).from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, copy.layers, strict=True):
        new.set_weights(old.get_weights())
    return copy


def _layers(model) -> list:
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers") and layer is not model:
            out += _layers(layer)
    return out
