"""The code base stays ruff-clean (lint and format) and mypy-clean, as CI checks it."""

import shutil
import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]])
def test_ruff(args):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    done = subprocess.run([ruff, *args, "uflux_xr", "tests", "benchmarks"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy():
    # the package's annotations type-check ([tool.mypy] in pyproject.toml); run as a module of this
    # interpreter so the installed numpy/xarray/pandas stubs are the ones checked against
    if shutil.which("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    done = subprocess.run([sys.executable, "-m", "mypy", "uflux_xr"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
