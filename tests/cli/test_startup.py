"""Start-up of `bigtrain fit`: Hydra composes the primary config once, not three times, and
hands the job exactly what it would have composed itself. No TensorFlow here."""

from __future__ import annotations

import contextlib

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from omegaconf import OmegaConf

from bigtrain.cli import hydra_glue


def _dispatch(args: list[str], monkeypatch) -> tuple[int, list[dict]]:
    """Run `args` through bigtrain's Hydra dispatch with a task that records what each job
    got (its config and Hydra's, resolved where the job would resolve them); return the
    primary compositions made and the records."""
    from hydra.core.hydra_config import HydraConfig

    made, jobs = [0], []
    load = ConfigLoaderImpl.load_configuration

    def counted(self, *a, **kw):
        made[0] += 1
        return load(self, *a, **kw)

    def task(cfg):
        hydra = OmegaConf.to_container(HydraConfig.get(), resolve=False)
        hydra["runtime"].pop("output_dir")  # the same dir, written as Hydra made it
        jobs.append({"job": OmegaConf.to_container(cfg, resolve=False), "hydra": hydra})

    with monkeypatch.context() as m:
        m.setattr(ConfigLoaderImpl, "load_configuration", counted)
        m.setattr(hydra_glue, "precheck", lambda cfg: None)  # the data's checks: not here
        hydra_glue.dispatch(args, task)
    return made[0], jobs


@pytest.mark.parametrize("args", [
    ["model=mlp", "trainer.epochs=2"],
    ["-m", "optim.lr=0.1,0.2"],
], ids=["run", "multirun"])
def test_hydra_composes_the_config_once_and_the_job_gets_what_hydra_would_compose(
        tmp_path, monkeypatch, args):
    where = ("hydra.sweep.dir" if "-m" in args else "hydra.run.dir") + f"={tmp_path}"
    reused, got = _dispatch([*args, where], monkeypatch)
    monkeypatch.setattr(hydra_glue, "_composed_once",
                        lambda cfg, parsed: contextlib.nullcontext())
    composed, expected = _dispatch([*args, where], monkeypatch)
    assert got == expected
    # the check before the run dir, then Hydra's mode and its run: one composition, not three
    # (a sweep's jobs are each composed from their own overrides, as before)
    assert composed - reused == 2
    if "-m" not in args:
        assert reused == 1
