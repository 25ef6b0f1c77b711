"""What the shipped config folder offers, read straight from the YAML files (no Hydra needed)."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

import yaml

PACKAGE = "bigtrain.conf"


def describe(text: str) -> str:
    """The one-line description from a YAML header: its first comment that is not a directive."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        body = stripped.lstrip("#").strip()
        if body and not body.startswith("@package") and not body.lower().startswith("usage:"):
            return body
    return ""


def _walk(node: Traversable, prefix: str, out: dict[str, dict[str, str]]) -> None:
    for child in node.iterdir():
        if child.is_dir() and not child.name.startswith(("_", ".")):
            group = f"{prefix}{child.name}"
            for item in child.iterdir():
                if item.is_file() and item.name.endswith(".yaml"):
                    out.setdefault(group, {})[item.name[:-5]] = describe(item.read_text())
            _walk(child, group + "/", out)


def catalog() -> dict[str, dict[str, str]]:
    """{group: {option: description}} for every group folder under conf/."""
    out: dict[str, dict[str, str]] = {}
    _walk(files(PACKAGE), "", out)
    return out


def defaults() -> dict[str, str]:
    """{group: option} chosen by fit.yaml's defaults list (a list group: "a,b")."""
    data = yaml.safe_load(files(PACKAGE).joinpath("fit.yaml").read_text()) or {}
    chosen: dict[str, str] = {}
    for entry in data.get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                if not key.startswith("override") and value is not None:
                    chosen[key] = ",".join(value) if isinstance(value, list) else str(value)
    return chosen


def schema_options() -> dict[tuple[str, str], str]:
    """(group, option) -> the schema option its YAML merges onto, from the
    `/schema/<group>/<schema option>@_here_` entry of its defaults list."""
    out: dict[tuple[str, str], str] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if not child.is_dir() or child.name.startswith(("_", ".")):
                continue
            group = f"{prefix}{child.name}"
            for item in child.iterdir():
                if item.is_file() and item.name.endswith(".yaml"):
                    data = yaml.safe_load(item.read_text()) or {}
                    for entry in data.get("defaults", []) if isinstance(data, dict) else []:
                        if isinstance(entry, str) and entry.startswith(f"/schema/{group}/"):
                            out[(group, item.name[:-5])] = entry.split("/")[-1].split("@")[0]
            walk(child, group + "/")

    walk(files(PACKAGE), "")
    return out
