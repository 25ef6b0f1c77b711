"""The documentation site builds with `mkdocs build --strict` (every link and anchor resolves,
every page is in the nav), and its generated reference pages list everything the code has:
each option of each config group registry, each key of each schema, each shipped YAML, each
command of the CLI and each of its options. The generator imports no TensorFlow."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from docs_support import HOOK, ROOT, hook


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text(encoding="utf-8")


def _ids(page: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', page))


def _codes(page: str) -> set[str]:
    return {html.unescape(re.sub(r"<[^>]+>", "", c))
            for c in re.findall(r"<code>(.*?)</code>", page, flags=re.S)}


def test_the_site_builds_strictly(site):
    assert (site / "index.html").is_file()
    for page in ("tutorials/first-run", "how-to/sweeps-and-search", "explanation/architecture",
                 "reference/config", "reference/cli", "contributing"):
        assert (site / page / "index.html").is_file(), page
    assert not list(site.rglob("*.py")), "the hook module was copied into the site"


def test_no_marker_is_left_unexpanded(site):
    for page in site.rglob("*.html"):
        assert "<!-- generated:" not in page.read_text(encoding="utf-8"), page


def test_the_config_reference_lists_every_option_and_key(site):
    from bigtrain.config.catalog import catalog
    from bigtrain.config.schema import REGISTRIES, option_schemas

    page = _page(site, "reference/config")
    ids, codes = _ids(page), _codes(page)
    anchor = hook().anchor
    missing = []
    # every option the registries have (schema-only ones as `schema-<option>`)
    for registry in REGISTRIES.values():
        for dotted, options in registry.all_schemas().items():
            group = dotted.replace(".", "/")
            for option in options:
                if (anchor(group, option) not in ids
                        and anchor(group, "schema", option) not in ids):
                    missing.append(f"registry option {group}={option}")
    # every shipped YAML option, with or without a schema
    for group, options in catalog().items():
        for option in options:
            if anchor(group, option) not in ids:
                missing.append(f"YAML option {group}={option}")
    for (group, option) in option_schemas():
        if anchor(group, option) not in ids:
            missing.append(f"schema'd option {group}={option}")
    # every key of every schema, as its full override path
    keys = hook().config_keys()
    assert len(keys) > 150
    missing += [f"key {k}" for k in keys if k not in codes]
    assert not missing, "the config reference misses:\n" + "\n".join(missing)


def test_the_config_reference_shows_types_defaults_and_help(site):
    import dataclasses

    from bigtrain.config.checks import field_help
    from bigtrain.config.trainer import TrainerConfig
    from bigtrain.data.schemas import CSVConfig

    ref = hook()
    page = _page(site, "reference/config")
    section = page[page.index('id="optim-adam"'):page.index('id="optim-adamw"')]
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", section)).split())
    # a value the option's YAML sets wins over the schema's default
    lr = ref.yaml_value(ref.option_values("optim", "adam")["lr"])
    assert f"optim.lr float {lr} " in text, text[:2000]
    # a default only the schema has
    page_text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    default = {f.name: f.default for f in dataclasses.fields(TrainerConfig)}["eval_batch_size"]
    assert f"trainer.eval_batch_size int {default} " in page_text
    # a required key, with the words of its schema comment (the words its error quotes)
    assert f"dataset.path str required {field_help(CSVConfig, 'path')}" in page_text


def test_the_cli_reference_lists_every_command_and_option(site):
    import typer

    from bigtrain.cli.main import app

    page = _page(site, "reference/cli")
    ids = _ids(page)
    anchor = hook().anchor
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="bigtrain")
    sections = {m.group(1): m.start() for m in re.finditer(r'<h2 id="([^"]+)"', page)}
    bounds = sorted(sections.values()) + [len(page)]
    missing = []
    names = root.list_commands(ctx)
    assert len(names) >= 14, names
    for name in names:
        cmd = root.get_command(ctx, name)
        section_id = anchor(f"bigtrain {name}")
        if section_id not in ids:
            missing.append(f"command {name}")
            continue
        start = sections[section_id]
        text = html.unescape(re.sub(r"<[^>]+>", "", page[start:min(b for b in bounds
                                                                  if b > start)]))
        for param in cmd.params:
            for opt in [*param.opts, *getattr(param, "secondary_opts", [])]:
                label = opt if opt.startswith("-") else (param.metavar or opt.upper())
                if label not in text:
                    missing.append(f"bigtrain {name} {label}")
            if param.help and " ".join(param.help.split())[:40].replace("`", "") not in \
                    " ".join(text.split()):
                missing.append(f"bigtrain {name} {param.name}: its help")
        if cmd.epilog and "bigtrain" in cmd.epilog and "Example" not in text:
            missing.append(f"bigtrain {name}: its epilog")
    assert not missing, "the CLI reference misses:\n" + "\n".join(missing)


def test_the_reference_generator_imports_no_tensorflow():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('ref', {str(HOOK)!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['ref'] = m\n"
        "spec.loader.exec_module(m)\n"
        "assert m.render_config() and m.render_cli() and m.render_groups()\n"
        "heavy = sorted(n for n in ('tensorflow', 'keras', 'keras_hub') if n in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
