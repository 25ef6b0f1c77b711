"""Chat templates: Jinja, rendered as Transformers renders them (a sandboxed environment with
`trim_blocks` and `lstrip_blocks`, `raise_exception`, `tojson`), so the text bigtrain trains
on is the text a server that applies the checkpoint's template sends.

A conversation is rendered in segments: everything up to an assistant turn with
`add_generation_prompt=True` (the prompt), then each assistant turn (the answer and what the
template closes it with, e.g. `<|im_end|>`), found as what rendering one more message adds. So
any template works without markers in it, as long as it renders a conversation as a prefix of
its continuation; one that does not is refused by name.

Built-in templates for checkpoints that have none: `chatml`, `llama3`, `gemma`, `plain`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from bigtrain.core.errors import ConfigError

ROLES = ("system", "user", "assistant")

BUILTIN = {
    # ChatML (Qwen, many fine-tunes): <|im_start|>role\n...<|im_end|>\n
    "chatml": (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
    # Llama 3 instruct: headers and <|eot_id|>, the begin-of-text token first
    "llama3": (
        "{{ bos_token }}"
        "{% for message in messages %}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
        " + message['content'] | trim + '<|eot_id|>' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    # Gemma: user and model turns; a system message is put before the first user turn
    "gemma": (
        "{{ bos_token }}"
        "{% set ns = namespace(system='') %}"
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}{% set ns.system = message['content'] + '\n\n' %}"
        "{% else %}"
        "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
        "{{ '<start_of_turn>' + role + '\n' + (ns.system if role == 'user' else '')"
        " + message['content'] | trim + '<end_of_turn>\n' }}"
        "{% if role == 'user' %}{% set ns.system = '' %}{% endif %}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"),
    # no special tokens: what a base model without chat training reads most naturally
    "plain": (
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
        "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n' }}"
        "{% else %}{{ 'Assistant: ' + message['content'] + (eos_token or '') + '\n' }}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"),
}


class TemplateError(ValueError):
    """A template that cannot render a conversation (its own raise_exception, or not
    rendering a conversation as a prefix of its continuation)."""


@lru_cache(maxsize=16)
def _compiled(source: str):
    from jinja2 import TemplateError as JinjaError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        import json

        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                          separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        import datetime

        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(source)
    except JinjaError as ex:
        raise TemplateError(f"not a valid Jinja template: {ex}") from None


def check(source: str) -> None:
    """Compile `source`: a TemplateError if it is not valid Jinja."""
    _compiled(source)


def resolve(choice: str, own: str | None, key: str = "dataset.template") -> tuple[str, str]:
    """(name, source) of the template `choice` names: `auto` (the checkpoint's own `own`,
    else chatml), a built-in name, or a path to a .jinja file."""
    if choice == "auto":
        return ("checkpoint", own) if own else ("chatml", BUILTIN["chatml"])
    if choice in BUILTIN:
        return choice, BUILTIN[choice]
    path = Path(choice).expanduser()
    if path.is_file():
        source = path.read_text(encoding="utf-8")
        try:
            check(source)
        except TemplateError as ex:
            raise ConfigError(key, f"{path} is {ex}") from None
        return str(path), source
    raise ConfigError(key, f"{choice!r} is neither a built-in template nor a file; allowed: "
                      f"auto, {', '.join(BUILTIN)}, or the path of a .jinja file")


def render(source: str, messages: list[dict], add_generation_prompt: bool = False,
           specials: dict[str, str] | None = None) -> str:
    from jinja2 import TemplateError as JinjaError

    try:
        return _compiled(source).render(messages=messages,
                                        add_generation_prompt=add_generation_prompt,
                                        **{"bos_token": "", "eos_token": "", **(specials or {})})
    except TemplateError:
        raise
    except JinjaError as ex:
        raise TemplateError(f"the template failed: {ex}") from None


def segments(source: str, messages: list[dict], specials: dict[str, str] | None = None
             ) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, is_answer) pieces in order: each assistant turn
    (with what the template closes it with) is an answer, what comes before it a prompt."""
    out: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(source, messages[:i], True, specials)
        full = render(source, messages[:i + 1], False, specials)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise TemplateError("the template does not render a conversation as a prefix of "
                                "its continuation, so the answers cannot be told from the "
                                "prompts; use dataset.train_on=all or another template")
        if len(prompt) > len(done):
            out.append((prompt[len(done):], False))
        out.append((full[len(prompt):], True))
        done = full
    rest = render(source, messages, False, specials)
    if not rest.startswith(done):
        raise TemplateError("the template does not render a conversation as a prefix of its "
                            "continuation; use dataset.train_on=all or another template")
    if len(rest) > len(done):
        out.append((rest[len(done):], False))
    return out
