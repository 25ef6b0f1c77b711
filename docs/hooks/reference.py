"""MkDocs hook: the generated reference pages, read from the code so that they cannot drift.

A page that holds one of the markers below gets it replaced, at build time, by:

- `<!-- generated: config-reference -->`: every config group, option and key, from the group
  registries (`bigtrain.config.schema.REGISTRIES`, `option_schemas`), the schemas' dataclass
  fields (type, default, the comment on the field), the shipped YAML under `conf/` (each
  file's header comment, the values it sets) and bigtrain's Optuna sweeper;
- `<!-- generated: config-groups -->`: one table of the groups and their options;
- `<!-- generated: cli-reference -->`: every command of the Typer app `bigtrain.cli.main:app`,
  its usage, arguments and options with their help, and its epilog;
- `<!-- generated: benchmark-results -->`: every results file under scripts/results/, one table
  each with its machine, commit and command (scripts/report.py).

Nothing here imports TensorFlow (the modules read are the ones `bigtrain ls` and `--help`
read), and nothing reaches the network. The tests in tests/docs/ import this module too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import re
import typing
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

CONFIG_MARKER = "<!-- generated: config-reference -->"
GROUPS_MARKER = "<!-- generated: config-groups -->"
CLI_MARKER = "<!-- generated: cli-reference -->"
RESULTS_MARKER = "<!-- generated: benchmark-results -->"

#: the groups in the order a reader meets them (any other registry group follows)
GROUP_ORDER = ("dataset", "model", "optim", "optim/schedule", "strategy", "trainer", "logger")


# --------------------------------------------------------------------------- MkDocs entry point
def render_results() -> str:
    """Every results file under scripts/results/, one table each, headed by the machine, the
    commit and the command that wrote it (scripts/report.py). The `scripts` package is loaded
    from the checkout by its path: `mkdocs build` does not run from the repository root's
    import path."""
    import importlib.util
    import sys

    root = Path(__file__).resolve().parents[2]
    if "scripts" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "scripts", root / "scripts" / "__init__.py",
            submodule_search_locations=[str(root / "scripts")])
        package = importlib.util.module_from_spec(spec)
        sys.modules["scripts"] = package
        spec.loader.exec_module(package)
    from scripts.report import performance_markdown

    return performance_markdown()


def on_page_markdown(markdown: str, page: Any = None, config: Any = None, files: Any = None,
                     **kwargs: Any) -> str:
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, render_config())
    if GROUPS_MARKER in markdown:
        markdown = markdown.replace(GROUPS_MARKER, render_groups())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, render_cli())
    if RESULTS_MARKER in markdown:
        markdown = markdown.replace(RESULTS_MARKER, render_results())
    return markdown


# --------------------------------------------------------------------------- Markdown helpers
_SPECIAL = re.compile(r"([\\*_\[\]|<>&])")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "|": "&#124;"}


def md_text(text: str) -> str:
    """Plain words for a Markdown table cell: backtick spans are kept as code, everything else
    has Markdown's and HTML's special characters escaped."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", " ".join(text.split()))):
        if i % 2:
            out.append(part)  # a code span (a `|` in one does not split a table cell)
        else:
            out.append(_SPECIAL.sub(lambda m: _ENTITIES.get(m.group(1), "\\" + m.group(1)),
                                    part))
    return "".join(out)


def md_code(value: str) -> str:
    """`value` as an inline code span (Python-Markdown's tables do not split cells at a `|`
    inside one)."""
    value = " ".join(str(value).split())
    ticks = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


def anchor(*parts: str) -> str:
    return "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts if p)


def yaml_value(value: Any) -> str:
    """A default as it would be written in YAML or on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if value == "":
            return '""'
        return value
    if isinstance(value, (list, tuple, dict)):
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        return text[:-4].strip() if text.endswith("...") else text
    return repr(value) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- config reference
class Key(typing.NamedTuple):
    """One documented key: `path` as written in an override (`dataset.augment.crop`)."""

    path: str
    type: str
    default: str  # YAML spelling; "required" for a value the user must give
    help: str


def _type_hints(schema: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(schema)
    except Exception:  # an annotation that does not resolve here: fall back to the strings
        return {}


def _type_name(hint: Any, raw: Any) -> str:
    if hint is None:
        return raw if isinstance(raw, str) else getattr(raw, "__name__", str(raw))
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "")


@functools.cache
def key_help(schema: type, name: str) -> str:
    """The schema author's words on a field (`field_help`, as the errors quote them)."""
    from bigtrain.config.checks import field_help

    with _sources_cached():
        return field_help(schema, name) or ""


