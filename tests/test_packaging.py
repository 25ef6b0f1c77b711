"""The wheel ships every config, and an installed (non-editable) copy finds them anywhere."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True, timeout=300)
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
