"""HTML reports: the demo run's report.html and the CH-Dav gap-fill report, rendered in headless Chromium."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import uflux_xr as ux
from uflux_xr.report.gapfill_report import daily_with_uncertainty
from uflux_xr.workflow.cli import main

from .chromium import find_chromium, render
from .conftest import SHARED_DATA

CHDAV = SHARED_DATA / "CH-Dav_2013-2022_halfhourly.parquet"
needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="chromium is not installed (Debian's chromium package; .ci/run installs it)"
)
#: The issue's limit on the demo report's size [bytes].
MAX_REPORT_BYTES = 5_000_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _check_rendered(page, screenshot, sections):
    assert page.console_errors == []
    assert page.images, "the page shows no figure"
    broken = [i["alt"] for i in page.images if not (i["complete"] and i["naturalWidth"] > 0)]
    assert broken == [], f"images that did not load: {broken}"
    # self-contained: nothing but the file itself and its inline images was requested
    assert [u for u in page.requests if not u.startswith(("file:", "data:"))] == []
    for section in sections:
        assert any(h.startswith(section) for h in page.headings), (section, page.headings)
    width, height = _png_size(screenshot)
    assert width >= 1000 and height > 2000  # the whole page, not the first screen


@pytest.mark.slow
@needs_chromium
def test_demo_report_renders_in_chromium(demo_run, tmp_path):
    report = demo_run.products["report"]
    assert report == demo_run.out_dir / "report.html"
    assert report.stat().st_size <= MAX_REPORT_BYTES
    page = render(report, tmp_path / "demo_report.png")
    fluxes = ["GPP", "RECO", "NEE", "NEE_RECO_GPP", "LE", "ET", "H"]
    _check_rendered(
        page,
        tmp_path / "demo_report.png",
        [*fluxes, "Validation", "Product against the truth", "Uncertainty", "Provenance"],
    )
    # per flux: maps and seasonal cycle; then the scatters, the tower skill map and the truth maps
    assert len(page.images) >= 2 * len(fluxes) + 3
    # words and units a scientist reads: the element of carbon fluxes, no raw column or variable names
    alts = [image["alt"] for image in page.images]
    assert "GPP maps of the ensemble mean and SD [g C m-2 d-1]" in alts and "H seasonal cycle [W m-2]" in alts
    assert any(a.startswith("uncertainty maps: GPP dissimilarity index") for a in alts)
    assert any("LE: held-out towers [W m-2]" in a and "GPP: held-out towers [g C m-2 d-1]" in a for a in alts)
    text = report.read_text()
    assert "GPP total per year over the whole product [Pg C yr-1]" in text and "4 ensemble members" in text
    assert "<th>area-weighted mean outside the area of applicability</th>" in text  # H is a mean, not a total
    for raw in ("total_inside_aoa", "total_outside_aoa", "<th>r2</th>", "<th>target</th>", "Pg yr-1]"):
        assert raw not in text, raw


@pytest.mark.slow
def test_demo_run_records_its_provenance_and_the_plan(demo_run):
    record = json.loads((demo_run.out_dir / "run.json").read_text())
    assert record["config_text"] == Path(record["config_path"]).read_text()
    assert [m["label"] for m in record["members"]] == ["xgboost-0", "xgboost-1", "lightgbm-0", "lightgbm-1"]
    assert record["timings"]["report"] > 0 and record["timings"]["total"] > 0
    plan = {row["quantity"]: row for row in record["plan_vs_actual"]}
    per = plan["predictions per member and flux"]
    # the demo world is 60 % land by construction and every land cell is predicted
    assert per["actual"] == pytest.approx(per["plan"], rel=1e-9)
    rows = plan["training rows (any flux measured)"]
    assert 0.8 * rows["plan"] <= rows["actual"] <= rows["plan"]  # tower gaps take some site-days away
    # deduplicated inference (dedup="auto"): every model of the run is accounted for, and every
    # predicted row was predicted either deduplicated or plainly
    inference = record["inference"]
    assert len(inference) == len(record["members"]) * len(record["fluxes"])
    predicted = sum(s["rows"] + s["plain_rows"] for s in inference.values())
    assert predicted == pytest.approx(per["actual"] * len(inference), rel=1e-9)
    assert all(s["unique_rows"] <= s["rows"] for s in inference.values())
    held = pd.read_csv(demo_run.out_dir / "validation" / "predictions.csv")
    metrics = pd.read_csv(demo_run.out_dir / "validation" / "metrics.csv").set_index("target")
    for flux, rows_ in held.groupby("target"):
        assert len(rows_) == metrics.loc[flux, "n"]  # the scatter shows exactly the rows the metrics pooled


@pytest.mark.reference_data
@pytest.mark.skipif(not CHDAV.exists(), reason="needs ../shared/data/CH-Dav_2013-2022_halfhourly.parquet")
@needs_chromium
def test_chdav_gapfill_report_renders_in_chromium(tmp_path):
    ds = ux.read_sites(CHDAV)
    filled = ux.gapfill(ds, "NEE", method="mds")
    benchmark = ux.artificial_gap_benchmark(ds, "NEE", gap_days=(1, 7, 30), methods=("mds", "mdv"), n_gaps=2)
    path = ux.gapfill_report(filled, "NEE", tmp_path / "chdav_nee.html", benchmark=benchmark)
    page = render(path, tmp_path / "chdav_nee.png")
    _check_rendered(
        page,
        tmp_path / "chdav_nee.png",
        ["Fills per method", "The record", "Fingerprint", "Daily values", "Artificial-gap benchmark"],
    )
    assert len(page.images) == 4  # time series, fingerprint, daily values, benchmark
    text = path.read_text()
    assert "2013-01-01 to 2022-12-31: 175,296 records" in text
    assert "NEE [µmol CO2 m-2 s-1]" in text and "<th>quality 1</th>" in text and "col_0" not in text


def test_daily_uncertainty_adds_fill_variances_of_the_day():
    # One day of 4 records: two measured (no fill error), two filled with fsd 3 and 4:
    # SD of the daily mean = sqrt(3² + 4²) / 4 = 1.25.
    time = pd.date_range("2020-01-01", periods=4, freq="6h")
    measured = np.array([1.0, np.nan, 3.0, np.nan])
    filled = np.array([1.0, 2.0, 3.0, 6.0])
    fsd = np.array([np.nan, 3.0, np.nan, 4.0])
    daily = daily_with_uncertainty(time, filled, measured, fsd)
    assert daily["mean"].iloc[0] == pytest.approx(3.0, rel=1e-15)
    assert daily["sd"].iloc[0] == pytest.approx(1.25, rel=1e-15)
    assert daily["filled_share"].iloc[0] == 0.5


def test_gapfill_report_needs_a_filled_variable(world, tmp_path):
    with pytest.raises(KeyError, match=r"NEE: the dataset lacks \['NEE_f'.*ux.gapfill\(ds, 'NEE'"):
        ux.gapfill_report(world.sites, "NEE", tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_report_command_remakes_the_report_for_another_period(demo_run, tmp_path, capsys):
    out = tmp_path / "june.html"
    assert main(["report", str(demo_run.out_dir), "--out", str(out), "--period", "2020-06"]) == 0
    assert "Maps show the 2020-06 mean" in out.read_text()
    assert main(["report", str(demo_run.out_dir), "--out", str(out), "--period", "2031"]) == 2
    assert "period '2031' selects no time step" in capsys.readouterr().err


@pytest.mark.skipif(
    not (SHARED_DATA / "DE-Tha_1998_halfhourly.tsv").exists(), reason="needs ../shared/data/DE-Tha_1998_halfhourly.tsv"
)
def test_gapfill_command_writes_a_report_per_site_and_variable(tmp_path, capsys):
    out = tmp_path / "filled.nc"
    tsv = str(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv")
    argv = ["gapfill", tsv, "--var", "NEE", "LE", "--out", str(out), "--report", "--benchmark-gap-days", "1", "7"]
    assert main([*argv, "--benchmark-n-gaps", "2"]) == 0
    printed = capsys.readouterr().out
    for var in ("NEE", "LE"):
        report = tmp_path / f"filled_DE-Tha_{var}_report.html"
        assert f"wrote {report}" in printed
        text = report.read_text()
        # the record's counts as the CLI printed them, and the benchmark of MDS against MDV
        assert "17,520 records" in text and "Artificial-gap benchmark" in text
        assert text.count("<img") == 4
    assert "6,257 gaps" in (tmp_path / "filled_DE-Tha_NEE_report.html").read_text()
