"""Continuing a run from its own record (`bigtrain resume RUN_DIR [OVERRIDES]`).

The run continues with the resolved config it recorded (`config.yaml`), whatever the configs
would compose to now (an experiment file edited since, a `-cd` dir not given again, another
bigtrain's defaults), in its own run dir. Overrides may only extend it: each must name a key
of that config whose change `rundir.config_changes` does not count (the run's length,
intervals, display and loggers: `rundir.may_change`), the one rule a `bigtrain fit` into the
same run dir follows too. Hydra's record of the job keeps the run's own overrides, with these
merged in, so that `bigtrain runs` still shows what the run was.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bigtrain.core.errors import ConfigError
from bigtrain.run import rundir
from bigtrain.run.admission import RECORD

#: trainer.resume values a resume may take: its own checkpoints (force: new preprocessing too)
RESUME_MODES = ("auto", "force")
#: the keys that decide when a run ends: a finished run goes on only if one of them changes
LENGTH = ("trainer.max_steps", "trainer.epochs", "trainer.patience", "trainer.min_delta")


@dataclass
class Plan:
    """What `bigtrain resume` does with a run dir."""

    config: dict[str, Any]  # the resolved config the run continues with
    overrides: list[str]  # the run's recorded task overrides, with the command's merged in
    choices: dict[str, Any] | None  # the recorded option of each config group, if recorded
    complete: dict[str, Any] | None  # the summary of a finished run nothing here extends


def allowed() -> str:
    """The keys a resume may set, for messages and help."""
    keys = sorted(k for k in rundir.RESUMABLE_CHANGES if k != "trainer.rerun")
    return ", ".join([*keys, *(p + "*" for p in rundir.RESUMABLE_PREFIXES)])


def plan(run_dir: Path, overrides: list[str]) -> Plan:
    """The run's recorded config with `overrides` applied; refuses a dir that is not a run
    and overrides that would change the run (ConfigError, naming them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    recorded = rundir.read_config(run_dir)
    if not isinstance(recorded, dict):
        sweep = " (it is a sweep dir: resume one of its jobs, RUN_DIR/<n>, or run the " \
                "sweep's command again)" if (Path(run_dir) / "multirun.yaml").exists() else ""
        raise ConfigError("RUN_DIR", f"{run_dir} is not a bigtrain run dir (no readable "
                          f"config.yaml){sweep}; pass a run dir that `bigtrain fit` wrote")
    config = copy.deepcopy(recorded)
    leaves = rundir.leaves(recorded)
    refused: list[str] = []
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        key = o.key_or_group
        if o.type != OverrideType.CHANGE or o.is_sweep_override() or o.package or \
                key not in leaves:
            refused.append(o.input_line)
            continue
        value = o.value()
        if key == "trainer.resume" and value not in RESUME_MODES:
            raise ConfigError(key, f"{value!r} is not valid here; resume continues the run "
                              f"dir's own checkpoints: {', '.join(RESUME_MODES)}")
        if key == "trainer.rerun" and value:
            raise ConfigError(key, "resume continues the run; to train it again from scratch "
                              "run its `bigtrain fit` command with trainer.rerun=true")
        _set(config, key, value)
        if not rundir.may_change(key) and leaves[key] != value:
            refused.append(o.input_line)
    if refused:
        raise ConfigError(", ".join(refused), "would change the run, which `bigtrain resume` "
                          f"continues as recorded; it takes only keys that extend it: "
                          f"{allowed()} (start another run with `bigtrain fit`)")
    summary = rundir.read_summary(run_dir) or {}
    now = rundir.leaves(config)
    complete = summary if summary.get("status") in rundir.FINISHED and \
        all(leaves.get(k) == now.get(k) for k in LENGTH) else None
    if "trainer.resume" not in {_key(o) for o in overrides}:
        config["trainer"]["resume"] = "auto"  # its own checkpoints, whatever it began from
    config["trainer"]["rerun"] = False
    return Plan(config, _merged(_recorded(run_dir, "overrides.yaml") or [], overrides),
                ((_recorded(run_dir, "hydra.yaml") or {}).get("hydra") or {}).get(
                    "runtime", {}).get("choices"), complete)


def _set(config: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[last] = value


def _key(line: str) -> str:
    return line.split("=", 1)[0].lstrip("+~")


def _merged(recorded: list[str], given: list[str]) -> list[str]:
    """The run's overrides with the given ones in place of those of the same key."""
    keys = {_key(o) for o in given}
    return [o for o in recorded if _key(o) not in keys] + list(given)


def _recorded(run_dir: Path, name: str) -> Any:
    """A file of Hydra's record of the run (None if missing or unreadable)."""
    try:
        return yaml.safe_load((Path(run_dir) / RECORD / name).read_text())
    except (OSError, yaml.YAMLError):
        return None


def job_nodes(config: dict[str, Any]) -> dict[str, Any]:
    """The config as Hydra hands it to the task, in the recorded order: each group a typed
    node of the schema of the option the run used (a key a newer schema added gets its
    default); a key that is no group is left for the task's check to name."""
    from omegaconf import OmegaConf

    from bigtrain.config.schema import GROUPS, LOGGERS, schema_of

    nodes: dict[str, Any] = {}
    for key, part in config.items():
        if key in GROUPS:
            nodes[key] = _typed(key, schema_of(key, dict(part or {})), part or {})
        elif key == "logger" and isinstance(part, dict):
            loggers = LOGGERS.schemas()
            for name in part:
                if name not in loggers:
                    raise ConfigError(f"logger.{name}", "this bigtrain has no such logger; its "
                                      "loggers: " + ", ".join(sorted(loggers)))
            nodes[key] = OmegaConf.create({name: _typed(f"logger.{name}", loggers[name], sub)
                                           for name, sub in part.items()})
        else:
            nodes[key] = part
    return nodes


def _typed(key: str, schema: type, part: dict[str, Any]) -> Any:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.merge(OmegaConf.structured(schema), part)
    except OmegaConfBaseException as e:
        raise ConfigError(key, "the run's config.yaml does not fit this bigtrain's schema "
                          f"({str(e).splitlines()[0]})") from e
