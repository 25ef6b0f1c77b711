"""The seam between bigtrain's CLI and Hydra.

`dispatch` hands a command's arguments to Hydra's own argument parser and dispatcher, the code
path `@hydra.main` uses, so multirun, sweepers, launchers, `--cfg`, `--info` and `-cd` work
unchanged. `compose` serves the commands that only need a config (show, validate, completion).
Hydra is imported inside the functions: `bigtrain --help` never pays for it.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

CONFIG_MODULE = "bigtrain.conf"
CONFIG_PATH = "pkg://" + CONFIG_MODULE
CONFIG_NAME = "fit"


def _prepare() -> None:
    import hydra.version
    from hydra.core.global_hydra import GlobalHydra

    from bigtrain.config.schema import register_schemas

    hydra.version.setbase("1.3")
    GlobalHydra.instance().clear()
    register_schemas()
    register_own_plugins()
    # Let exceptions reach bigtrain's error handling (exit status 2 for config mistakes)
    # instead of Hydra's own printer, which always exits with status 1.
    os.environ["HYDRA_FULL_ERROR"] = "1"


def register_own_plugins() -> None:
    """bigtrain's Optuna sweeper (`hydra/sweeper=bigtrain_optuna`), registered with Hydra by
    name. Hydra finds plugins by listing the `hydra_plugins` namespace package, which an
    editable install hides from it (setuptools' editable finder answers imports but cannot
    list a folder); imported and registered here, the sweeper works under every kind of install.
    (A regular install also lets plain Hydra apps find it by that scan.)"""
    from hydra.core.plugins import Plugins

    import hydra_plugins.bigtrain_optuna_sweeper.config  # noqa: F401  (its ConfigStore entry)
    from hydra_plugins.bigtrain_optuna_sweeper.sweeper import OptunaSweeper

    Plugins.instance().register(OptunaSweeper)


def dispatch(args: Sequence[str], task_function: Callable[[Any], Any],
             resumed: Resumed | None = None) -> None:
    """Run `task_function` through Hydra exactly as `@hydra.main` would, with `args` as argv;
    with `resumed`, a single run of that recorded config in its own run dir (`bigtrain
    resume`) instead of the config `args` compose."""
    from hydra._internal.utils import _run_hydra, get_args_parser

    _prepare()
    parser = get_args_parser()
    parsed = parser.parse_intermixed_args(list(args))
    reused = contextlib.nullcontext()
    if not (parsed.help or parsed.hydra_help or parsed.shell_completion or parsed.info):
        cfg = check_targets(parsed)
        if resumed is not None:
            cfg = _as_resumed(cfg, resumed)
        reused = _composed_once(cfg, parsed)  # a copy: precheck marks its hydra node read-only
        if not parsed.multirun and parsed.cfg is None:
            precheck(cfg)
    raised: list[BaseException] = []

    def single_job(cfg: Any) -> Any:
        # a single run's exception is re-raised below, past Hydra, which would first print
        # "Error executing job with overrides: [...]" over bigtrain's own one-line report
        try:
            return task_function(cfg)
        except Exception as ex:  # noqa: BLE001 - every kind is re-raised as it was
            raised.append(ex)
            return None

    with reused, _log_files_opened_late():
        _run_hydra(
            args=parsed,
            args_parser=parser,
            task_function=task_function if parsed.multirun else single_job,
            config_path=CONFIG_PATH,
            config_name=CONFIG_NAME,
        )
    if raised:
        raise raised[0]


@dataclass
class Resumed:
    """What `bigtrain resume` runs: a run's recorded config in its own run dir."""

    run_dir: str
    job: Any  # the job's config (its groups' typed nodes), in place of a composed one
    overrides: list[str]  # the task overrides Hydra's record of the job keeps
    choices: dict[str, Any] | None = None  # the recorded option of each config group


def _as_resumed(cfg: Any, resumed: Resumed) -> Any:
    """The composed config with its job part replaced by the recorded one, and Hydra's node
    saying so: the run dir, the run's own overrides and option choices (Hydra's record of
    the job, .hydra/, is written from it)."""
    from omegaconf import open_dict, read_write

    with read_write(cfg), open_dict(cfg):
        for key in [k for k in cfg.keys() if k != "hydra"]:
            del cfg[key]
        for key, node in resumed.job.items():
            cfg[key] = node
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.run.dir = resumed.run_dir
        cfg.hydra.overrides.hydra.append(f"hydra.run.dir={resumed.run_dir}")
        cfg.hydra.overrides.task = list(resumed.overrides)
        if resumed.choices is not None:
            cfg.hydra.runtime.choices = dict(resumed.choices)
    return cfg