_SOURCES: dict[Any, str] = {}


@contextlib.contextmanager
def _sources_cached():
    """`inspect.getsource` parses the whole module for each class it is asked about; the
    reference asks about the same few classes hundreds of times."""
    original = inspect.getsource
    if getattr(original, "cached", False):
        yield
        return

    def getsource(obj: Any) -> str:
        if obj not in _SOURCES:
            _SOURCES[obj] = original(obj)
        return _SOURCES[obj]

    getsource.cached = True  # type: ignore[attr-defined]
    inspect.getsource = getsource
    try:
        yield
    finally:
        inspect.getsource = original


def schema_keys(schema: type, prefix: str, values: dict[str, Any] | None = None) -> list[Key]:
    """Every key of a schema dataclass, nested dataclasses flattened (`dataset.augment.crop`).
    `values` are a YAML option's own settings, which win over the schema's defaults."""
    from omegaconf import MISSING

    values = values or {}
    hints = _type_hints(schema)
    out: list[Key] = []
    for f in dataclasses.fields(schema):
        if f.name.startswith("_"):
            continue
        hint = hints.get(f.name)
        path = f"{prefix}.{f.name}" if prefix else f.name
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = MISSING
        nested = hint if dataclasses.is_dataclass(hint) else (
            type(default) if dataclasses.is_dataclass(default) else None)
        if nested is not None:
            sub = values.get(f.name)
            out.extend(schema_keys(nested, path, sub if isinstance(sub, dict) else None))
            continue
        value = values.get(f.name, default)
        shown = "required" if value == MISSING else yaml_value(value)
        out.append(Key(path, _type_name(hint, f.type), shown, key_help(schema, f.name)))
    return out


def _conf_text(group: str, option: str) -> str:
    node = files("bigtrain.conf")
    for part in group.split("/"):
        node = node.joinpath(part)
    return node.joinpath(f"{option}.yaml").read_text()


def header(text: str) -> list[str]:
    """A YAML file's header comment, without Hydra's `@package` directive."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        body = stripped[1:].strip() if stripped.startswith("# ") or stripped == "#" else \
            stripped.lstrip("#").strip()
        if body.startswith("@package"):
            continue
        out.append(body)
    return out


def body(text: str) -> str:
    """A YAML file without its header comment."""
    lines = text.splitlines()
    i = 0
    while i < len(lines) and lines[i].strip().startswith("#"):
        i += 1
    return "\n".join(lines[i:]).strip()


def option_values(group: str, option: str) -> dict[str, Any]:
    """What an option's YAML sets beside its defaults list."""
    data = yaml.safe_load(_conf_text(group, option)) or {}
    return {k: v for k, v in data.items() if k != "defaults"} if isinstance(data, dict) else {}


def _flatten(values: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    out = []
    for k, v in values.items():
        path = f"{prefix}.{k}"
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, path))
        else:
            out.append((path, v))
    return out


_COMMANDS = ("bigtrain ", "pip ", "python ", "tensorboard ", "srun ")


def _header_block(lines: list[str]) -> list[str]:
    """A YAML header as prose; the commands of its `Usage:` part as a code block, the notes
    between them as prose after it."""
    prose, usage, notes = [], [], []
    in_usage = False
    for line in lines:
        if line.lower().startswith("usage:"):
            in_usage = True
            line = line[6:].strip()
        if not in_usage:
            prose.append(line)
        elif not line:
            continue
        elif line.startswith(_COMMANDS) or (usage and usage[-1].endswith("\\")
                                            and not notes):
            usage.append(line if line.startswith(_COMMANDS) else "    " + line)
        else:
            notes.append(line)
    out = []
    if prose:
        out += [" ".join(md_text(p) for p in prose if p), ""]
    if usage:
        out += ["```bash", *usage, "```", ""]
    if notes:
        out += [md_text(" ".join(notes)), ""]
    return out


