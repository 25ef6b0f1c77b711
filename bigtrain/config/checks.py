"""Every check of a composed config that needs no TensorFlow, in one place: required keys
named with what they are for, types and ranges (the schemas), and the files the config names.
`bigtrain fit` runs them before Hydra makes a run dir; `validate`, `show` and `data` run them;
each job of a sweep runs them again."""

from __future__ import annotations

import inspect
import re

from omegaconf import DictConfig, OmegaConf

from bigtrain.config.schema import to_typed
from bigtrain.core.errors import ConfigError


def check_config(cfg: DictConfig):
    """Every check that needs no TensorFlow, in order: required keys (named with what they
    are for), types and ranges (the schemas), then the data the config names (the dataset
    schema's `precheck`: paths exist, a header has its columns, a folder has class folders),
    and the files the model's config names (a weights file). `bigtrain fit` runs it before Hydra
    makes a run dir, `validate` and `data` run it, and each job runs it again. Returns the typed
    config; raises ConfigError naming the key."""
    check_required(cfg)
    config = to_typed(cfg)
    config.dataset.precheck()
    config.model.precheck()
    return config


def check_required(cfg: DictConfig) -> None:
    """A key left `???` (MISSING) in a group: 'dataset.path: required; <what it is>', where
    the words are the comment on that field in the group's schema."""
    from bigtrain.config.schema import GROUPS

    missing: list[tuple[str, type | None, str]] = []
    for group in (*GROUPS, "logger"):
        if group in cfg and isinstance(cfg[group], DictConfig):
            _missing(cfg[group], group, missing)
    if missing:
        key, schema, name = missing[0]
        what = field_help(schema, name) if schema is not None else None
        more = [k for k, _, _ in missing[1:]]
        raise ConfigError(key, "required; " + (what or f"set it with {key}=VALUE")
                          + (f" (also required: {', '.join(more)})" if more else ""))


def _missing(node: DictConfig, prefix: str, out: list) -> None:
    for k in node.keys():
        if OmegaConf.is_missing(node, k):
            out.append((f"{prefix}.{k}", OmegaConf.get_type(node), str(k)))
            continue
        child = node._get_node(k)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            _missing(child, f"{prefix}.{k}", out)


def field_help(schema: type, name: str) -> str | None:
    """What the key `name` is, in the schema author's words: the comment on its line in the
    schema dataclass, else the comment lines right above it (in the class or, where the class
    says nothing of it, a base class). Errors quote it; the config reference shows it."""
    field = re.compile(rf"^\s*{re.escape(name)}\s*:")
    trailing = re.compile(r"#\s*(.+?)\s*$")
    for klass in getattr(schema, "__mro__", ()):
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        for i, text in enumerate(lines):
            if not field.match(text):
                continue
            m = trailing.search(text.split("=", 1)[-1] if "=" in text else text)
            if m:
                return m.group(1)
            above = []
            for prev in reversed(lines[:i]):
                if not prev.strip().startswith("#"):
                    break
                above.insert(0, prev.strip().lstrip("#").strip())
            if above:
                return " ".join(above)
            break
    return None
