"""The seam between bigtrain's CLI and Hydra.

`dispatch` hands a command's arguments to Hydra's own argument parser and dispatcher, the code
path `@hydra.main` uses, so multirun, sweepers, launchers, `--cfg`, `--info` and `-cd` work
unchanged. `compose` serves the commands that only need a config (show, validate, completion).
Hydra is imported inside the functions: `bigtrain --help` never pays for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

CONFIG_MODULE = "bigtrain.conf"
CONFIG_PATH = "pkg://" + CONFIG_MODULE
CONFIG_NAME = "fit"


def _prepare() -> None:
    import hydra.version
    from hydra.core.global_hydra import GlobalHydra

    from bigtrain.config import register_schemas

    hydra.version.setbase("1.3")
    GlobalHydra.instance().clear()
    register_schemas()
    # Let exceptions reach bigtrain's error handling (exit status 2 for config mistakes)
    # instead of Hydra's own printer, which always exits with status 1.
    os.environ["HYDRA_FULL_ERROR"] = "1"


def dispatch(args: Sequence[str], task_function: Callable[[Any], Any]) -> None:
    """Run `task_function` through Hydra exactly as `@hydra.main` would, with `args` as argv."""
    from hydra._internal.utils import _run_hydra, get_args_parser

    _prepare()
    parser = get_args_parser()
    parsed = parser.parse_intermixed_args(list(args))
    _run_hydra(
        args=parsed,
        args_parser=parser,
        task_function=task_function,
        config_path=CONFIG_PATH,
        config_name=CONFIG_NAME,
    )


def compose(overrides: Sequence[str], config_dir: str | None = None) -> Any:
    """Compose the fit config with `overrides` (no run dir, no job), for show/validate."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module

    from bigtrain.config.errors import ConfigError

    _prepare()
    if config_dir is not None:
        path = os.path.abspath(config_dir)
        if not os.path.isdir(path):
            raise ConfigError("--config-dir", f"directory {path!r} does not exist")
        ctx = initialize_config_dir(config_dir=path, version_base="1.3")
    else:
        ctx = initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3")
    with ctx:
        return hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))


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