def _key_table(keys: list[Key]) -> list[str]:
    out = ["| key | type | default | what it is |", "|---|---|---|---|"]
    for k in keys:
        default = "*required*" if k.default == "required" else md_code(k.default)
        out.append(f"| {md_code(k.path)} | {md_code(k.type)} | {default} | {md_text(k.help)} |")
    return out + [""]


def _registry_groups() -> list[tuple[str, dict[str, type]]]:
    """(group as on the command line, {option: schema}) for every registry and sub-group."""
    from bigtrain.config.schema import REGISTRIES

    found: dict[str, dict[str, type]] = {}
    for registry in REGISTRIES.values():
        for dotted, options in registry.all_schemas().items():
            found[dotted.replace(".", "/")] = dict(options)
    order = [g for g in GROUP_ORDER if g in found] + sorted(g for g in found
                                                            if g not in GROUP_ORDER)
    return [(g, found[g]) for g in order]


def config_model() -> dict[str, Any]:
    """Everything the config reference shows, as data (the tests read it too):

    groups: [{group, default, options: [{option, schema, schema_option, header, keys,
              sets}], schemas_without_yaml: [{option, schema, keys}]}]
    sweeper: [Key], presets: [{group, option, header, body}], fit: {header, body}
    """
    from bigtrain.config.catalog import catalog, defaults
    from bigtrain.config.schema import option_schemas
    from bigtrain.core.registry import option_of

    shipped = catalog()
    chosen = defaults()
    by_yaml = option_schemas()
    groups = []
    for group, registry_options in _registry_groups():
        prefix = group.replace("/", ".")
        options = []
        yaml_options = sorted(o for (g, o) in by_yaml if g == group)
        documented_schemas = set()
        for option in yaml_options:
            schema = by_yaml[(group, option)]
            schema_option = option_of(schema)
            values = option_values(group, option)
            full = schema_option == option
            if full:
                documented_schemas.add(schema)
            keys = schema_keys(schema, prefix if group != "logger" else f"logger.{option}",
                               values)
            sets = [(p, v) for p, v in _flatten(values, prefix)]
            options.append({
                "option": option, "schema": schema, "schema_option": schema_option,
                "full": full, "header": header(_conf_text(group, option)),
                "keys": keys, "sets": sets,
            })
        # a registry option with no YAML of its own (optim/schedule's one schema)
        without_yaml = []
        for option, schema in registry_options.items():
            if (group, option) in by_yaml:
                continue
            without_yaml.append({"option": option, "schema": schema,
                                 "keys": schema_keys(schema, prefix)})
        # a YAML whose schema is documented nowhere in full gets its own full table
        for entry in options:
            if not entry["full"] and entry["schema"] not in documented_schemas and not any(
                    w["schema"] is entry["schema"] for w in without_yaml):
                entry["full"] = True
                documented_schemas.add(entry["schema"])
        groups.append({"group": group, "default": chosen.get(group, ""), "options": options,
                       "schemas_without_yaml": without_yaml,
                       "descriptions": shipped.get(group, {})})
    presets = []
    schema_groups = {g["group"] for g in groups}
    for group in sorted(shipped):
        if group in schema_groups:
            continue
        for option in sorted(shipped[group]):
            text = _conf_text(group, option)
            presets.append({"group": group, "option": option, "header": header(text),
                            "body": body(text)})
    fit_text = files("bigtrain.conf").joinpath("fit.yaml").read_text()
    return {"groups": groups, "sweeper": sweeper_keys(), "presets": presets,
            "fit": {"header": header(fit_text), "body": body(fit_text)}}


def sweeper_keys() -> list[Key]:
    """`hydra.sweeper.*` of bigtrain's Optuna sweeper (hydra/sweeper=bigtrain_optuna)."""
    from hydra_plugins.bigtrain_optuna_sweeper.config import OptunaSweeperConf

    return schema_keys(OptunaSweeperConf, "hydra.sweeper")


