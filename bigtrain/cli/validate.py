"""`bigtrain validate`: compose and check a config; run nothing."""

from __future__ import annotations

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import CONFIG_DIR, OVERRIDES


def validate(
    overrides: list[str] | None = OVERRIDES,
    config_dir: str | None = CONFIG_DIR,
) -> None:
    """Compose the config and run every check that needs no TensorFlow (values, and the data
    it names: paths, columns, class folders); exit 0 if valid, 2 with the error if not."""
    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.checks import check_config

    with reported():
        check_config(compose(overrides or [], config_dir))
    typer.echo("config is valid")


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
