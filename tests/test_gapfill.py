"""MDS gap filling: known answers on synthetic series and parity with hesseflux on DE-Tha 1998."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.gapfill import gapfill
from uflux_xr.gapfill.mds import long_gap_mask

from .conftest import SHARED_DATA


def series(days=20, seed=0):
    """Half-hourly site dataset where NEE is a function of SW_IN only (plus noise)."""
    time = pd.date_range("2021-05-01 00:15", periods=48 * days, freq="30min")
    hour = (time.hour + time.minute / 60).to_numpy()
    sw = np.clip(800 * np.sin(np.pi * (hour - 6) / 12), 0, None)
    rng = np.random.default_rng(seed)
    ta = 15 + 5 * np.sin(np.pi * (hour - 9) / 12)
    vpd = 5 + 3 * np.sin(np.pi * (hour - 9) / 12)
    nee = 2.0 - 0.02 * sw + rng.normal(0, 0.1, len(time))
    data = {"NEE": (nee, "umol m-2 s-1"), "SW_IN": (sw, "W m-2"), "TA": (ta, "degC"), "VPD": (vpd, "hPa")}
    return xr.Dataset(
        {k: (("site", "time"), v[None], {"units": u}) for k, (v, u) in data.items()},
        coords={"site": ["XX-Syn"], "time": time},
    )


def test_fill_is_the_mean_of_similar_conditions():
    ds = series()
    truth = ds["NEE"].values[0].copy()
    ds["NEE"][0, 300] = np.nan
    out = gapfill(ds, "NEE")
    j = 300
    sw, ta, vpd = (ds[v].values[0] for v in ("SW_IN", "TA", "VPD"))
    tol = max(20, min(sw[j], 50))
    window = np.arange(max(j - 335, 0), j + 336)
    similar = window[
        (np.abs(sw[window] - sw[j]) < tol)
        & (np.abs(ta[window] - ta[j]) < 2.5)
        & (np.abs(vpd[window] - vpd[j]) < 5)
        & (window != j)
    ]
    assert out["NEE_f"].values[0, j] == pytest.approx(truth[similar].mean())
    assert out["NEE_fsd"].values[0, j] == pytest.approx(truth[similar].std(ddof=1))
    assert out["NEE_fnum"].values[0, j] == similar.size
    assert out["NEE_fqc"].values[0, j] == 1 and out["NEE_fmeth"].values[0, j] == "mds_all_drivers"
    assert out["NEE_fqc"].values[0, 0] == 0 and out["NEE_fmeth"].values[0, 0] == "measured"
    np.testing.assert_array_equal(out["NEE_f"].values[0, :300], truth[:300])  # measured values kept


def test_gaps_at_start_and_end_and_long_gaps():
    ds = series(days=200)
    ds["NEE"][0, :100] = np.nan
    ds["NEE"][0, -100:] = np.nan
    ds["NEE"][0, 48 * 60 : 48 * 135] = np.nan  # 75-day gap
    out = gapfill(ds, "NEE")
    f = out["NEE_f"].values[0]
    assert np.isfinite(f[:100]).all() and np.isfinite(f[-100:]).all()
    assert np.isnan(f[48 * 60 : 48 * 135]).all() and np.isnan(out["NEE_fqc"].values[0, 48 * 70])
    assert out["NEE_fmeth"].values[0, 48 * 70] == "unfilled"
    good = np.ones(1000, bool)
    good[:700] = False  # a leading gap of 70 days (10 steps a day) is longer than 60: left unfilled, as hesseflux
    assert long_gap_mask(good, n_per_day=10, long_gap_days=60)[:700].all()
    good[:] = True
    good[:500] = False  # 50 days: filled
    assert not long_gap_mask(good, n_per_day=10, long_gap_days=60).any()


def test_driver_gaps_are_filled_first_as_reddyproc():
    ds = series()
    ds["SW_IN"][0, 290:310] = np.nan
    ds["NEE"][0, 300] = np.nan
    out = gapfill(ds, "NEE")
    assert "SW_IN_f" in out and np.isfinite(out["SW_IN_f"].values[0, 290:310]).all()
    assert out["NEE_fmeth"].values[0, 300] == "mds_all_drivers"
    without = gapfill(ds, "NEE", fill_drivers=False)
    assert without["NEE_fmeth"].values[0, 300] == "mds_same_hour"  # no driver information at the gap


def test_mdv_is_the_same_time_of_day_mean():
    ds = series(days=30)
    truth = ds["NEE"].values[0].copy()
    j = 48 * 15 + 20
    ds["NEE"][0, j] = np.nan
    ds["NEE"][0, j + 48] = np.nan  # a missing neighbour day is skipped
    out = gapfill(ds, "NEE", method="mdv")
    neighbours = [j + 48 * d for d in range(-7, 8) if d not in (0, 1)]
    assert out["NEE_f"].values[0, j] == pytest.approx(truth[neighbours].mean())
    assert out["NEE_fsd"].values[0, j] == pytest.approx(truth[neighbours].std(ddof=1))
    assert out["NEE_fnum"].values[0, j] == 13 and out["NEE_fqc"].values[0, j] == 1
    assert out["NEE_fmeth"].values[0, j] == "mdv"
    ds["NEE"][0, : 48 * 20] = np.nan  # a 20-day leading gap: the window widens, lower quality
    wide = gapfill(ds, "NEE", method="mdv")
    assert wide["NEE_fqc"].values[0, 0] == 3 and np.isfinite(wide["NEE_f"].values[0, 0])


def daily_years(years=4, seed=0):
    """Daily site dataset over several years; LE depends on SW_IN and TA."""
    time = pd.date_range("2018-01-01 12:00", periods=365 * years, freq="D")
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * time.day_of_year.to_numpy() / 365
    sw = 180 - 120 * np.cos(phase) + rng.normal(0, 30, len(time))
    ta = 8 - 10 * np.cos(phase) + rng.normal(0, 2, len(time))
    le = 0.35 * sw + 2 * ta + rng.normal(0, 5, len(time))
    data = {"LE": (le, "W m-2"), "SW_IN": (sw, "W m-2"), "TA": (ta, "degC")}
    return xr.Dataset(
        {k: (("site", "time"), v[None], {"units": u}) for k, (v, u) in data.items()},
        coords={"site": ["XX-Syn"], "time": time},
    )


def test_ml_fills_a_whole_missing_year():
    ds = daily_years()
    truth = ds["LE"].values[0].copy()
    year = ds["time"].dt.year.values == 2020
    ds["LE"][0, year] = np.nan
    out = gapfill(ds, "LE", method="ml", ml_options={"members": 2, "params": {"n_estimators": 60}})
    filled = out["LE_f"].values[0]
    assert np.isfinite(filled[year]).all()
    assert ux.metrics.nse(filled[year], truth[year]) > 0.8
    assert (out["LE_fmeth"].values[0][year] == "ml").all() and (out["LE_fqc"].values[0][year] == 1).all()
    assert (out["LE_fsd"].values[0][year] >= 0).all()
    np.testing.assert_array_equal(filled[~year], truth[~year])


def test_ml_training_years():
    from uflux_xr.gapfill.ml import training_years

    years = np.array([2015, 2016, 2017, 2019, 2020])
    assert training_years(2018, years, "all", 2) == [2015, 2016, 2017, 2019, 2020]
    assert training_years(2018, years, "nearest", 2) == [2017, 2019]
    assert training_years(2016, years, "nearest", 2) == [2015, 2016, 2017]  # its own other measurements too
    assert training_years(2018, years, [2015, 2020], 2) == [2015, 2020]
    with pytest.raises(ValueError, match=r"training years \[2010\] have no data"):
        training_years(2018, years, [2010], 2)


def evaporating_site(days=40, kc=0.8, seed=0):
    """Half-hourly site whose LE is ``kc`` × the FAO-56 reference flux of its drivers, plus noise."""
    from uflux_xr.gapfill import fao_pm

    time = pd.date_range("2021-06-01 00:15", periods=48 * days, freq="30min")
    hour = (time.hour + time.minute / 60).to_numpy()
    rng = np.random.default_rng(seed)
    cloud = np.repeat(rng.uniform(0.4, 1.0, days), 48)
    sw = np.clip(850 * np.sin(np.pi * (hour - 6) / 12), 0, None) * cloud
    ta = 16 + 6 * np.sin(np.pi * (hour - 9) / 12) + np.repeat(rng.normal(0, 2, days), 48)
    vpd = np.clip(8 + 6 * np.sin(np.pi * (hour - 9) / 12), 0.5, None)
    lw = np.full(time.size, 320.0)
    le0 = fao_pm.reference_latent_heat(fao_pm.net_radiation(sw, lw, ta), ta, vpd, 101.325, 2.0, 1800.0)
    le = kc * le0 + rng.normal(0, 5, time.size)
    data = {"LE": (le, "W m-2"), "SW_IN": (sw, "W m-2"), "LW_IN": (lw, "W m-2"), "TA": (ta, "degC"),
            "VPD": (vpd, "hPa")}  # fmt: skip
    ds = xr.Dataset(
        {k: (("site", "time"), v[None], {"units": u}) for k, (v, u) in data.items()},
        coords={"site": ["XX-Syn"], "time": time},
    )
    return ds, kc * le0


def test_fao_pm_fills_with_the_observed_crop_coefficient():
    ds, expected = evaporating_site()
    gap = slice(48 * 20, 48 * 22)
    ds["LE"][0, gap] = np.nan
    ds["TA"][0, 48 * 21 + 30] = np.nan  # a driver gap is filled first, not left as a hole
    out = gapfill(ds, "LE", method="fao_pm")
    filled = out["LE_f"].values[0, gap]
    assert np.isfinite(filled).all()
    assert np.abs(filled - expected[gap]).max() < 10.0  # noise SD 5 W m-2 enters Kc only through ratios
    assert (out["LE_fqc"].values[0, gap] == 1).all() and (out["LE_fmeth"].values[0, gap] == "fao_pm").all()
    assert out["LE_fsd"].values[0, gap] == pytest.approx(5.0, rel=0.2)  # residual SD of the fit
    daily = ds.resample(time="1D").mean().assign_coords(time=lambda d: d["time"] + pd.Timedelta(hours=12))
    et = (ux.variables.le_to_et(daily["LE"], daily["TA"])).assign_attrs(units="kg m-2 d-1")
    out_et = gapfill(daily.assign(ET=et), "ET", method="fao_pm")
    assert np.isfinite(out_et["ET_f"].values).all()
    with pytest.raises(ValueError, match=r"FAO-PM fills latent heat LE .* 'SW_IN' is in 'W m-2'"):
        gapfill(ds, "SW_IN", method="fao_pm")
    with pytest.raises(KeyError, match=r"FAO-PM needs \['LW_IN'\]"):
        gapfill(ds.drop_vars("LW_IN"), "LE", method="fao_pm")
    no_ta = ds.copy()
    no_ta["TA"] = no_ta["TA"] * np.nan
    with pytest.raises(ValueError, match=r"drivers \['TA'\] are all missing at site 'XX-Syn'"):
        gapfill(no_ta, "LE", method="fao_pm")


def test_kalman_beats_its_inputs_on_short_gaps():
    ds, _ = evaporating_site(days=60, seed=2)
    rng = np.random.default_rng(3)
    anomaly = np.zeros(ds.sizes["time"])
    for t in range(1, anomaly.size):  # persistent departures from Kc x ET0 (e.g. wet canopy, advection)
        anomaly[t] = 0.97 * anomaly[t - 1] + rng.normal(0, 4)
    ds["LE"] = ds["LE"] + anomaly
    truth = ds["LE"].values[0].copy()
    holes = np.zeros(truth.size, bool)
    for start in range(200, truth.size - 10, 97):
        holes[start : start + 4] = True  # two-hour gaps
    ds["LE"][0, holes] = np.nan
    errors = {}
    for method in ("kalman", "fao_pm", "mdv"):
        out = gapfill(ds, "LE", method=method)
        errors[method] = ux.metrics.rmse(out["LE_f"].values[0, holes], truth[holes])
    assert errors["kalman"] < 0.8 * min(errors["fao_pm"], errors["mdv"])
    out = gapfill(ds, "LE", method="kalman")
    assert (out["LE_fmeth"].values[0, holes] == "kalman").all() and (out["LE_fqc"].values[0, holes] == 1).all()
    assert (out["LE_fsd"].values[0, holes] > 0).all() and (out["LE_fnum"].values[0, holes] == 2).all()


def test_svr_fills_a_whole_missing_year():
    ds = daily_years()
    truth = ds["LE"].values[0].copy()
    year = ds["time"].dt.year.values == 2019
    ds["LE"][0, year] = np.nan
    out = gapfill(ds, "LE", method="svr")
    assert ux.metrics.nse(out["LE_f"].values[0][year], truth[year]) > 0.8
    assert (out["LE_fmeth"].values[0][year] == "svr").all() and np.isnan(out["LE_fsd"].values[0][year]).all()


@pytest.mark.parametrize("method", ["mds", "mdv", "fao_pm", "kalman", "ml", "svr"])
def test_every_method_fills_gaps_at_the_start_and_the_end(method):
    ds, _ = evaporating_site(days=30)
    ds["LE"][0, :30] = np.nan
    ds["LE"][0, -30:] = np.nan
    options = {"ml_options": {"members": 2, "params": {"n_estimators": 30}}} if method == "ml" else {}
    out = gapfill(ds, "LE", method=method, **options)
    assert np.isfinite(out["LE_f"].values).all()
    assert (out["LE_fmeth"].values[0, :30] != "measured").all() and (out["LE_fqc"].values[0, -30:] > 0).all()


def test_artificial_gap_benchmark_is_reproducible_and_scores_each_method():
    from uflux_xr.gapfill import artificial_gap_benchmark

    ds = series(days=30)
    options = {"ml": {"ml_options": {"members": 2, "params": {"n_estimators": 30}}}}
    table = artificial_gap_benchmark(
        ds, "NEE", gap_days=(1, 3), methods=("mds", "mdv", "ml"), n_gaps=2, seed=4, method_options=options
    )
    assert list(table["method"]) == ["mds", "mdv", "ml"] * 2 and list(table["gap_days"]) == [1] * 3 + [3] * 3
    assert (table["n"] == table["gaps"] * 48 * table["gap_days"]).all()  # every removed value was measured
    assert (table["filled_share"] == 1.0).all()
    mds = table[(table["method"] == "mds") & (table["gap_days"] == 1)].iloc[0]
    assert mds["nse"] > 0.9  # NEE depends on SW_IN only: MDS finds it
    again = artificial_gap_benchmark(
        ds, "NEE", gap_days=(1, 3), methods=("mds", "mdv", "ml"), n_gaps=2, seed=4, method_options=options
    )
    pd.testing.assert_frame_equal(table, again)


def test_errors():
    ds = series(days=3)
    with pytest.raises(ValueError, match="unknown gap-filling method 'kriging'"):
        gapfill(ds, "NEE", method="kriging")
    with pytest.raises(KeyError, match="needs the driver 'VPD'"):
        gapfill(ds.drop_vars("VPD"), "NEE")
    with pytest.raises(ValueError, match="driver 'TA' is in 'K'"):
        gapfill(ds.assign(TA=(ds["TA"] + 273.15).assign_attrs(units="K")), "NEE")
    empty = ds.copy()
    for v in ("NEE", "SW_IN", "TA", "VPD"):
        empty[v] = empty[v] * np.nan
    with pytest.raises(ValueError, match="NEE is all missing at site 'XX-Syn'"):
        gapfill(empty, "NEE")
    no_drivers = ds.copy()
    for v in ("SW_IN", "TA", "VPD"):
        no_drivers[v] = no_drivers[v] * np.nan
    with pytest.raises(ValueError, match="drivers SW_IN, TA and VPD are all missing at site 'XX-Syn'"):
        gapfill(no_drivers, "NEE")


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")
@pytest.mark.parametrize("var", ["NEE", "LE", "H"])
def test_mds_matches_hesseflux_on_de_tha(var):
    ds = ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv")
    ref = pd.read_csv(SHARED_DATA / "DE-Tha_1998_mds_reference_hesseflux.csv")
    out = gapfill(ds, var, fill_drivers=False)  # hesseflux does not fill drivers
    gap = ds[var].isnull().values[0]
    values_agree = np.abs(out[f"{var}_f"].values[0][gap] - ref[f"{var}_f"].to_numpy()[gap]) <= 0.01
    flags_agree = out[f"{var}_fqc"].values[0][gap] == ref[f"{var}_fqc"].to_numpy()[gap]
    assert gap.sum() > 2000
    assert (values_agree & flags_agree).mean() >= 0.99
    assert flags_agree.mean() == 1.0