def config_keys() -> list[str]:
    """Every key path the config reference documents (each once)."""
    model = config_model()
    seen: dict[str, None] = {}
    for g in model["groups"]:
        for entry in [*g["options"], *g["schemas_without_yaml"]]:
            for k in entry["keys"]:
                seen[k.path] = None
    for k in model["sweeper"]:
        seen[k.path] = None
    return list(seen)


def render_groups() -> str:
    model = config_model()
    out = ["| group | options (`*` = the default) | reference |", "|---|---|---|"]
    for g in model["groups"]:
        default = set(g["default"].split(","))
        # what `group=option` can choose: the shipped YAML files (a schema without a YAML of
        # its own, as optim/schedule's one schema for every kind, is not a choice)
        names = [o["option"] for o in g["options"]]
        shown = ", ".join(md_code(n) + ("\\*" if n in default else "") for n in names)
        out.append(f"| {md_code(g['group'])} | {shown} | [keys](#{anchor(g['group'])}) |")
    groups_of_presets: dict[str, list[str]] = {}
    for p in model["presets"]:
        groups_of_presets.setdefault(p["group"], []).append(p["option"])
    for group, names in groups_of_presets.items():
        shown = ", ".join(md_code(n) for n in names)
        out.append(f"| {md_code(group)} | {shown} | [presets](#{anchor('preset', group)}) |")
    return "\n".join(out) + "\n"


def _own_doc(schema: type) -> str:
    """The schema class's own docstring (not a base class's, nor dataclass's signature)."""
    doc = schema.__dict__.get("__doc__") or ""
    if not doc or doc.startswith(schema.__name__ + "("):
        return ""
    return inspect.cleandoc(doc)


