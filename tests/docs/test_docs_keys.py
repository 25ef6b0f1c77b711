"""Every config key the docs name exists: `group.key=value` overrides in the code blocks and
inline code of docs/ and README.md, and `group.key` written as inline code, are checked
against the schemas (bigtrain's registries, Hydra's config, bigtrain's Optuna sweeper and the
launchers). A renamed or removed key fails here until the docs follow."""

from __future__ import annotations

import re
import shlex

import pytest
from docs_support import GROUPS, blocks, commands, inline_code, key_problem, markdown_files, rel

#: keys the docs name on purpose as ones that do not exist (an example of the error)
DELIBERATELY_UNKNOWN = {"trainer.foo"}
#: inline code that looks like a key and is not one: tf.distribute's `strategy.run`
NOT_KEYS = {"strategy.run", "model.safetensors"}  # a method; a file name
#: a span ending like a file name is a file (`model.preprocessing.json`, `trainer.py`)
FILE_SUFFIXES = {"py", "json", "jsonl", "yaml", "yml", "md", "keras", "csv", "txt", "png",
                 "log", "h5"}

_GROUP = "|".join(GROUPS)
#: an override in code: [+]group.key[.key...]= (not inside a longer name or a path)
OVERRIDE = re.compile(rf"(?<![\w./$-])\+?((?:{_GROUP})(?:\.[A-Za-z_]\w*)+)=")
#: inline code that starts with a key: `trainer.epochs`, `dataset.path: required`, `x.*`
KEY_SPAN = re.compile(rf"^\+?((?:{_GROUP})(?:\.[A-Za-z_]\w*)+)(?:\.\*)?(?=$|[=:\s])")
#: group=option on a command line (the option whose schema the command's keys must fit)
CHOICE = re.compile(r"^(dataset|model|optim|strategy|trainer)=([A-Za-z_]\w*)$")

SHELL = {"bash", "sh", "shell", "console", ""}


def _documented() -> list[tuple[str, str, str | None]]:
    """(where, key, option chosen beside it) for every key the docs name."""
    found: list[tuple[str, str, str | None]] = []
    for path in markdown_files():
        for block in blocks(path):
            if block.lang not in SHELL | {"text"}:
                continue
            for command, _ in commands(block.body):
                try:
                    words = shlex.split(command)
                except ValueError:
                    words = command.split()
                chosen = dict(m.groups() for w in words if (m := CHOICE.match(w)))
                for m in OVERRIDE.finditer(command):
                    key = m.group(1)
                    found.append((f"{rel(path)}:{block.line}", key,
                                  chosen.get(key.split(".")[0])))
        for line, span in inline_code(path):
            keys = {m.group(1) for m in OVERRIDE.finditer(span)}
            m = KEY_SPAN.match(span)
            if m and m.group(1).rsplit(".", 1)[-1] not in FILE_SUFFIXES:
                keys.add(m.group(1))
            found += [(f"{rel(path)}:{line}", key, None) for key in sorted(keys)]
    return found


def test_the_docs_name_config_keys():
    """The scan itself works: the docs name many keys (a broken scan would pass anything)."""
    keys = {key for _, key, _ in _documented()}
    assert len(keys) > 100, sorted(keys)
    assert {"trainer.batch_size", "optim.lr", "dataset.path", "hydra.run.dir",
            "hydra.sweeper.n_trials", "logger.mlflow.tracking_uri"} <= keys


def test_every_documented_key_exists():
    problems = []
    for where, key, option in _documented():
        if key in DELIBERATELY_UNKNOWN | NOT_KEYS:
            continue
        problem = key_problem(key, option)
        if problem:
            problems.append(f"{where}: {problem}")
    assert not problems, "keys the docs name that the config does not have:\n" + "\n".join(
        sorted(set(problems)))


@pytest.mark.parametrize("key, option, ok", [
    ("trainer.batch_size", None, True),
    ("optim.schedule.warmup", None, True),
    ("dataset.augment", None, True),
    ("logger.mlflow.tracking_uri", None, True),
    ("hydra.sweeper.params.optim.lr", None, True),
    ("hydra.launcher.n_jobs", None, True),
    ("hydra.run.dir", None, True),
    ("model.d_model", "transformer", True),
    ("trainer.epoch", None, False),
    ("model.d_model", "mlp", False),
    ("debug.steps", None, False),
    ("logger.mlflow.uri", None, False),
    ("hydra.sweeper.trials", None, False),
])
def test_the_check_tells_keys_from_non_keys(key, option, ok):
    assert (key_problem(key, option) is None) == ok
