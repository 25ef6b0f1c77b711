"""Evaluation that scores answers, as the LM evaluation harness does, on JSONL task files:

- `perplexity`: a line with `prompt` and `response`: the perplexity of the response given
  the prompt (token-weighted over the file);
- `choice`: a line with `prompt` (or `question`), `choices` (a list of texts) and `answer`
  (the index of the right one): each choice scored by the log-likelihood of its tokens after
  the prompt; `accuracy` takes the highest, `accuracy_norm` the highest per character of the
  choice (the harness's `acc` and `acc_norm`);
- `exact`: a line with `prompt` and `answer` (a text or a list of accepted texts): the greedy
  answer, up to the template's end of turn (a newline without a template) or `max_new`
  tokens, compared with the reference after `normalize` (lower case, no punctuation, no
  articles a/an/the, single spaces: SQuAD's normalization).

With a chat template (the run's own, by default), a prompt is a user turn and the answer the
assistant's; without one, the prompt is raw text and a choice follows it after one space.
`shots` earlier lines of the same file (never the one scored) go first as examples.

Used by `bigtrain eval RUN --task FILE` and, during training, by `trainer.eval_tasks` (beside
the objective's metrics): the scorer takes the model as a function of token ids.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bigtrain.core.errors import ConfigError
from bigtrain.data import chat_templates

KINDS = ("perplexity", "choice", "exact")


@dataclass
class Item:
    kind: str
    prompt: str
    line: int
    response: str = ""
    choices: list[str] = field(default_factory=list)
    answer: int = 0
    accepted: list[str] = field(default_factory=list)
    system: str = ""

    @property
    def reference(self) -> str:
        """The answer a few-shot example shows."""
        if self.kind == "choice":
            return self.choices[self.answer]
        return self.response if self.kind == "perplexity" else self.accepted[0]


def read_items(path: Path) -> list[Item]:
    """The items of a task file; a line that is none of the kinds is a ConfigError naming
    the file and line."""
    path = Path(path).expanduser()
    key = "--task"
    if not path.is_file():
        raise ConfigError(key, f"{path} does not exist" if not path.exists()
                          else f"{path} is not a file")
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            rec = json.loads(line)
        except ValueError as ex:
            raise ConfigError(key, f"{where}: not a JSON object ({ex.msg})") from None
        if not isinstance(rec, dict):
            raise ConfigError(key, f"{where}: not a JSON object")
        prompt = rec.get("prompt", rec.get("question"))
        if not isinstance(prompt, str):
            raise ConfigError(key, f"{where}: needs a 'prompt' (or 'question') text")
        system = rec.get("system") if isinstance(rec.get("system"), str) else ""
        kinds = [k for k in ("choices", "response", "answer") if k in rec]
        if "response" in rec and "answer" in rec and "choices" not in rec:
            raise ConfigError(key, f"{where}: has both 'response' (perplexity) and 'answer' "
                              "(exact); a line is one kind: keep one of them")
        if "choices" in rec and "response" in rec:
            raise ConfigError(key, f"{where}: has both 'choices' and 'response'; a line is "
                              f"one kind (found {', '.join(kinds)})")
        if "choices" in rec:
            choices, answer = rec["choices"], rec.get("answer")
            if not (isinstance(choices, list) and len(choices) >= 2
                    and all(isinstance(c, str) and c for c in choices)):
                raise ConfigError(key, f"{where}: 'choices' must be a list of at least 2 "
                                  "non-empty texts")
            if isinstance(answer, bool) or not isinstance(answer, int) \
                    or not 0 <= answer < len(choices):
                raise ConfigError(key, f"{where}: 'answer' must be the index of the right "
                                  f"choice (0 to {len(choices) - 1})")
            items.append(Item("choice", prompt, n, choices=choices, answer=answer,
                              system=system))
        elif "response" in rec:
            if not isinstance(rec["response"], str) or not rec["response"]:
                raise ConfigError(key, f"{where}: 'response' must be a non-empty text")
            items.append(Item("perplexity", prompt, n, response=rec["response"], system=system))
        elif "answer" in rec:
            accepted = rec["answer"] if isinstance(rec["answer"], list) else [rec["answer"]]
            if not accepted or not all(isinstance(a, str) and a.strip() for a in accepted):
                raise ConfigError(key, f"{where}: 'answer' must be a text or a list of texts")
            items.append(Item("exact", prompt, n, accepted=accepted, system=system))
        else:
            raise ConfigError(key, f"{where}: has none of 'response' (perplexity), 'choices' "
                              "and 'answer' (choice), 'answer' (exact)")
    if not items:
        raise ConfigError(key, f"{path} has no task lines")
    return items


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """Lower case, punctuation and the articles a/an/the removed, whitespace collapsed."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


