"""The wheel ships every module and config and declares what the code imports; an installed
(non-editable) copy finds its configs from anywhere and runs `bigtrain launch`."""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # built from a copy: xdist workers building in ROOT at once would share its build/ dir
    src = tmp_path_factory.mktemp("src") / "bigtrain"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "outputs", "multirun", ".*_cache",
        ".hypothesis", ".venv"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(src)], check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("bigtrain-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_contains_every_yaml_under_conf(wheel):
    expected = {f"bigtrain/conf/{p.relative_to(ROOT / 'conf').as_posix()}"
                for p in (ROOT / "conf").rglob("*.yaml")}
    assert len(expected) >= 12
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = expected - names
    assert not missing, f"configs missing from the wheel: {sorted(missing)}"


@pytest.mark.slow
def test_installed_wheel_finds_its_configs_from_any_directory(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bigtrain.cli.main as m; "
            "assert m.__file__.startswith(sys.argv[1]), m.__file__; "
            "sys.argv = ['bigtrain', 'validate', 'model=mlp']; m.run()")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], cwd=elsewhere,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "config is valid" in proc.stdout


@pytest.mark.slow
def test_wheel_contains_every_module(wheel):
    """pyproject.toml lists packages by name: a new package left out of it is caught here."""
    expected = {p.relative_to(ROOT).as_posix() for top in ("bigtrain", "hydra_plugins")
                for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts}
    assert {"bigtrain/run/launch.py", "bigtrain/cli/launch.py"} <= expected
    missing = expected - set(zipfile.ZipFile(wheel).namelist())
    assert not missing, f"modules missing from the wheel: {sorted(missing)}"


@pytest.mark.slow
def test_wheel_declares_its_imports_extras_and_command(wheel):
    with zipfile.ZipFile(wheel) as z:
        info = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(info))
        entry_points = z.read(info.replace("METADATA", "entry_points.txt")).decode()
    requires = meta.get_all("Requires-Dist")
    names = {r.split(";")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
             for r in requires}
    assert {"tensorflow", "keras", "pyyaml", "typer", "hydra-core"} <= names
    keras = next(r for r in requires if r.lower().startswith("keras"))
    assert "<" in keras, f"keras needs an upper bound (Keras internals are used): {keras}"
    assert any(r.startswith("pyarrow") and "parquet" in r for r in requires), requires
    assert "parquet" in meta.get_all("Provides-Extra")
    assert "bigtrain = bigtrain.cli.main:run" in entry_points


@pytest.mark.slow
def test_installed_wheel_runs_bigtrain_launch(wheel, tmp_path):
    """`bigtrain launch` from the installed wheel: one TF_CONFIG per worker, output prefixed."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    worker = "import json, os; print(json.loads(os.environ['TF_CONFIG'])['task']['index'])"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bigtrain.cli.main as m; "
            "import bigtrain.run.launch as launch; "
            "assert launch.__file__.startswith(sys.argv[1]), launch.__file__; "
            "sys.argv = ['bigtrain', 'launch', '--workers', '2', '--', sys.executable, '-c', "
            f"{worker!r}]; m.run()")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == ["0", "1", "[w0]", "[w1]"]


def _site_without_bigtrain(root: Path) -> Path:
    """A folder of links to this interpreter's installed packages, bigtrain's own left out
    (and bigtrain's sweeper out of the `hydra_plugins` namespace): what a fresh venv sees of
    its dependencies, so the editable install under test is the only bigtrain it can import."""
    import site

    packages = Path(next(p for p in site.getsitepackages() if Path(p, "hydra").is_dir()))
    out = root / "deps"
    out.mkdir()
    for entry in packages.iterdir():
        name = entry.name
        if name.startswith(("bigtrain", "__editable__", "_bigtrain")) or name.endswith(".pth"):
            continue
        if name == "hydra_plugins":
            (out / name).mkdir()
            for plugin in entry.iterdir():
                if plugin.name != "bigtrain_optuna_sweeper":
                    (out / name / plugin.name).symlink_to(plugin)
            continue
        (out / name).symlink_to(entry)
    return out


@pytest.mark.slow
def test_an_editable_install_runs_a_two_trial_search(tmp_path):
    """`pip install -e .` into a fresh venv: the configs under the top-level conf/ are found
    and so is the Optuna sweeper, which Hydra's plugin scan cannot list through setuptools'
    editable finder (bigtrain registers it itself), in a two-trial search."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "outputs", "multirun", ".*_cache",
        ".hypothesis", ".venv", "site"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    (site_dir,) = venv.glob("lib/python*/site-packages")
    (site_dir / "deps.pth").write_text(f"{_site_without_bigtrain(tmp_path)}\n")
    python = venv / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-build-isolation", "-e", str(src)], cwd=tmp_path, capture_output=True, text=True,
        timeout=300)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    where = subprocess.run([str(python), "-c", "import bigtrain, hydra_plugins; "
                            "print(bigtrain.__file__); print(list(hydra_plugins.__path__))"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(src / "bigtrain")), where.stdout + where.stderr
    assert "__editable__" in where.stdout  # the namespace is served by the editable finder

    run = subprocess.run(
        [str(venv / "bin" / "bigtrain"), "fit", "-m", "hydra/sweeper=bigtrain_optuna",
         "hydra.sweeper.n_trials=2", "debug=smoke", "model=mlp", "trainer.max_steps=2",
         "trainer.progress=none", "logger=[]", "optim.lr=interval(0.001,0.1)",
         "hydra.sweep.dir=search"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    best = json.loads((tmp_path / "search" / "optuna_best.json").read_text())
    assert best["trials"]["complete"] == 2


def test_a_source_checkout_imported_directly_uses_its_own_configs(tmp_path):
    """`python -m scripts.bench` or `mkdocs build` at a checkout's root import the source tree
    ahead of any installed copy: `bigtrain.conf` must then be the checkout's own conf/, not
    missing (a regular install) nor another tree's (an editable one)."""
    checkout = tmp_path / "checkout"
    for part in ("bigtrain", "conf"):
        shutil.copytree(ROOT / part, checkout / part,
                        ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import bigtrain\n"
            "from importlib.resources import files\n"
            "print(bigtrain.__file__)\n"
            "print(files('bigtrain.conf').joinpath('fit.yaml'))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    package, fit_yaml = proc.stdout.split()
    assert package == str(checkout / "bigtrain" / "__init__.py")
    assert fit_yaml == str(checkout / "conf" / "fit.yaml")
