"""Instruction data: conversations (`messages`: role and content, several turns) or
prompt/response pairs, from JSONL, Parquet or CSV, rendered through a chat template
(bigtrain/data/chat_templates.py) into token windows whose targets are the answers only
(`train_on: assistant`) or every token (`all`).

Each record becomes one example: its rendered tokens, next-token targets, and a target of -1
wherever no loss is taken (the prompts, the padding); the objective takes its loss over the
trained targets only, weighted by token. An example longer than `seq_len` is cut from the left
(the oldest prompt tokens first; the last answer is kept whole) or dropped; either is counted
in the log. Records are split into train/val/test by the dataset's fractions and seed.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bigtrain.core.errors import ConfigError
from bigtrain.data import DATASETS
from bigtrain.data import chat_templates as templates
from bigtrain.data import tokenizers as tokenizers_
from bigtrain.data.pipeline import Splits, label_statistics, split_for
from bigtrain.data.schemas import ChatConfig
from bigtrain.data.spec import DatasetSpec

log = logging.getLogger("bigtrain")

#: the target of a position that takes no loss (a prompt token, padding)
IGNORED = -1


class BadRecord(ValueError):
    """What is wrong with one record (the caller names its file and line)."""


# ---------------------------------------------------------------------- records
def read_records(path: Path, key: str) -> list[tuple[int, object]]:
    """(line or row number, record) of every record in a .jsonl, .parquet or .csv file; a
    line that is not JSON is kept as a BadRecord for the caller to name or skip."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError(key, f"{path} is Parquet, which needs pyarrow: pip install "
                              "'bigtrain[parquet]'") from None
        rows = pq.read_table(path).to_pylist()
        return [(i + 1, r) for i, r in enumerate(rows)]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as ex:
        raise ConfigError(key, f"{path} is not UTF-8 text (byte {ex.start})") from None
    except OSError as ex:
        raise ConfigError(key, f"cannot read {path}: {ex.strerror}") from None
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        return [(i + 2, row) for i, row in enumerate(reader)]  # line 1 is the header
    out: list[tuple[int, object]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except ValueError as ex:
            out.append((n, BadRecord(f"not a JSON object ({ex.msg} at column {ex.colno})")))
    return out


def _text(value, what: str) -> str:
    if not isinstance(value, str):
        raise BadRecord(f"{what} is {type(value).__name__}, not text")
    return value


def conversation(record, cfg: ChatConfig) -> list[dict[str, str]]:
    """The record as a list of {role, content} messages; BadRecord if it is not one."""
    if isinstance(record, BadRecord):
        raise record
    if not isinstance(record, dict):
        raise BadRecord(f"is {type(record).__name__}, not an object")
    fmt = cfg.format
    if fmt == "auto":
        fmt = "messages" if cfg.messages_field in record else "pair"
    if fmt == "messages":
        if cfg.messages_field not in record:
            raise BadRecord(f"has no {cfg.messages_field!r} field (dataset.messages_field)")
        messages = record[cfg.messages_field]
        if isinstance(messages, str):  # a CSV cell holding JSON
            try:
                messages = json.loads(messages)
            except ValueError:
                raise BadRecord(f"{cfg.messages_field!r} is not a JSON list") from None
        if not isinstance(messages, list) or not messages:
            raise BadRecord(f"{cfg.messages_field!r} is not a non-empty list of messages")
        out = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise BadRecord(f"message {i} lacks 'role' or 'content'")
            if m["role"] not in templates.ROLES:
                raise BadRecord(f"message {i} has role {m['role']!r}; allowed: "
                                + ", ".join(templates.ROLES))
            out.append({"role": m["role"], "content": _text(m["content"], f"message {i}'s "
                                                                          "content")})
    else:
        missing = [f for f in (cfg.prompt_field, cfg.response_field) if f not in record]
        if missing:
            raise BadRecord(f"has no {missing[0]!r} field (dataset.prompt_field / "
                            "dataset.response_field name the pair's fields)")
        out = []
        if cfg.system_field and str(record.get(cfg.system_field) or "").strip():
            out.append({"role": "system", "content": _text(record[cfg.system_field],
                                                           cfg.system_field)})
        out += [{"role": "user", "content": _text(record[cfg.prompt_field],
                                                  cfg.prompt_field)},
                {"role": "assistant", "content": _text(record[cfg.response_field],
                                                       cfg.response_field)}]
    answers = [m for m in out if m["role"] == "assistant"]
    if not answers:
        raise BadRecord("has no assistant message to learn from")
    if any(not m["content"].strip() for m in answers):
        raise BadRecord("has an empty answer")
    return out


def read_conversations(cfg: ChatConfig) -> tuple[list[list[dict]], int]:
    """The file's conversations in order, and how many records were skipped."""
    path = Path(cfg.path).expanduser()
    convs, bad = [], []
    for n, record in read_records(path, cfg.key("path")):
        try:
            convs.append(conversation(record, cfg))
        except BadRecord as ex:
            where = f"{path} {'row' if path.suffix.lower() in ('.parquet', '.pq') else 'line'}"
            if cfg.on_bad_record != "skip":
                raise ConfigError(cfg.key("path"), f"{where} {n}: {ex}; fix it, or set "
                                  "dataset.on_bad_record=skip to leave such records out") from None
            bad.append(f"{where} {n}: {ex}")
    if bad:
        log.warning("skipped %d bad record(s): %s", len(bad),
                    "; ".join(bad[:3]) + (" ..." if len(bad) > 3 else ""))
    if len(convs) < 3:
        raise ConfigError(cfg.key("path"), f"{path} has {len(convs)} usable record(s); at "
                          "least 3 are needed for train, validation and test")
    return convs, len(bad)


# ---------------------------------------------------------------------- examples
@dataclass
class Encoded:
    ids: list[int]
    trained: list[bool]  # the loss is taken on the token
    answer: list[bool] | None = None  # the token is an answer's (default: trained)

    def __post_init__(self):
        if self.answer is None:
            self.answer = list(self.trained)


def render_all(convs: list[list[dict]], source: str, train_on: str,
               specials: dict[str, str]) -> list[list[tuple[str, bool]]]:
    """Each conversation as (text, is_answer) segments. With train_on=all a template that
    cannot be split into prompts and answers gives one segment, all of it an answer."""
    out = []
    for conv in convs:
        try:
            out.append(templates.segments(source, conv, specials))
        except templates.TemplateError as ex:
            if train_on != "all" or "prefix" not in str(ex):
                raise ConfigError("dataset.template", str(ex)) from None
            try:
                out.append([(templates.render(source, conv, False, specials), True)])
            except templates.TemplateError as again:
                raise ConfigError("dataset.template", str(again)) from None
    return out


def encode_all(rendered: list[list[tuple[str, bool]]], tok, train_on: str = "assistant"
               ) -> list[Encoded]:
    """Token ids of each conversation's segments (bytes without a tokenizer), each segment
    tokenized on its own, so an answer's tokens never merge with its prompt's."""
    texts = [t for segs in rendered for t, _ in segs]
    if tok is None:
        pieces = [list(t.encode("utf-8")) for t in texts]
    else:
        pieces = []
        for i in range(0, len(texts), 512):
            pieces += tok.encode(texts[i:i + 512]) if texts[i:i + 512] else []
    out, k = [], 0
    for segs in rendered:
        ids: list[int] = []
        answer: list[bool] = []
        for _, is_answer in segs:
            ids += pieces[k]
            answer += [is_answer] * len(pieces[k])
            k += 1
        trained = [True] * len(ids) if train_on == "all" else list(answer)
        out.append(Encoded(ids, trained, answer))
    return out


def fit_window(e: Encoded, window: int, policy: str) -> Encoded | None:
    """The example cut to `window` tokens (None: dropped): `left` cuts the oldest tokens and
    keeps the last answer whole, `drop` drops every example that does not fit."""
    if len(e.ids) <= window:
        return e
    if policy == "drop":
        return None
    last = len(e.answer) - 1
    while last >= 0 and not e.answer[last]:
        last -= 1
    start = last
    while start > 0 and e.answer[start - 1]:
        start -= 1
    if last < 0 or len(e.ids) - start > window:
        return None
    return Encoded(e.ids[-window:], e.trained[-window:], e.answer[-window:])


def windows(examples: list[Encoded], seq_len: int, pad_id: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Inputs [N, seq_len] (padded with pad_id) and targets [N, seq_len]: the next token
    where it is trained, IGNORED elsewhere."""
    n = len(examples)
    x = np.full((n, seq_len), pad_id, np.int32)
    y = np.full((n, seq_len), IGNORED, np.int32)
    for i, e in enumerate(examples):
        ids = np.asarray(e.ids, np.int32)
        trained = np.asarray(e.trained, bool)
        k = len(ids) - 1
        x[i, :k] = ids[:-1]
        y[i, :k] = np.where(trained[1:], ids[1:], IGNORED)
    return x, y


def pack(examples: list[Encoded], seq_len: int, pad_id: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """Examples packed in order into windows of `seq_len` positions (an example of L tokens
    takes L - 1: its inputs and next-token targets), a new window when the next one does not
    fit: inputs [N, seq_len, 3] (token id, segment 1.. per example and 0 for padding, position
    within the example) and targets [N, seq_len] (IGNORED where untrained or padding)."""
    rows: list[list[Encoded]] = []
    used = seq_len + 1  # no open window
    for e in examples:
        need = len(e.ids) - 1
        if used + need > seq_len:
            rows.append([])
            used = 0
        rows[-1].append(e)
        used += need
    x = np.zeros((len(rows), seq_len, 3), np.int32)
    x[..., 0] = pad_id
    y = np.full((len(rows), seq_len), IGNORED, np.int32)
    for r, row in enumerate(rows):
        at = 0
        for s, e in enumerate(row, 1):
            ids = np.asarray(e.ids, np.int32)
            trained = np.asarray(e.trained, bool)
            k = len(ids) - 1
            x[r, at:at + k, 0] = ids[:-1]
            x[r, at:at + k, 1] = s
            x[r, at:at + k, 2] = np.arange(k)
            y[r, at:at + k] = np.where(trained[1:], ids[1:], IGNORED)
            at += k
    return x, y


def template_of(cfg: ChatConfig, tok) -> tuple[str, str]:
    own = getattr(tok, "chat_template", None)
    return templates.resolve(cfg.template, own, cfg.key("template"))


@DATASETS.register(ChatConfig)
def build_chat(cfg: ChatConfig, tokenizer: tokenizers_.Tokenizer | None = None) -> Splits:
    import tensorflow as tf

    from bigtrain.data import preprocess

    convs, skipped = read_conversations(cfg)
    tok = tokenizer if tokenizer is not None else tokenizers_.from_config(cfg)
    name, source = template_of(cfg, tok)
    parts = split_for(len(convs), cfg)
    specials = dict(getattr(tok, "special_strings", {}) or {})
    rendered = [render_all([convs[i] for i in idx], source, cfg.train_on, specials)
                for idx in parts]
    if tok is None and cfg.vocab in tokenizers_.LEARNED:
        texts = ["".join(t for t, _ in segs) for segs in rendered[0]]
        tok = tokenizers_.learn(cfg.vocab, tokenizers_.training_lines(texts), cfg.vocab_size)
    window = cfg.seq_len + 1
    counts = {"dropped": 0, "cut": 0, "filled": 0}
    split_arrays: list[tuple[np.ndarray, np.ndarray]] = []
    for segs in rendered:
        kept = []
        for e in encode_all(segs, tok, cfg.train_on):
            fitted = fit_window(e, window, cfg.truncation)
            if fitted is None:
                counts["dropped"] += 1
                continue
            counts["cut"] += fitted is not e
            kept.append(fitted)
        if not split_arrays:  # the training split: how full its windows are
            counts["filled"] = sum(len(e.ids) - 1 for e in kept)
            counts["examples"] = len(kept)
        make = pack if cfg.packing else windows
        split_arrays.append(make(kept, cfg.seq_len, tok.pad_id if tok else 0))
    if counts["dropped"] or counts["cut"]:
        log.warning("chat: %d example(s) longer than dataset.seq_len=%d were %s, %d dropped "
                    "(dataset.truncation=%s)", counts["cut"] + counts["dropped"], cfg.seq_len,
                    f"cut from the left ({counts['cut']})" if counts["cut"] else "not cut",
                    counts["dropped"], cfg.truncation)
    (x_train, y_train), (x_val, _), (x_test, _) = split_arrays
    if len(x_train) == 0:
        raise ConfigError("dataset.seq_len", f"no training example fits in {cfg.seq_len} "
                          "tokens; raise dataset.seq_len or use dataset.truncation=left")
    vocab = tok.vocab_size if tok is not None else 256
    trained = y_train[y_train >= 0]
    stats = label_statistics("lm", trained, vocab)
    spec = DatasetSpec(name="chat", task="lm", input_shape=(cfg.seq_len,),
                       input_dtype="int32", num_outputs=vocab, num_train=len(x_train),
                       num_val=len(x_val), num_test=len(x_test), skipped=skipped,
                       masked=True, packed=cfg.packing, **stats)
    report = {"kind": "chat", "template": name, "train_on": cfg.train_on,
              "trained_share": float(len(trained) / max(1, y_train.size)),
              "filled_share": float(counts["filled"] / max(1, len(x_train) * cfg.seq_len)),
              "packed": bool(cfg.packing), "examples": counts["examples"],
              "cut": counts["cut"], "dropped": counts["dropped"],
              "example": rendered[0][0]}
    log.info("chat: %d conversations, %s%d / %d / %d windows, template %s, loss on %s: "
             "%.1f%% of the training targets trained, windows %.1f%% filled (packing "
             "efficiency)", len(convs), f"{counts['examples']} training examples packed "
             "into " if cfg.packing else "", len(x_train), len(x_val), len(x_test), name,
             "the answers" if cfg.train_on == "assistant" else "every token",
             100 * report["trained_share"], 100 * report["filled_share"])

    def ds(arrays):
        return tf.data.Dataset.from_tensor_slices(arrays)

    doc = {"input": preprocess.chat(cfg.seq_len, tok.describe() if tok is not None else None,
                                    name, source, cfg.train_on, specials)}
    return Splits(spec, *(ds(a) for a in split_arrays), seed=cfg.seed,
                  shuffle_buffer=cfg.shuffle_buffer, preprocessing=doc, tokenizer=tok,
                  report=report)
