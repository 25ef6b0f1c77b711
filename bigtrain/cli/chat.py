"""`bigtrain chat RUN_DIR`: talk to an instruction-tuned run through its chat template,
interactively or (`--messages FILE`) answering a JSONL file of conversations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import CHECKPOINT, run_dir_argument

HELP_LINE = "/reset starts a new conversation, /exit (or Ctrl-D) ends the session"


def chat(
    run_dir: Path = run_dir_argument("A run dir of a model trained on chat data"),
    messages: Path | None = typer.Option(
        None, "--messages", help="Answer each line of this JSONL file instead of asking: "
        "{\"messages\": [...]} (the last one a user turn) or {\"prompt\": TEXT}; one JSON "
        "answer per line on stdout"),
    system: str = typer.Option("", "--system", help="A system message for the conversation"),
    max_new: int | None = typer.Option(
        None, "--max-new", min=1, help="The longest answer, in tokens (default: half the "
        "run's window, at most 256; the window is the dataset.seq_len it trained with)"),
    temperature: float = typer.Option(0.7, "--temperature", min=0.0,
                                      help="Divide the logits by this; 0 = greedy"),
    top_k: int = typer.Option(0, "--top-k", min=0,
                              help="Sample among the k likeliest tokens (0 = all)"),
    top_p: float = typer.Option(1.0, "--top-p", help="Sample among the likeliest tokens "
                                "whose probabilities sum to at least p, in (0, 1]"),
    seed: int = typer.Option(0, "--seed", help="The same seed and options give the same "
                             "answers"),
    checkpoint: str = CHECKPOINT,
) -> None:
    """Talk to a run trained on chat data (dataset=chat), through the chat template it
    trained with. The conversation is kept within the model's window (the oldest turns go
    first; a system message stays). /reset starts over, /exit ends."""
    with reported():
        from bigtrain.inference.generate import Sampling

        sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        sampling.check()
        records = _read_messages(messages) if messages is not None else None
        from bigtrain.core.tensorflow_start import quiet_tensorflow
        from bigtrain.inference.chat import open_session

        quiet_tensorflow()
        session = open_session(run_dir, sampling, max_new, system, checkpoint)
        if records is not None:
            from bigtrain.core.errors import ConfigError
            from bigtrain.inference.chat import TooLong

            for n, conversation in records:
                session.reset()
                session.messages = conversation[:-1]
                try:
                    turn = session.say(conversation[-1]["content"])
                except TooLong as ex:
                    raise ConfigError("--messages", f"{messages} line {n}: {ex}") from None
                typer.echo(json.dumps({"line": n, "answer": turn.answer, "tokens": turn.tokens,
                                       "seconds": round(turn.seconds, 4)}, ensure_ascii=False))
            return
        _interactive(session)


def _interactive(session) -> None:
    typer.echo(f"chat with {session.run.describe()}; {HELP_LINE}", err=True)
    while True:
        try:
            text = input("you> ")
        except EOFError:
            typer.echo("", err=True)
            return
        command = text.strip()
        if command in ("/exit", "/quit"):
            return
        if command == "/reset":
            session.reset()
            typer.echo("(a new conversation)", err=True)
            continue
        if not command:
            continue
        if command.startswith("/"):
            typer.echo(f"unknown command {command}; {HELP_LINE}", err=True)
            continue
        from bigtrain.inference.chat import TooLong

        try:
            turn = session.say(text)
        except TooLong as ex:
            typer.echo(f"not sent: {ex}", err=True)
            continue
        typer.echo(f"assistant> {turn.answer}")
        note = f"({turn.tokens} tokens in {turn.seconds:.2f} s"
        if turn.dropped:
            note += f"; the {turn.dropped} oldest messages no longer fit the window"
        typer.echo(note + ")", err=True)
        sys.stdout.flush()


def _read_messages(path: Path) -> list[tuple[int, list[dict]]]:
    from bigtrain.core.errors import ConfigError

    if not path.is_file():
        raise ConfigError("--messages", f"{path} does not exist")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            rec = json.loads(line)
        except ValueError as ex:
            raise ConfigError("--messages", f"{where}: not a JSON object ({ex.msg})") from None
        if isinstance(rec, dict) and isinstance(rec.get("prompt"), str):
            conv = [{"role": "user", "content": rec["prompt"]}]
        elif isinstance(rec, dict) and isinstance(rec.get("messages"), list):
            conv = rec["messages"]
        else:
            raise ConfigError("--messages", f"{where}: needs 'messages' (a list) or 'prompt'")
        ok = all(isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                 and isinstance(m.get("content"), str) for m in conv)
        if not conv or not ok or conv[-1]["role"] != "user":
            raise ConfigError("--messages", f"{where}: messages must have a role (system, "
                              "user, assistant) and a content, the last one a user turn")
        out.append((n, conv))
    if not out:
        raise ConfigError("--messages", f"{path} has no lines")
    return out


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
