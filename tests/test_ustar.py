"""u* threshold: REddyProc's moving-point method and bootstrap, on its own test cases and on known answers."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.site.ustar import (
    UstarOptions,
    plateau_threshold,
    season_labels,
    threshold_series,
    ustar_flags,
    ustar_thresholds,
)

from .conftest import SHARED_DATA

needs_shared = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")


def test_plateau_on_reddyproc_binned_case():
    # REddyProc tests/testthat/test_UStarFilter.R "usEstUstarThresholdSingleFw2Binned": 0.46 within 0.01
    ustar = [0.276666666666667, 0.326666666666667, 0.341111111111111, 0.363333333333333, 0.384444444444444,
             0.401111111111111, 0.417777777777778, 0.434444444444444, 0.462222222222222, 0.495555555555556,
             0.521111111111111, 0.553333333333333, 0.587777777777778, 0.602222222222222, 0.624444444444444,
             0.654444444444444, 0.693333333333333, 0.77, 0.936666666666667, 2.11]  # fmt: skip
    nee = [1.105, 1.26888888888889, 1.22444444444444, 0.908888888888889, 0.888888888888889, 1.13333333333333,
           1.85888888888889, 1.46777777777778, 2.30222222222222, 1.95, 0.948888888888889, 1.09888888888889,
           2.36666666666667, 0.985555555555556, 1.30777777777778, 1.63555555555556, 1.75777777777778,
           1.84222222222222, 1.59, -0.316666666666667]  # fmt: skip
    assert plateau_threshold(np.array(ustar), np.array(nee), UstarOptions()) == pytest.approx(0.46, abs=0.01)


def test_seasons_as_reddyproc():
    time = pd.date_range("1998-01-01 00:15", "1999-12-31 23:45", freq="30min")
    labels = season_labels(time)
    assert labels[0] == 1998001 and labels[time.get_loc(pd.Timestamp("1998-12-15 00:15"))] == 1998012
    assert labels[time.get_loc(pd.Timestamp("1999-02-10 00:15"))] == 1998012  # December runs into the next year
    assert sorted(set(labels)) == [1998001, 1998003, 1998006, 1998009, 1998012, 1999003, 1999006, 1999009, 1999012]


@needs_shared
def test_de_tha_thresholds_as_reddyproc():
    ds = ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv")
    table = ustar_thresholds(ds, n_samples=1)
    # test_UStarFilter.R "sEstUstarThold: standard case" 0.42 and "changing to FW1" 0.34, within 0.01
    assert table["ustar"].iloc[0] == pytest.approx(0.42, abs=0.01)
    assert ustar_thresholds(ds, n_samples=1, method="fw1")["ustar"].iloc[0] == pytest.approx(0.34, abs=0.01)
    # REddyProc's vignette useCase.md prints each season: 0.41625 (Jan-Feb: no class has a threshold, the
    # year's value), 0.41625, 0.352, 0.3369231, 0.174
    seasons = table[table["aggregation"] == "season"].set_index("season")["ustar"]
    expected = {1998001: 0.41625, 1998003: 0.41625, 1998006: 0.352, 1998009: 0.3369231, 1998012: 0.174}
    for season, value in expected.items():
        assert seasons[season] == pytest.approx(value, abs=1e-7)
    assert "season 1998001: threshold in 0 of 7 temperature classes" in table.attrs["notes"][0]


@needs_shared
def test_de_tha_bootstrap():
    ds = ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv")
    table = ustar_thresholds(ds, n_samples=200, seed=0)
    single = table.iloc[0]
    # REddyProc's vignette run (100 samples): 0.3787882, 0.4508561, 0.6112386; bootstrap quantiles are random,
    # so within 0.04
    for column, value in {"U05": 0.3787882, "U50": 0.4508561, "U95": 0.6112386}.items():
        assert single[column] == pytest.approx(value, abs=0.04)
    assert single["valid_share"] == 1.0
    pd.testing.assert_frame_equal(table, ustar_thresholds(ds, n_samples=200, seed=0))  # same seed, same table
    series = threshold_series(table, ds.indexes["time"], "U95")
    assert (series == single["U95"]).all()  # the year's value in every season


def night_site(threshold=0.3, days=365, seed=1):
    """A site whose night NEE falls below its plateau linearly under ``threshold`` u*."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2020-01-01 00:15", periods=48 * days, freq="30min")
    hour = (time.hour + time.minute / 60).to_numpy()
    doy = time.day_of_year.to_numpy()
    sw = np.clip(700 * np.sin(np.pi * (hour - 6) / 12), 0, None)
    ta = 8 - 8 * np.cos(2 * np.pi * doy / 365) + rng.normal(0, 3, time.size)
    ustar = rng.gamma(3.0, 0.15, time.size)
    respiration = 2.0 * np.exp(0.07 * ta)
    nee = respiration * np.minimum(ustar / threshold, 1.0) + rng.normal(0, 0.2, time.size)
    data = {"NEE": (nee, "umol m-2 s-1"), "USTAR": (ustar, "m s-1"), "TA": (ta, "degC"), "SW_IN": (sw, "W m-2")}
    return xr.Dataset({k: ("time", v, {"units": u}) for k, (v, u) in data.items()}, coords={"time": time})


def test_known_threshold_is_found():
    table = ustar_thresholds(night_site(0.3), n_samples=20)
    assert table["ustar"].iloc[0] == pytest.approx(0.3, abs=0.05)
    assert table["U05"].iloc[0] <= table["U50"].iloc[0] <= table["U95"].iloc[0]


def test_flags_as_reddyproc():
    ds = night_site()
    ds["USTAR"][10] = np.nan
    flags = ustar_flags(ds, np.full(ds.sizes["time"], 0.3))
    night = ds["SW_IN"].values < 10
    ustar = ds["USTAR"].values
    assert (flags[night & (ustar < 0.3)] == 1).all() and flags[10] == 4
    assert (flags[~night] == 0).all() and (flags[night & (ustar >= 0.3)] == 0).all()


def test_too_few_records_and_no_nights():
    ds = night_site(days=20)
    with pytest.raises(ValueError, match=r"no u\* threshold could be estimated: .*too few night records"):
        ustar_thresholds(ds, n_samples=1)
    arctic = night_site(days=120)
    arctic["SW_IN"][:] = 200.0  # polar day: no night records
    with pytest.raises(ValueError, match=r"no night record \(SW_IN < 10 W m-2\)"):
        ustar_thresholds(arctic, n_samples=1)
    with pytest.raises(KeyError, match=r"needs 'USTAR' \[m s-1\]"):
        ustar_thresholds(night_site(days=5).drop_vars("USTAR"))


@needs_shared
def test_scenarios_carry_through_gap_filling():
    ds = ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv").isel(site=0)
    table = ustar_thresholds(ds, n_samples=30, seed=1)
    out = ux.fill_ustar_scenarios(ds, "NEE", table, fill_all=False)
    kept = {s: int(out[f"NEE_{s}"].notnull().sum()) for s in ("U05", "U50", "U95")}
    assert kept["U05"] >= kept["U50"] >= kept["U95"] < int(ds["NEE"].notnull().sum())  # higher u*, fewer kept
    night = ds["SW_IN"].values < 10
    low = night & (ds["USTAR"].values < table["U50"].iloc[0])
    assert out["NEE_U50"].values[low].size > 0 and np.isnan(out["NEE_U50"].values[low]).all()
    assert (out["USTAR_U50_FQC"].values[low] == 1).all()
    assert np.isfinite(out["NEE_U50_f"].values).all()  # no gap longer than 60 days in DE-Tha 1998
