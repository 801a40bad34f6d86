"""The tower chain: REddyProc's aggregated-uncertainty vignette and process_site."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.core.qc import long_runs
from uflux_xr.site.random_error import (
    aggregate_with_random_error,
    autocorrelation,
    effective_autocorrelation,
    effective_observations,
    standard_error_of_mean,
)
from uflux_xr.site.spikes import spike_removed
from uflux_xr.site.ustar import ustar_flags
from uflux_xr.workflow.cli import main

from .conftest import SHARED_DATA

needs_shared = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")
DE_THA = {"lat": 51.0, "lon": 13.6, "utc_offset": 1.0}  # REddyProc's useCase vignette
#: µmol CO2 m-2 s-1 over 1998's half-hours to g C m-2: 17,520 × 1,800 s × 12.011e-6 g µmol-1.
TO_G_C_1998 = 17520 * 1800 * 12.011e-6


def de_tha():
    return ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv").isel(site=0)


@needs_shared
def test_random_error_as_reddyproc_aggregation_vignette():
    # REddyProc vignettes/aggUncertainty.md: Example_DETha98 with filterLongRuns("NEE"), u* threshold 0.3,
    # FillAll = TRUE: nRec 10901, NEEagg -1.657303, seMean 0.02988839 without and 0.04798329 with the
    # autocorrelation (lognorm nEff 4230.522), seMeanApprox 0.04254471; the first ten daily rows.
    ds = de_tha()
    ds["NEE"] = ds["NEE"].where(~long_runs(ds["NEE"].values))
    flags = ustar_flags(ds, np.full(ds.sizes["time"], 0.3))
    ds["NEE_uStar"] = ds["NEE"].where(flags == 0)
    out = ux.gapfill(ds, "NEE_uStar", fill_all=True)
    measured = out["NEE_uStar"].values
    sd = np.where(np.isfinite(measured), out["NEE_uStar_fsd"].values, np.nan)
    n_rec = int(np.isfinite(sd).sum())
    assert n_rec == 10901
    assert np.nanmean(out["NEE_uStar_f"].values) == pytest.approx(-1.657303, abs=5e-7)
    assert np.sqrt(np.nansum(sd**2)) / n_rec == pytest.approx(0.02988839, abs=5e-9)
    residuals = np.where(out["NEE_uStar_fqc"].values == 0, measured - out["NEE_uStar_fall"].values, np.nan)
    n_eff = effective_observations(residuals)
    assert n_eff == pytest.approx(4230.522, abs=5e-4)
    assert standard_error_of_mean(sd, n_eff) == pytest.approx(0.04798329, abs=5e-9)
    assert np.nanmean(sd) / np.sqrt(n_eff - 1) == pytest.approx(0.04254471, abs=5e-9)

    year = aggregate_with_random_error(out, "NEE_uStar", "YS")
    assert year["mean"].iloc[0] == pytest.approx(-1.657303, abs=5e-7)
    assert year["sd_random"].iloc[0] == pytest.approx(0.04798329, abs=5e-9)
    days = aggregate_with_random_error(out, "NEE_uStar", "D").iloc[:10]
    np.testing.assert_allclose(
        days["n_effective"], [11.0, 3.66, 0, 0, 10.9, 18.0, 18.0, 17.7, 17.5, 15.4], atol=0.05
    )  # printed to 3 significant digits
    np.testing.assert_allclose(days["n_measured"], [21, 7, 0, 0, 28, 48, 48, 46, 45, 36])
    np.testing.assert_allclose(
        days["mean"], [0.124, 0.0061, 0.0484, 0.303, 0.195, 0.926, -0.337, -0.139, 0.614, 0.242], atol=5e-4
    )
    np.testing.assert_allclose(
        days["sd_random"], [0.760, 1.56, np.nan, np.nan, 0.861, 0.615, 0.566, 0.525, 0.474, 0.641], atol=5e-3
    )


def test_effective_observations_of_known_processes():
    rng = np.random.default_rng(1)
    white = rng.normal(size=20000)
    # white noise: no lag before the first non-positive correlation is kept, n_eff is the record count
    assert effective_observations(white) == pytest.approx(20000, rel=0.02)
    ar = np.empty(20000)
    ar[0] = 0.0
    for i in range(1, ar.size):
        ar[i] = 0.5 * ar[i - 1] + rng.normal()
    # AR(1) with phi 0.5: n (1 - phi) / (1 + phi) = n / 3 (Bayley & Hammersley 1946)
    assert effective_observations(ar) == pytest.approx(20000 / 3, rel=0.08)
    assert effective_autocorrelation(ar)[1] == pytest.approx(0.5, abs=0.02)
    # gaps keep their place: lag-1 pairs across a gap are not counted, and R's denominator is pairs + lag
    x = np.array([1.0, 2.0, np.nan, 4.0, 3.0, 1.0])
    centred = x - np.nanmean(x)
    lag1 = (centred[0] * centred[1] + centred[3] * centred[4] + centred[4] * centred[5]) / (3 + 1)
    lag0 = np.nansum(centred**2) / 5
    assert autocorrelation(x, 1)[1] == pytest.approx(lag1 / lag0, rel=1e-12)


@pytest.fixture(scope="module")
def processed():
    """DE-Tha 1998 through the chain: u* bootstrap (20 samples), both partitionings (no day-time bootstrap)."""
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data (real tower files) is absent")
    return ux.process_site(de_tha(), **DE_THA, ustar_samples=20, daytime={"n_boot": 0})


def test_process_site_keeps_every_step(processed, tmp_path):
    data, annual = processed.data, processed.annual
    raw = de_tha()
    np.testing.assert_array_equal(data["NEE_raw"].values, raw["NEE"].values)
    removed = (data["NEE_RUN"] == 1) | spike_removed(data["NEE_SPIKE"])
    assert int(data["NEE_RUN"].sum()) == 34  # REddyProc's filterLongRuns removes these (10,901 records above)
    assert bool(data["NEE"].where(removed).isnull().all())
    for s in ("uStar", "U05", "U50", "U95"):
        for suffix in ("", "_f", "_fqc", "_fsd", "_fall"):
            assert f"NEE_{s}{suffix}" in data
        assert f"GPP_NT_{s}" in data and f"GPP_DT_{s}" in data and f"USTAR_{s}_FQC" in data
        assert np.isfinite(data[f"NEE_{s}_f"]).all()
    u = processed.summary["ustar"]
    assert u["U05"] <= u["U50"] <= u["U95"]
    assert 0.3 < u["threshold"] < 0.6
    # budgets: the sum is the mean of the filled series over the year, in g C m-2
    nee = annual[(annual["variable"] == "NEE")].set_index("scenario")
    for s in ("uStar", "U05", "U50", "U95"):
        assert nee.loc[s, "sum"] == pytest.approx(float(data[f"NEE_{s}_f"].mean()) * TO_G_C_1998, rel=1e-12)
    assert nee["sd_ustar"].iloc[0] == pytest.approx(np.std(nee["sum"], ddof=1), rel=1e-12)
    assert nee.loc["U50", "sd_total"] == pytest.approx(np.hypot(nee.loc["U50", "sd_random"], nee["sd_ustar"].iloc[0]))
    gpp = annual[annual["variable"] == "GPP_NT"].set_index("scenario")["sum"]
    # REddyProc's useCase: mean GPP 5.01-5.15 umol m-2 s-1 over its scenarios, i.e. 1,900-1,950 g C m-2
    assert gpp.between(1750, 2100).all()
    summary = json.loads(data.attrs["processing_summary"])
    assert summary["qc"]["NEE"]["long_runs"] == 34
    assert summary["gapfill"]["NEE_U50"]["unfilled"] == 0
    path = processed.to_netcdf(tmp_path / "de-tha.nc")
    back = xr.open_dataset(path)
    assert set(processed.data.data_vars) == set(back.data_vars)
    assert pd.read_csv(tmp_path / "de-tha_annual.csv").shape[0] == len(annual)
    assert "u* threshold" in processed.summary_text()
    # a Python user reads the summary as the command line prints it, not as a nested dict
    assert repr(processed.summary).startswith("site DE-Tha: 17520 records\n  QC NEE:")
    assert repr(processed).startswith("ProcessedSite: 17,520 records")


@needs_shared
def test_chain_budget_matches_reddyproc_vignette():
    # the vignette's case through the chain: long runs of NEE removed, u* 0.3, MDS FillAll; no spikes
    result = ux.process_site(de_tha(), fluxes=("NEE",), spikes=None, ustar=0.3, partitioning=())
    row = result.annual.set_index("variable").loc["NEE"]
    assert row["scenario"] == "uStar"
    assert row["sum"] == pytest.approx(-1.657303 * TO_G_C_1998, abs=5e-7 * TO_G_C_1998)
    assert row["sd_random"] == pytest.approx(0.04798329 * TO_G_C_1998, abs=5e-9 * TO_G_C_1998)


@needs_shared
def test_ml_fill_takes_what_mds_leaves():
    ds = de_tha()
    gap = slice(48 * 100, 48 * 175)  # 75 days: longer than MDS's 60-day limit
    ds["NEE"][gap] = np.nan
    mds_only = ux.process_site(ds, fluxes=("NEE",), spikes=None, ustar=None, partitioning=())
    assert int(mds_only.data["NEE_f"][gap].isnull().sum()) == 75 * 48
    both = ux.process_site(
        ds, fluxes=("NEE",), spikes=None, ustar=None, partitioning=(), ml_fill="lightgbm", ml={"members": 1}
    )
    filled = both.data.isel(time=gap)
    assert np.isfinite(filled["NEE_f"]).all()
    assert set(filled["NEE_fmeth"].values.astype(str)) == {"ml"}
    assert (filled["NEE_fqc"] == 3).all()
    # the ML fill takes every record MDS left, the artificial gap and the measured gaps it joined
    assert both.summary["gapfill"]["NEE"]["ml"] == int(mds_only.data["NEE_f"].isnull().sum()) >= 75 * 48
    assert both.summary["gapfill"]["NEE"]["unfilled"] == 0
    # what MDS filled is untouched
    by_mds = np.isfinite(mds_only.data["NEE_f"].values)
    np.testing.assert_array_equal(both.data["NEE_f"].values[by_mds], mds_only.data["NEE_f"].values[by_mds])


@needs_shared
def test_process_site_refuses_what_it_cannot_do():
    ds = de_tha()
    with pytest.raises(ux.PartitioningError, match="utc_offset"):
        ux.process_site(ds)  # no position: stops before any work
    with pytest.raises(KeyError, match=r"needs USTAR \[m s-1\].*ustar=0.3 \(command line: --ustar 0.3\)") as err:
        ux.process_site(ds.drop_vars("USTAR"), partitioning=())
    assert not str(err.value).startswith(("'", '"'))  # the message, not a KeyError's repr
    with pytest.raises(
        KeyError, match=r"'DE-Tha', QC: .*no NEE_QC.*good_qc=None \(command line: leave out --good-qc\)"
    ):
        ux.process_site(ds.drop_vars("NEE_QC"), good_qc=1, partitioning=())
    with pytest.raises(ValueError, match=r"'DE-Tha', ustar: no u\* threshold could be estimated.*--ustar none"):
        ux.process_site(ds.isel(time=slice(0, 2000)), ustar_samples=3, partitioning=())
    with pytest.raises(TypeError, match="no option"):
        ux.process_site(ds, partitoning=())
    with pytest.raises(ValueError, match="one site"):
        ux.process_site(xr.concat([ds.expand_dims(site=["a"]), ds.expand_dims(site=["b"])], "site"))
    with pytest.raises(ux.UnitsError):
        ux.process_site(ds.assign(TA=ds["TA"].assign_attrs(units="K")), partitioning=())


@needs_shared
def test_process_site_keeps_the_inputs_it_would_replace(caplog):
    # CH-Dav's file carries REddyProc's day-time GPP_DT and RECO_DT; the chain's own replace them, and the
    # file's are kept as GPP_DT_input and RECO_DT_input with a warning.
    ds = ux.read_sites(SHARED_DATA / "CH-Dav_2013-2022_halfhourly.parquet").isel(site=0).sel(time="2015")
    options = {"ustar": None, "partitioning": ("daytime",), "daytime": {"n_boot": 0}, "spikes": None}
    result = ux.process_site(ds, lat=46.82, lon=9.86, utc_offset=1.0, fluxes=("NEE",), **options)
    out = result.data  # like the input: one site without a site dimension
    assert result.summary["inputs_kept"] == {"GPP_DT": "GPP_DT_input", "RECO_DT": "RECO_DT_input"}
    np.testing.assert_array_equal(out["GPP_DT_input"].values, ds["GPP_DT"].values)
    assert not np.array_equal(out["GPP_DT"].values, ds["GPP_DT"].values, equal_nan=True)
    np.testing.assert_array_equal(out["GPP"].values, ds["GPP"].values)  # not an output: untouched, not renamed
    assert "GPP_DT_input" in caplog.text and "GPP_DT" in out["GPP_DT_input"].attrs["comment"]


@needs_shared
def test_cli_errors_are_messages_with_the_option(tmp_path, capsys):
    # the chain's error as a user reads it: its text and the way past, not a Python repr
    nofile = tmp_path / "DE-Tha_1998_no_ustar.tsv"
    raw = pd.read_csv(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv", sep="\t", header=[0, 1])
    raw.drop(columns="Ustar", level=0).to_csv(nofile, sep="\t", index=False)
    assert main(["process", str(nofile), "--out", str(tmp_path / "x.nc"), "--partitioning", "none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("uflux-xr: error: site ")
    assert "--ustar none" in err and "--ustar 0.3" in err


@needs_shared
def test_cli_process(tmp_path, capsys):
    out = tmp_path / "detha.nc"
    code = main(
        [
            "process",
            str(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv"),
            "--out",
            str(out),
            "--ustar",
            "0.3",
            "--partitioning",
            "nighttime",
            "--lat",
            "51",
            "--lon",
            "13.6",
            "--utc-offset",
            "1",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "u* threshold 0.300 m s-1 (given)" in text and "GPP_NT uStar" in text
    assert out.exists() and (tmp_path / "detha_annual.csv").exists()
    assert main(["process", str(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv"), "--out", str(out)]) == 2
