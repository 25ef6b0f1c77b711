"""bigtrain: config-driven training of TensorFlow/Keras models.

Importing the package is cheap on purpose: TensorFlow is imported only by the modules that
build and train (data, models, optim, train), never by the CLI's help, ls, show or validate.
"""

import os as _os
import sys as _sys
import time as _time

__version__ = "0.1.0"

#: when this process imported bigtrain: a `bigtrain` command's start (summary.json's timing)
IMPORTED_AT = _time.time()


def _configs_of_a_checkout() -> None:
    """The configs are the top-level conf/ folder, which an install maps into the package as
    `bigtrain.conf` (pyproject.toml). Where bigtrain is imported from a source checkout itself
    (`python -m scripts.bench` or `mkdocs build` at the checkout's root put the source tree
    first on sys.path), that folder is registered under the same name here, so the configs are
    the checkout's own either way. An installed package has its conf/ inside: nothing to do."""
    here = _os.path.dirname(__file__)
    conf = _os.path.join(_os.path.dirname(here), "conf")
    if ("bigtrain.conf" in _sys.modules or _os.path.isdir(_os.path.join(here, "conf"))
            or not _os.path.isfile(_os.path.join(conf, "__init__.py"))):
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bigtrain.conf", _os.path.join(conf, "__init__.py"), submodule_search_locations=[conf])
    module = importlib.util.module_from_spec(spec)
    _sys.modules["bigtrain.conf"] = module
    spec.loader.exec_module(module)


_configs_of_a_checkout()