@contextmanager
def _log_files_opened_late() -> Iterator[None]:
    """Hydra configures a job's logging before it calls the task; its log files are opened
    only when first written to (`delay`), so that a job the task refuses creates no log file
    (bigtrain.run.admission holds the records until the run is accepted). Jobs run in this
    process: the basic launcher's, and every single run."""
    import hydra.core.utils as hydra_utils
    from omegaconf import OmegaConf, open_dict, read_write

    configure = hydra_utils.configure_log

    def configure_log(log_config: Any, verbose_config: Any = False) -> None:
        if log_config is not None and OmegaConf.is_dict(log_config.get("handlers")):
            log_config = copy.deepcopy(log_config)
            with read_write(log_config), open_dict(log_config):
                for handler in log_config.handlers.values():
                    if OmegaConf.is_dict(handler) and \
                            str(handler.get("class", "")) in FILE_HANDLERS:
                        handler.delay = True
        configure(log_config, verbose_config)

    hydra_utils.configure_log = configure_log
    try:
        yield
    finally:
        hydra_utils.configure_log = configure


#: logging's handlers that write a file and take `delay`
FILE_HANDLERS = ("logging.FileHandler", "logging.handlers.RotatingFileHandler",
                 "logging.handlers.TimedRotatingFileHandler",
                 "logging.handlers.WatchedFileHandler")


@contextmanager
def _composed_once(cfg: Any, parsed: Any) -> Iterator[None]:
    """Hydra composes the primary config twice more before the job starts (`get_mode`, for
    `hydra.mode` alone, then `run` or `multirun`), 0.15-0.4 s each here: the composition
    `check_targets` made answers both, when Hydra asks for exactly that one (same config,
    overrides, mode and search path); anything else Hydra composes as before."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.hydra import Hydra
    from hydra.types import RunMode
    from omegaconf import read_write

    mode = RunMode.MULTIRUN if parsed.multirun else RunMode.RUN
    composed, overrides = copy.deepcopy(cfg), list(parsed.overrides)
    if cfg.hydra.mode is None:  # Hydra then composes with hydra.mode=RUN (or MULTIRUN) added
        with read_write(composed.hydra):
            composed.hydra.mode = mode
            composed.hydra.overrides.hydra.append(f"hydra.mode={mode.name}")
        overrides.append(f"hydra.mode={mode.name}")
    key = (parsed.config_name or CONFIG_NAME, overrides, _entries(_search_path(parsed)))
    unused = [composed]
    load, get_mode = ConfigLoaderImpl.load_configuration, Hydra.get_mode

    def load_configuration(self, config_name, overrides, run_mode, from_shell=True,
                           validate_sweep_overrides=True):
        if unused and run_mode == mode and from_shell and validate_sweep_overrides and \
                (config_name, list(overrides), _entries(self.get_search_path())) == key:
            return unused.pop()
        return load(self, config_name, overrides, run_mode, from_shell=from_shell,
                    validate_sweep_overrides=validate_sweep_overrides)

    def mode_of(self, config_name, overrides):
        if (config_name, list(overrides), _entries(self.config_loader.get_search_path())) \
                == (key[0], list(parsed.overrides), key[2]):
            return cfg.hydra.mode
        return get_mode(self, config_name, overrides)

    ConfigLoaderImpl.load_configuration, Hydra.get_mode = load_configuration, mode_of
    try:
        yield
    finally:
        ConfigLoaderImpl.load_configuration, Hydra.get_mode = load, get_mode


def _entries(search_path: Any) -> list[tuple[str, str]]:
    return [(e.provider, e.path) for e in search_path.get_path()]


def _search_path(parsed: Any) -> Any:
    """Where the primary config is looked for: bigtrain's configs, then `-cd`'s folder."""
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    from bigtrain.core.errors import ConfigError

    search_path = create_automatic_config_search_path(None, None, CONFIG_PATH)
    if parsed.config_dir is not None:
        path = os.path.abspath(parsed.config_dir)
        if not os.path.isdir(path):
            raise ConfigError("--config-dir", f"directory {path!r} does not exist")
        search_path.prepend(provider="command-line", path=f"file://{path}",
                            anchor=SearchPathQuery(provider="schema"))
    return search_path


#: where the callables a config may name (`_target_`, logging's `()`) may come from
TRUSTED_PREFIXES = ("bigtrain.", "hydra.", "hydra_plugins.", "logging.", "ext://sys.")
ALLOW_ENV = "BIGTRAIN_ALLOW_TARGETS"


def precheck(cfg: Any) -> None:
    """A single run's every check that needs no TensorFlow (`bigtrain.config.checks.check_config`),
    then the model's `fetch` (pretrained weights, which may import TensorFlow), before Hydra
    makes the run dir: a mistake leaves nothing behind. (Each job of a sweep checks itself,
    and records the mistake in its own summary.json.)"""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from bigtrain.config.checks import check_config
    from bigtrain.core.errors import ConfigError

    HydraConfig.instance().set_config(cfg)  # ${hydra:...} in a job's config resolves as there
    job = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
    try:
        config = check_config(job)
    except ConfigError as ex:
        if "hydra" in str(ex.__cause__ or ""):  # needs what only the job has (its run dir)
            return
        raise
    from bigtrain.models.fetch import fetch

    fetch(config.model)


def check_targets(parsed: Any) -> Any:
    """Refuse a config that would make Hydra import and call code outside bigtrain, Hydra
    and its plugins (a callback, launcher, sweeper or log handler named in a YAML file or an
    override), unless the user allows that module with BIGTRAIN_ALLOW_TARGETS=prefix[,...].
    The job's own groups have schemas, which reject `_target_` keys anyway. Returns the
    composed config (with its `hydra` node)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from bigtrain.core.errors import ConfigError

    loader = ConfigLoaderImpl(config_search_path=_search_path(parsed))
    with _composition_errors():
        cfg = loader.load_configuration(
            config_name=parsed.config_name or CONFIG_NAME, overrides=list(parsed.overrides),
            run_mode=RunMode.MULTIRUN if parsed.multirun else RunMode.RUN, from_shell=True)
    node = OmegaConf.to_container(cfg.hydra, resolve=False)
    allowed = TRUSTED_PREFIXES + tuple(
        p.strip() for p in os.environ.get(ALLOW_ENV, "").split(",") if p.strip())
    for key, target in _targets(node, "hydra"):
        if not isinstance(target, str) or not target.startswith(allowed):
            raise ConfigError(key, f"{target!r} is outside bigtrain, Hydra and its plugins; "
                              f"a config may not make bigtrain import it. If you trust it, "
                              f"allow it: {ALLOW_ENV}={str(target).rsplit('.', 1)[0]}")
    return cfg