def render_config() -> str:
    model = config_model()
    out: list[str] = []
    for g in model["groups"]:
        group = g["group"]
        out += [f"## `{group}` {{ #{anchor(group)} }}", ""]
        if g["default"]:
            out += [f"Default: `{group}={g['default']}`" if group != "logger"
                    else f"Default: `logger=[{g['default']}]`", ""]
        out += ["| option | schema | what it is |", "|---|---|---|"]
        for o in g["options"]:
            desc = g["descriptions"].get(o["option"], "")
            link = f"[`{o['option']}`](#{anchor(group, o['option'])})"
            out.append(f"| {link} | `{o['schema'].__name__}` | {md_text(desc)} |")
        for w in g["schemas_without_yaml"]:
            link = f"[`{w['option']}`](#{anchor(group, 'schema', w['option'])})"
            out.append(f"| {link} | `{w['schema'].__name__}` | the schema every "
                       f"`{group}` option shares |")
        out.append("")
        for w in g["schemas_without_yaml"]:
            out += [f"### schema `{w['option']}` ({w['schema'].__name__}) "
                    f"{{ #{anchor(group, 'schema', w['option'])} }}", ""]
            doc = _own_doc(w["schema"])
            if doc:
                out += [md_text(doc), ""]
            out += _key_table(w["keys"])
        for o in g["options"]:
            title = f"{group}={o['option']}" if group != "logger" else f"logger=[{o['option']}]"
            out += [f"### `{title}` {{ #{anchor(group, o['option'])} }}", ""]
            out += _header_block(o["header"])
            if o["full"]:
                doc = _own_doc(o["schema"])
                out += [f"Schema `{o['schema'].__name__}` (`{o['schema'].__module__}`)"
                        + (f": {md_text(doc)}" if doc else "") + "", "",
                        "Its keys, with this option's values:", ""]
                out += _key_table(o["keys"])
            else:
                base = o["schema_option"]
                target = (anchor(group, base) if (group, base) in
                          {(gg["group"], oo["option"]) for gg in model["groups"]
                           for oo in gg["options"]} else anchor(group, "schema", base))
                out += [f"Schema `{o['schema'].__name__}`, the keys of "
                        f"[`{base}`](#{target}). This option sets:", ""]
                if o["sets"]:
                    out += ["| key | value |", "|---|---|"]
                    out += [f"| {md_code(p)} | {md_code(yaml_value(v))} |" for p, v in o["sets"]]
                    out.append("")
                else:
                    out += ["nothing beyond the schema's defaults.", ""]
    out += ["## `hydra/sweeper=bigtrain_optuna` { #hydra-sweeper-bigtrain-optuna }", "",
            "bigtrain's own Optuna sweeper (`hydra_plugins/bigtrain_optuna_sweeper/`), "
            "selected with `hydra/sweeper=bigtrain_optuna` or by a `hparams_search` preset.", ""]
    out += _key_table(model["sweeper"])
    out += ["## Presets and other shipped configs { #presets }", "",
            "Options of groups without a schema: each YAML is merged as written (most are "
            "`# @package _global_` and set keys of several groups).", ""]
    current = None
    for p in model["presets"]:
        if p["group"] != current:
            current = p["group"]
            out += [f"### `{current}` {{ #{anchor('preset', current)} }}", ""]
        out += [f"#### `{p['group']}={p['option']}` {{ #{anchor(p['group'], p['option'])} }}", ""]
        out += _header_block(p["header"])
        if p["body"]:
            out += ["```yaml", p["body"], "```", ""]
    out += ["### `fit.yaml`, the primary config { #fit-yaml }", ""]
    out += _header_block(model["fit"]["header"])
    out += ["```yaml", model["fit"]["body"], "```", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- CLI reference
def _plain(markup: str | None) -> str:
    """Help text as Typer shows it: rich markup rendered to plain text."""
    if not markup:
        return ""
    from rich.text import Text

    return Text.from_markup(inspect.cleandoc(markup)).plain


def cli_model() -> list[dict[str, Any]]:
    """[{name, help, usage, params: [{names, help, kind}], epilog}], the root first."""
    import typer

    from bigtrain.cli.main import app

    root = typer.main.get_command(app)
    context_class = getattr(root, "context_class", None)
    root_ctx = context_class(root, info_name="bigtrain")
    out = [_command_entry(root, root_ctx, "bigtrain")]
    for name in root.list_commands(root_ctx):
        cmd = root.get_command(root_ctx, name)
        if cmd is None or getattr(cmd, "hidden", False):
            continue
        ctx = cmd.context_class(cmd, info_name=name, parent=root_ctx)
        out.append(_command_entry(cmd, ctx, f"bigtrain {name}"))
    return out


def _command_entry(cmd: Any, ctx: Any, path: str) -> dict[str, Any]:
    params = []
    usage = [path]
    has_options = False
    for p in [*cmd.params, cmd.get_help_option(ctx)]:
        if p is None or getattr(p, "hidden", False):
            continue
        record = p.get_help_record(ctx)
        if record is None:
            continue
        kind = getattr(p, "param_type_name", "option")
        params.append({"names": record[0], "help": record[1],
                       "kind": kind, "opts": [*p.opts, *getattr(p, "secondary_opts", [])]})
        if kind == "argument":
            metavar = p.metavar or p.name.upper()
            if p.nargs == -1 and not metavar.endswith("..."):
                metavar += "..."
            if not p.required and not metavar.startswith("["):
                metavar = f"[{metavar}]"
            usage.append(metavar)
        else:
            has_options = True
    if has_options:
        usage.insert(1, "[OPTIONS]")
    if hasattr(cmd, "list_commands"):
        usage.append("COMMAND [ARGS]...")
    return {"name": path, "help": _plain(cmd.help), "usage": " ".join(usage),
            "params": params, "epilog": _plain(cmd.epilog)}


def render_cli() -> str:
    out: list[str] = []
    for entry in cli_model():
        name = entry["name"]
        out += [f"## `{name}` {{ #{anchor(name)} }}", ""]
        if entry["help"]:
            out += [md_text(p) + "\n" for p in entry["help"].split("\n\n")]
        out += ["```text", entry["usage"], "```", ""]
        args = [p for p in entry["params"] if p["kind"] == "argument"]
        opts = [p for p in entry["params"] if p["kind"] != "argument"]
        for title, group in (("argument", args), ("option", opts)):
            if not group:
                continue
            out += [f"| {title} | what it does |", "|---|---|"]
            out += [f"| {md_code(p['names'])} | {md_text(p['help'])} |" for p in group]
            out.append("")
        if entry["epilog"]:
            out += ["```text", entry["epilog"].strip("\n"), "```", ""]
    return "\n".join(out)
