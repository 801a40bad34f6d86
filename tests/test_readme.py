"""Every Python code block of the README runs as written, in order, in one namespace (as a reader
pasting them into one session would), from a folder laid out like the repository's: ``configs/``
beside it and ``../shared/data`` above it."""

from __future__ import annotations

import re

import pytest

from .conftest import REPO, SHARED_DATA

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_blocks() -> list[str]:
    """The README's Python code blocks, in order."""
    return BLOCK.findall((REPO / "README.md").read_text())


def test_the_readme_has_python_blocks():
    blocks = readme_blocks()
    assert len(blocks) >= 6
    assert blocks[0].startswith("import uflux_xr as ux")


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="the README's blocks read ../shared/data")
def test_every_readme_python_block_runs_as_written(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "configs").symlink_to(REPO / "configs")
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    monkeypatch.chdir(root)
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(readme_blocks()):
        code = compile(block, f"README.md python block {i + 1}", "exec")
        exec(code, namespace)  # noqa: S102 - the README's own code, the point of the test
    # what the blocks say they make
    assert (root / "gpp.nc").exists() and (root / "gpp.uxm").exists()
    assert (root / "demo_out" / "product.nc").exists() and (root / "demo_out" / "report.html").exists()
    assert (root / "DE-Tha_NEE.html").exists()
    assert set(namespace["vi"].data_vars) >= {"NDVI", "NIRv", "EVI2"}
    assert namespace["filled"]["NEE_f"].notnull().all()