def _targets(node: Any, prefix: str):
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}"
            if isinstance(v, str) and (k in ("_target_", "()") or (k == "class" and "." in v)
                                       or v.startswith("ext://")):
                yield key, v
            else:
                yield from _targets(v, key)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _targets(v, f"{prefix}[{i}]")


def compose(overrides: Sequence[str], config_dir: str | None = None) -> Any:
    """Compose the fit config with `overrides` (no run dir, no job), for show/validate."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module

    from bigtrain.core.errors import ConfigError

    _prepare()
    if config_dir is not None:
        path = os.path.abspath(config_dir)
        if not os.path.isdir(path):
            raise ConfigError("--config-dir", f"directory {path!r} does not exist")
        ctx = initialize_config_dir(config_dir=path, version_base="1.3")
    else:
        ctx = initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3")
    with ctx, _composition_errors():
        return hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))


@contextmanager
def _composition_errors() -> Iterator[None]:
    """Hydra raises plain ValueError/TypeError for some malformed overrides (`model=0`):
    while composing, those are the user's mistakes, so they become ConfigErrors."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from bigtrain.core.errors import ConfigError

    try:
        yield
    except (ConfigError, HydraException, OmegaConfBaseException):
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as ex:
        first = next((ln for ln in str(ex).splitlines() if ln.strip()), type(ex).__name__)
        raise ConfigError("overrides", first.strip()) from ex


def complete(previous: Sequence[str], incomplete: str) -> list[str]:
    """Shell completion for overrides, answered by Hydra's own completion plugin."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.core_plugins.bash_completion import BashCompletion
    from hydra._internal.utils import create_automatic_config_search_path

    _prepare()
    search_path = create_automatic_config_search_path(None, None, CONFIG_PATH)
    loader = ConfigLoaderImpl(config_search_path=search_path)
    line = " ".join([*previous, incomplete])
    try:
        return BashCompletion(loader)._query(config_name=CONFIG_NAME, line=line)
    except Exception:  # completion must never crash the shell
        return []
