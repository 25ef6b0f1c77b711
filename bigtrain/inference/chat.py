"""`bigtrain chat RUN`: talk to an instruction-tuned language model through the chat template
it trained with (preprocessing.json keeps the template's source), with `generate`'s sampling.

A `Session` keeps the conversation; each turn renders it with the assistant's generation
prompt, drops the oldest turns (the system message stays) until the prompt and the answer's
`max_new` tokens fit the window, and decodes until the template's end of turn. The model is
restored, merged and compiled once per session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from bigtrain.core.errors import ConfigError
from bigtrain.data import chat_templates
from bigtrain.inference.generate import Sampling, generate, vocabulary
from bigtrain.inference.task_eval import chat_facts
from bigtrain.train.answer_tasks import Format


@dataclass
class Turn:
    answer: str
    tokens: int  # new tokens decoded (an end of turn included)
    seconds: float
    dropped: int  # earlier messages dropped to fit the window


class TooLong(ValueError):
    """A message that does not fit the window with room for the answer."""


@dataclass
class Session:
    run: object  # bigtrain.inference.restore.Restored
    sampling: Sampling
    max_new: int | None = None  # None: half the window, at most 256
    system: str = ""
    messages: list[dict] = field(default_factory=list)

    def __post_init__(self):
        pre = self.run.preprocessing
        chat = chat_facts(pre)
        if not chat.get("template"):
            raise ConfigError("RUN_DIR", f"{self.run.run_dir} did not train on chat data "
                              "(dataset=chat), so it has no chat template; use bigtrain "
                              "generate to continue text")
        self.fmt = Format(chat["template"], dict(chat.get("specials") or {}))
        self.encode, _ = vocabulary(pre, self.run.run_dir)
        self.window = self.run.spec.input_shape[0]
        if self.max_new is None:
            self.max_new = min(256, self.window // 2)
        if self.max_new >= self.window:
            raise ConfigError("--max-new", f"{self.max_new} leaves no room for a prompt in "
                              f"the run's window of {self.window} tokens (the dataset.seq_len "
                              "it trained with); use less")
        eos = self.fmt.specials.get("eos_token")
        self.stops = [s for s in {self.fmt.turn_end(), eos} if s]

    def reset(self) -> None:
        self.messages = []

    def _prompt(self) -> tuple[str, int]:
        """The rendered conversation, oldest turns dropped until it fits; how many were."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        turns = list(self.messages)
        dropped = 0
        while True:
            text = chat_templates.render(self.fmt.template, head + turns, True,
                                         self.fmt.specials)
            n = len(self.encode(text))
            if n + self.max_new <= self.window:
                return text, dropped
            if len(turns) <= 1:
                raise TooLong(f"the message is {n} tokens with the template; with "
                              f"--max-new {self.max_new} that is beyond the run's window of "
                              f"{self.window} tokens (its dataset.seq_len): write less, or "
                              "lower --max-new")
            turns = turns[2:] if len(turns) > 2 else turns[1:]  # a user turn and its answer
            dropped += 2

    def say(self, text: str, sampling: Sampling | None = None) -> Turn:
        """The answer to `text` after the conversation so far; TooLong (nothing changed) if
        the message cannot fit the window with room for the answer."""
        self.messages.append({"role": "user", "content": text})
        try:
            prompt, dropped = self._prompt()
        except TooLong:
            self.messages.pop()
            raise
        if dropped:
            self.messages = self.messages[dropped:]
        tic = time.perf_counter()
        out = generate(self.run, [prompt], self.max_new, sampling or self.sampling,
                       stop=self.stops, start_token=False)
        seconds = time.perf_counter() - tic
        answer = _without_partial_stop(out.outputs[0].text[len(prompt):], self.stops).strip()
        self.messages.append({"role": "assistant", "content": answer})
        return Turn(answer, out.tokens, seconds, dropped)


def _without_partial_stop(text: str, stops: list[str]) -> str:
    """`text` without a beginning of a stop string at its end (an answer cut by max_new
    just as it closed its turn)."""
    for stop in stops:
        for k in range(len(stop) - 1, 0, -1):
            if text.endswith(stop[:k]):
                return text[:-k]
    return text


def open_session(run_dir: Path, sampling: Sampling, max_new: int | None, system: str = "",
                 checkpoint: str = "auto") -> Session:
    from bigtrain.data import preprocess
    from bigtrain.inference.restore import open_run

    pre = preprocess.read(Path(run_dir))
    if pre is not None and not chat_facts(pre):  # refused before the model loads
        raise ConfigError("RUN_DIR", f"{run_dir} did not train on chat data (dataset=chat), "
                          "so it has no chat template; use bigtrain generate to continue text")
    return Session(open_run(run_dir, checkpoint), sampling, max_new, system)
