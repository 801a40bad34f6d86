"""Every Python code block of the README and of the user guide runs as written, in order, in one namespace
(as a reader pasting them into one session would), from a folder laid out like the repository's:
``configs/`` beside it and ``../shared/data`` above it."""

from __future__ import annotations

import re

import pytest

from .conftest import REPO, SHARED_DATA

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
#: The pages whose blocks run, in the order a reader meets them (docs/guide/index.md's order, maps first).
PAGES = [
    "README.md",
    "docs/getting-started.md",
    *(
        f"docs/guide/{page}.md"
        for page in (
            "upscaling",
            "reading-data",
            "downloads-to-product",
            "products",
            "uncertainty",
            "hybrids",
            "explanations",
            "domains",
            "cluster",
            "object-storage",
            "gap-filling",
            "tower-processing",
            "partitioning",
        )
    ),
]


def page_blocks(page: str) -> list[str]:
    """The Python code blocks of one page, in order."""
    return BLOCK.findall((REPO / page).read_text())


def test_every_guide_page_is_in_the_run_order():
    listed = {f"docs/guide/{p.stem}.md" for p in (REPO / "docs" / "guide").glob("*.md") if p.stem != "index"}
    assert listed <= set(PAGES)
    for page in PAGES[2:]:
        assert page.removeprefix("docs/guide/").removesuffix(".md") in (REPO / "docs/guide/index.md").read_text()


def test_the_readme_has_python_blocks():
    blocks = page_blocks("README.md")
    assert len(blocks) >= 2
    assert blocks[0].startswith("import uflux_xr as ux")
    assert sum(len(page_blocks(p)) for p in PAGES) >= 10


def test_the_readme_is_a_front_page():
    assert len((REPO / "README.md").read_text().splitlines()) <= 200


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="the README's blocks read ../shared/data")
def test_every_readme_python_block_runs_as_written(tmp_path, monkeypatch, s3):
    s3.make_bucket("my-bucket")  # the object-storage page's bucket, in the local S3 server (AWS_ENDPOINT_URL)
    root = tmp_path / "repo"
    root.mkdir()
    (root / "configs").symlink_to(REPO / "configs")
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    monkeypatch.chdir(root)
    namespace: dict = {"__name__": "__readme__"}
    for page in PAGES:
        for i, block in enumerate(page_blocks(page)):
            code = compile(block, f"{page} python block {i + 1}", "exec")
            exec(code, namespace)  # noqa: S102 - the documentation's own code, the point of the test
    # what the blocks say they make
    # everything they write is in the one folder they name: the working tree stays clean
    assert sorted(p.name for p in root.iterdir()) == ["configs", "uflux_examples"]
    out = root / "uflux_examples"
    assert (out / "gpp.nc").exists() and (out / "gpp.uxm").exists()
    assert (out / "demo_out" / "product.nc").exists() and (out / "demo_out" / "report.html").exists()
    assert (out / "DE-Tha_NEE.html").exists()
    assert set(namespace["vi"].data_vars) >= {"NDVI", "NIRv", "EVI2"}
    assert namespace["filled"]["NEE_f"].notnull().all()
    assert float(namespace["aoa"].AOA.where(namespace["aoa"].AOA >= 0).mean()) > 0.5
    annual = namespace["done"].annual
    assert {"NEE", "GPP_NT", "RECO_NT", "GPP_DT", "RECO_DT"} <= set(annual["variable"])
    assert (annual["unfilled"] == 0).all()
