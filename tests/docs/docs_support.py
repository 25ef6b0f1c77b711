"""What the docs tests share: the Markdown sources (docs/ and README.md), their code blocks and
inline code, the reference hook module (docs/hooks/reference.py), and the keys a config may
set. Nothing here imports TensorFlow."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
import typing
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
HOOK = DOCS / "hooks" / "reference.py"

#: the marker on the line before a shell block whose commands the tests run
RUN_MARKER = "<!-- test: run -->"
#: the marker before each shell block of a walkthrough: the blocks of one walkthrough (one
#: NAME in one page) run in order, as one script, in one empty directory
WALKTHROUGH = re.compile(r"^<!-- test: walkthrough (\w+) -->$")


def markdown_files() -> list[Path]:
    """Every page of the site, and the README."""
    pages = sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.relative_to(DOCS).parts)
    return [ROOT / "README.md", *pages]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


class Block(NamedTuple):
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    marked: bool  # preceded by RUN_MARKER (blank lines between allowed)
    walkthrough: str | None = None  # preceded by a WALKTHROUGH marker: its name


_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marked = k >= 0 and lines[k].strip() == RUN_MARKER
        walk = WALKTHROUGH.match(lines[k].strip()) if k >= 0 else None
        body = "\n".join(line[len(indent):] if line.startswith(indent) else line
                         for line in lines[i + 1:j])
        out.append(Block(path, i + 1, lang.lower(), body, marked,
                         walk.group(1) if walk else None))
        i = j + 1
    return out


def prose(path: Path) -> str:
    """A Markdown file without its fenced code blocks (each replaced by an empty line)."""
    out, inside, fence = [], False, ""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _FENCE.match(line)
        if not inside and m:
            inside, fence = True, m.group(2)
            out.append("")
        elif inside and line.strip().startswith(fence):
            inside = False
            out.append("")
        else:
            out.append("" if inside else line)
    return "\n".join(out)


def inline_code(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every inline code span outside the fenced blocks."""
    out = []
    for n, line in enumerate(prose(path).splitlines(), 1):
        for m in re.finditer(r"(`+)(.+?)\1", line):
            out.append((n, m.group(2).strip()))
    return out


def commands(body: str) -> list[tuple[str, str]]:
    """(command, comment) per logical line of a shell block: `\\` continuations joined, the
    trailing `# comment` split off (a `#` that starts a word, outside quotes)."""
    out, current = [], ""
    for raw in body.splitlines():
        line = raw.rstrip()
        if not line.strip() and not current:
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        code, comment = split_comment(current)
        if code.strip():
            out.append((code.strip(), comment))
        current = ""
    if current.strip():
        out.append(split_comment(current))
    return out


def split_comment(line: str) -> tuple[str, str]:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i + 1:].strip()
    return line, ""


@cache
def hook():
    """docs/hooks/reference.py as a module (the MkDocs hook the site is built with)."""
    spec = importlib.util.spec_from_file_location("bigtrain_docs_reference", HOOK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- known config keys
#: the config groups whose keys an override may name, as `group.key`
GROUPS = ("dataset", "model", "optim", "strategy", "trainer", "logger", "debug", "experiment",
          "hparams_search", "hydra")


class Keys(NamedTuple):
    exact: frozenset[str]  # every key path, nested nodes included (`optim.schedule`)
    open: frozenset[str]  # paths under which any key goes (dicts: `hydra.sweeper.params`)
    by_option: dict[tuple[str, str], frozenset[str]]  # (group, option) -> its keys


def _walk(schema: Any, prefix: str, exact: set[str], open_: set[str]) -> None:
    try:
        hints = typing.get_type_hints(schema)
    except Exception:
        hints = {}
    for f in dataclasses.fields(schema):
        path = f"{prefix}.{f.name}"
        exact.add(path)
        hint = hints.get(f.name)
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        nested = hint if dataclasses.is_dataclass(hint) else (
            type(default) if dataclasses.is_dataclass(default) else None)
        if nested is not None:
            _walk(nested, path, exact, open_)
        elif (hint is Any or isinstance(default, dict)
              or typing.get_origin(hint) in (dict, typing.Union) or hint is dict):
            open_.add(path)


@cache
def known_keys() -> Keys:
    """Every key of every group's schemas (bigtrain's registries), of Hydra's own config, of
    bigtrain's Optuna sweeper and of the launchers bigtrain documents."""
    from hydra.conf import HydraConf
    from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

    from bigtrain.config.schema import REGISTRIES, option_schemas
    from hydra_plugins.bigtrain_optuna_sweeper.config import OptunaSweeperConf

    exact: set[str] = set()
    open_: set[str] = set()
    by_option: dict[tuple[str, str], frozenset[str]] = {}
    for group, registry in REGISTRIES.items():
        for options in registry.all_schemas().values():
            for option, schema in options.items():
                prefix = f"logger.{option}" if group == "logger" else group
                mine: set[str] = set()
                _walk(schema, prefix, mine, open_)
                exact |= mine | {prefix}
                by_option[(group, option)] = frozenset(mine)
    for (group, option), schema in option_schemas().items():
        if "/" not in group and (group, option) not in by_option:
            mine = set()
            _walk(schema, group, mine, open_)
            by_option[(group, option)] = frozenset(mine)
    hydra_exact: set[str] = set()
    _walk(HydraConf, "hydra", hydra_exact, open_)
    exact |= hydra_exact | {"hydra"}
    open_ -= {"hydra.sweeper", "hydra.launcher"}  # checked against the plugins below
    _walk(OptunaSweeperConf, "hydra.sweeper", exact, open_)
    for launcher in (JobLibLauncherConf, SlurmQueueConf, LocalQueueConf):
        _walk(launcher, "hydra.launcher", exact, open_)
    exact = {k for k in exact if not k.rsplit(".", 1)[-1].startswith("_")}
    return Keys(frozenset(exact), frozenset(open_), by_option)


def key_problem(key: str, option: str | None = None) -> str | None:
    """Why `key` (`group.key...`) is not a key a config has, or None if it is one. `option`:
    the group's option chosen on the same command line, whose schema then must have it."""
    keys = known_keys()
    group = key.split(".")[0]
    if option is not None and (group, option) in keys.by_option:
        if key not in keys.by_option[(group, option)] and not _under_open(key, keys):
            return f"{group}={option} has no key {key}"
        return None
    if key in keys.exact or _under_open(key, keys):
        return None
    return f"no config has a key {key}"


def _under_open(key: str, keys: Keys) -> bool:
    parts = key.split(".")
    return any(".".join(parts[:i]) in keys.open for i in range(1, len(parts)))