@dataclass
class Format:
    """How prompts and answers become text: a chat template (its source and special-token
    strings) or raw text."""

    template: str | None = None
    specials: dict[str, str] = field(default_factory=dict)

    def context(self, item: Item, shots: Sequence[Item]) -> str:
        if self.template is None:
            blocks = [f"{s.prompt} {s.reference}\n\n" for s in shots]
            return "".join(blocks) + item.prompt
        messages = [{"role": "system", "content": item.system}] if item.system else []
        for s in shots:
            messages += [{"role": "user", "content": s.prompt},
                         {"role": "assistant", "content": s.reference}]
        messages.append({"role": "user", "content": item.prompt})
        return chat_templates.render(self.template, messages, True, self.specials)

    def continuation(self, text: str) -> str:
        return text if self.template is not None else " " + text

    def turn_end(self) -> str:
        """Where a greedy answer stops: the text the template closes an answer with (its
        first line), or a newline without a template."""
        if self.template is None:
            return "\n"
        probe = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "\x00"}]
        after = chat_templates.render(self.template, probe, False, self.specials)
        tail = after.split("\x00", 1)[-1].strip("\n")
        return tail.split("\n", 1)[0] or "\n"


class Scorer:
    """Scores task items with `logits(ids [B, window] int32) -> [B, window, V]` of a causal
    LM whose inputs are `window` tokens; `encode` and `decode` turn text into ids and back."""

    def __init__(self, logits: Callable, encode: Callable[[str], list[int]],
                 decode: Callable[[list[int]], str], window: int, fmt: Format,
                 pad_id: int = 0, batch: int = 16, max_new: int = 32):
        self.logits, self.encode, self.decode = logits, encode, decode
        self.window, self.fmt, self.pad_id = window, fmt, pad_id
        self.batch, self.max_new = batch, max_new

    def _fit(self, ctx: list[int], cont: list[int]) -> tuple[list[int], int]:
        """Context cut on the left so context + continuation fits the window (the
        continuation too, from the right, if it alone does not): (ids, first scored)."""
        cont = cont[: self.window - 1] if len(cont) >= self.window else cont
        room = self.window + 1 - len(cont)
        ctx = ctx[-room:] if ctx else []
        if not ctx:  # nothing predicts the first token: start from the pad id
            ctx = [self.pad_id]
        return ctx + cont, len(ctx)

    def loglikelihoods(self, pairs: list[tuple[list[int], list[int]]]
                       ) -> list[tuple[float, int]]:
        """(sum of log-probabilities, tokens) of each continuation after its context."""
        out: list[tuple[float, int]] = []
        for i in range(0, len(pairs), self.batch):
            chunk = [self._fit(c, k) for c, k in pairs[i:i + self.batch]]
            x = np.full((len(chunk), self.window), self.pad_id, np.int32)
            for r, (ids, _) in enumerate(chunk):
                x[r, : min(len(ids) - 1, self.window)] = ids[:-1][: self.window]
            logp = _log_softmax(np.asarray(self.logits(x), np.float32))
            for r, (ids, start) in enumerate(chunk):
                positions = np.arange(start - 1, len(ids) - 1)
                targets = np.asarray(ids[start:], np.int64)
                out.append((float(logp[r, positions, targets].sum()), len(targets)))
        return out

    def greedy(self, contexts: list[list[int]], stop: str) -> list[str]:
        """The greedy continuation of each context, up to `stop` or max_new tokens."""
        texts = []
        for i in range(0, len(contexts), self.batch):
            rows = [c[-(self.window - 1):] or [self.pad_id] for c in contexts[i:i + self.batch]]
            new: list[list[int]] = [[] for _ in rows]
            done = [False] * len(rows)
            for _ in range(self.max_new):
                seqs = [r + n for r, n in zip(rows, new, strict=True)]
                seqs = [s[-self.window:] for s in seqs]
                x = np.full((len(seqs), self.window), self.pad_id, np.int32)
                for r, s in enumerate(seqs):
                    x[r, : len(s)] = s
                logits = np.asarray(self.logits(x), np.float32)
                for r, s in enumerate(seqs):
                    if done[r]:
                        continue
                    new[r].append(int(np.argmax(logits[r, len(s) - 1])))
                    if stop in self.decode(new[r]):
                        done[r] = True
                if all(done):
                    break
            texts += [self.decode(n).split(stop, 1)[0] for n in new]
        return texts

    def score(self, items: list[Item], shots: int = 0) -> dict[str, float]:
        """Metrics of the items by kind: perplexity; choice accuracy and accuracy_norm;
        exact (the share of normalized matches); with the item counts."""
        fmt = self.fmt
        contexts = [self.encode(fmt.context(it, _shots(items, i, shots)))
                    for i, it in enumerate(items)]
        out: dict[str, float] = {}
        ppl = [i for i, it in enumerate(items) if it.kind == "perplexity"]
        if ppl:
            scored = self.loglikelihoods(
                [(contexts[i], self.encode(fmt.continuation(items[i].response))) for i in ppl])
            total = sum(s for s, _ in scored)
            tokens = sum(n for _, n in scored)
            out["perplexity"] = math.exp(min(-total / max(1, tokens), 50.0))
            out["perplexity_items"] = len(ppl)
        choice = [i for i, it in enumerate(items) if it.kind == "choice"]
        if choice:
            pairs, owners = [], []
            for i in choice:
                for c in items[i].choices:
                    pairs.append((contexts[i], self.encode(fmt.continuation(c))))
                    owners.append(i)
            scored = self.loglikelihoods(pairs)
            hits = hits_norm = 0
            k = 0
            for i in choice:
                n = len(items[i].choices)
                ll = np.array([s for s, _ in scored[k:k + n]])
                lengths = np.array([max(1, len(c)) for c in items[i].choices], np.float64)
                hits += int(np.argmax(ll) == items[i].answer)
                hits_norm += int(np.argmax(ll / lengths) == items[i].answer)
                k += n
            out["choice_accuracy"] = hits / len(choice)
            out["choice_accuracy_norm"] = hits_norm / len(choice)
            out["choice_items"] = len(choice)
        exact = [i for i, it in enumerate(items) if it.kind == "exact"]
        if exact:
            answers = self.greedy([contexts[i] for i in exact], fmt.turn_end())
            right = sum(normalize(a) in {normalize(x) for x in items[i].accepted}
                        for a, i in zip(answers, exact, strict=True))
            out["exact"] = right / len(exact)
            out["exact_items"] = len(exact)
        return out


def _shots(items: list[Item], index: int, shots: int) -> list[Item]:
    """The first `shots` items of the same kind other than `index`."""
    if shots <= 0:
        return []
    kind = items[index].kind
    return [it for j, it in enumerate(items) if j != index and it.kind == kind][:shots]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def metric_names(items: list[Item]) -> list[str]:
    """The metrics `Scorer.score` reports for these items (item counts left out)."""
    kinds = {it.kind for it in items}
    return ([*(["perplexity"] if "perplexity" in kinds else []),
             *(["choice_accuracy", "choice_accuracy_norm"] if "choice" in kinds else []),
             *(["exact"] if "exact" in kinds else [])])


def task_name(path: Path) -> str:
    return Path(path).stem


def score_files(scorer: Scorer, paths: Sequence[Path], shots: int = 0, prefix: str = ""
                ) -> dict[str, float]:
    """`<prefix>task_<file stem>_<metric>` for every task file."""
    out: dict[str, float] = {}
    for path in paths:
        name = task_name(path)
        for k, v in scorer.score(read_items(path), shots).items():
            out[f"{prefix}task_{name}_{k}"] = v
    return out
