"""MDS gap filling: known answers on synthetic series and parity with hesseflux on DE-Tha 1998."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.core.qc import long_runs
from uflux_xr.core.variables import le_to_et
from uflux_xr.site.gapfill import gapfill
from uflux_xr.site.gapfill.mds_hesseflux import long_gap_mask

from .conftest import REPO, SHARED_DATA


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


@pytest.mark.parametrize(("convention", "half"), [("reddyproc", 336), ("hesseflux", 335)])
def test_fill_is_the_mean_of_similar_conditions(convention, half):
    # REddyProc's window spans ±7 days of records with both ends (sFillLUT: Gap.i ± WinDays.i·DTS),
    # hesseflux's one record fewer on each side
    ds = series()
    truth = ds["NEE"].values[0].copy()
    ds["NEE"][0, 300] = np.nan
    out = gapfill(ds, "NEE", convention=convention)
    j = 300
    sw, ta, vpd = (ds[v].values[0] for v in ("SW_IN", "TA", "VPD"))
    tol = max(20, min(sw[j], 50))
    window = np.arange(max(j - half, 0), j + half + 1)
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


@pytest.mark.parametrize("convention", ["reddyproc", "hesseflux"])
def test_gaps_at_start_and_end_and_long_gaps(convention):
    ds = series(days=200)
    ds["NEE"][0, :100] = np.nan
    ds["NEE"][0, -100:] = np.nan
    ds["NEE"][0, 48 * 60 : 48 * 135] = np.nan  # 75-day gap
    out = gapfill(ds, "NEE", convention=convention)
    f = out["NEE_f"].values[0]
    assert np.isfinite(f[:100]).all() and np.isfinite(f[-100:]).all()
    assert np.isnan(f[48 * 60 : 48 * 135]).all() and np.isnan(out["NEE_fqc"].values[0, 48 * 70])
    assert out["NEE_fmeth"].values[0, 48 * 70] == "unfilled"


def test_long_gap_rules():
    good = np.ones(1000, bool)
    good[:700] = False  # a leading gap of 70 days (10 steps a day) is longer than 60: left unfilled
    assert long_gap_mask(good, n_per_day=10, long_gap_days=60)[:700].all()
    # the MPI-BGC online tool's rule: the 60 days next to the first measurement are filled
    near = long_gap_mask(good, n_per_day=10, long_gap_days=60, fill_near_edges=True)
    assert near[:101].all() and not near[101:].any()  # steps 101..699 are < 600 steps from step 700
    good[:] = True
    good[:500] = False  # 50 days: filled
    assert not long_gap_mask(good, n_per_day=10, long_gap_days=60).any()
    good[:] = True
    good[200:801] = False  # an inner gap of 60.1 days stays whole under both rules
    assert long_gap_mask(good, 10, 60, fill_near_edges=True)[200:801].all()


def test_drivers_are_read_as_measured_unless_asked():
    ds = series()
    ds["SW_IN"][0, 290:310] = np.nan
    ds["NEE"][0, 300] = np.nan
    out = gapfill(ds, "NEE")  # REddyProc's look-up reads the drivers as measured
    assert "SW_IN_f" not in out and out["NEE_fmeth"].values[0, 300] == "mds_same_hour"
    filled = gapfill(ds, "NEE", fill_drivers=True)
    assert "SW_IN_f" in filled and np.isfinite(filled["SW_IN_f"].values[0, 290:310]).all()
    assert filled["NEE_fmeth"].values[0, 300] == "mds_all_drivers"


def test_options_are_checked():
    ds = series(days=3)
    with pytest.raises(TypeError, match=r"'mds' has no option\(s\) 'window'"):
        gapfill(ds, "NEE", window=3)
    with pytest.raises(ValueError, match=r"MDSOptions.convention must be one of \['reddyproc', 'hesseflux'\]"):
        gapfill(ds, "NEE", convention="onlinetool")


def de_tha():
    return ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv")


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")
def test_reddyproc_testthat_expectations_on_de_tha():
    # REddyProc tests/testthat/test_gapfilling.R, "sMDSGapFill" and "sMDSGapFill Vekuri23": Example_DETha98
    # with long runs of NEE removed (filterLongRuns), its first 90 days, QF = 1,0,1,0,1,0,0,0,0,0 recycled
    # over the year, Tair filled from the records with QF 0; hourly: every second record (DTS 24).
    ds = de_tha().isel(site=0)
    ds["NEE"] = ds["NEE"].where(~long_runs(ds["NEE"].values))
    qf = np.resize([1, 0, 1, 0, 1, 0, 0, 0, 0, 0], ds.sizes["time"])
    ds["TA_QC"] = ("time", qf.astype(float))
    first = ds.isel(time=slice(0, 48 * 90))
    nee = gapfill(first, "NEE")
    assert nee["NEE_fnum"].values[0] == 54  # 53 with the PV-Wave windows
    assert nee["NEE_f"].values[2] == pytest.approx(1.006569, abs=1e-6)
    assert gapfill(first, "TA", good_qc=0)["TA_fnum"].values[0] == 173  # TA is not among its own conditions
    hourly = ds.isel(time=slice(1, None, 2)).isel(time=slice(0, 24 * 90))
    assert gapfill(hourly, "TA", good_qc=0)["TA_fnum"].values[0] == 124
    vekuri = gapfill(first, "NEE", statistics="vekuri23")
    assert vekuri["NEE_f"].values[18] == pytest.approx(-1.857619, abs=1e-6)
    assert vekuri["NEE_fnum"].values[0] == 54
    assert gapfill(first, "TA", good_qc=0, statistics="vekuri23")["TA_fnum"].values[0] == 173


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")
def test_reddyproc_june_frame_on_de_tha():
    # REddyProc's regression frame (inst/tests/test_partGL.R, dsNEE): NEE filled over the whole year
    ref = pd.read_csv(REPO / "tests" / "data" / "reddyproc_de_tha_june1998_nee_fills.csv", comment="#")
    out = gapfill(de_tha(), "NEE", fill_all=False).isel(site=0).sel(time=pd.DatetimeIndex(ref["time"]))
    assert len(ref) == 157 and out["NEE"].isnull().all()
    np.testing.assert_allclose(out["NEE_f"].values, ref["NEE_f"].to_numpy(), rtol=0, atol=1e-6)  # 6-15 digits in R
    np.testing.assert_array_equal(out["NEE_fqc"].values, ref["NEE_fqc"].to_numpy())
    assert (ref["NEE_fqc"] == 1).sum() == 144 and (ref["NEE_fqc"] == 2).sum() == 13


def test_long_runs_are_found_across_missing_values():
    # REddyProc test_gapfilling.R "filterLongRunsInVector" with na.rm = TRUE
    x = np.repeat(np.arange(6.0, 11.0), np.arange(1, 6))
    x[[1, 12]] = np.nan
    x[14] = 11.0
    flagged = long_runs(x, 2)
    assert list(np.flatnonzero(~flagged & np.isfinite(x))) == [0, 2, 14]  # R's 1, 3, 15
    assert not long_runs(np.arange(10.0), 2).any()


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
    out = gapfill(ds, "LE", method="ml", members=2, params={"n_estimators": 60})
    filled = out["LE_f"].values[0]
    assert np.isfinite(filled[year]).all()
    assert ux.metrics.nse(filled[year], truth[year]) > 0.8
    assert (out["LE_fmeth"].values[0][year] == "ml").all() and (out["LE_fqc"].values[0][year] == 1).all()
    assert (out["LE_fsd"].values[0][year] >= 0).all()
    np.testing.assert_array_equal(filled[~year], truth[~year])


def test_ml_training_years():
    from uflux_xr.site.gapfill.ml import training_years

    years = np.array([2015, 2016, 2017, 2019, 2020])
    assert training_years(2018, years, "all", 2) == [2015, 2016, 2017, 2019, 2020]
    assert training_years(2018, years, "nearest", 2) == [2017, 2019]
    assert training_years(2016, years, "nearest", 2) == [2015, 2016, 2017]  # its own other measurements too
    assert training_years(2018, years, [2015, 2020], 2) == [2015, 2020]
    with pytest.raises(ValueError, match=r"training years \[2010\] have no data"):
        training_years(2018, years, [2010], 2)


def evaporating_site(days=40, kc=0.8, seed=0):
    """Half-hourly site whose LE is ``kc`` × the FAO-56 reference flux of its drivers, plus noise."""
    from uflux_xr.site.gapfill import fao_pm

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
    et = (le_to_et(daily["LE"], daily["TA"])).assign_attrs(units="kg m-2 d-1")
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
    options = {"members": 2, "params": {"n_estimators": 30}} if method == "ml" else {}
    out = gapfill(ds, "LE", method=method, **options)
    assert np.isfinite(out["LE_f"].values).all()
    assert (out["LE_fmeth"].values[0, :30] != "measured").all() and (out["LE_fqc"].values[0, -30:] > 0).all()


def test_artificial_gap_benchmark_is_reproducible_and_scores_each_method():
    from uflux_xr.site.gapfill import artificial_gap_benchmark

    ds = series(days=30)
    options = {"ml": {"members": 2, "params": {"n_estimators": 30}}}
    table = artificial_gap_benchmark(
        ds, "NEE", gap_days=(1, 3), methods=("mds", "mdv", "ml"), n_gaps=2, seed=4, method_options=options
    )
    assert list(table["method"]) == ["mds", "mdv", "ml"] * 2 and list(table["gap_days"]) == [1] * 3 + [3] * 3
    assert (table["n"] == table["gaps"] * 48 * table["gap_days"]).all()  # every removed value was measured
    assert (table["filled_share"] == 1.0).all()
    mds = table[(table["method"] == "mds") & (table["gap_days"] == 1)].iloc[0]
    assert mds["nse"] > 0.9  # NEE depends on SW_IN only: MDS finds it
    # The measured records' noise (N(0, 0.1)) in the gaps, from pairs 24 h apart, one figure per gap length;
    # 2 gaps of 1 day give 96 pairs, an SD of about 7 % on the estimate.
    assert table["noise_sd"].between(0.07, 0.13).all() and (table["noise_pairs"] > 0).all()
    again = artificial_gap_benchmark(
        ds, "NEE", gap_days=(1, 3), methods=("mds", "mdv", "ml"), n_gaps=2, seed=4, method_options=options
    )
    pd.testing.assert_frame_equal(table, again)


def test_paired_random_error_recovers_the_noise_of_repeating_days():
    from uflux_xr.site.random_error import paired_random_error

    # Every day repeats the same NEE(SW_IN) plus N(0, 0.1): pairs 24 h apart differ by noise alone,
    # so SD(difference) / sqrt(2) is 0.1 (2,832 pairs: the estimate's own SD is about 1.3 %).
    ds = series(days=60)
    nee, drivers = ds["NEE"].values[0], {v: ds[v].values[0] for v in ("SW_IN", "TA")}
    sd, pairs = paired_random_error(nee, 48, drivers)
    assert pairs == 59 * 48
    assert sd == pytest.approx(0.1, rel=0.05)
    # A day 5 K warmer than the days around it pairs with neither of them (Hollinger & Richardson's 3 K).
    warm = drivers | {"TA": drivers["TA"] + np.where(np.arange(nee.size) // 48 == 10, 5.0, 0.0)}
    assert paired_random_error(nee, 48, warm)[1] == pairs - 2 * 48
    # Only the pairs that start in `where`, and NaN without 2 pairs.
    first_day = np.arange(nee.size) < 48
    assert paired_random_error(nee, 48, drivers, where=first_day)[1] == 48
    assert np.isnan(paired_random_error(nee[:49], 48)[0])


def test_errors():
    ds = series(days=3)
    with pytest.raises(ValueError, match="unknown gap-filling method 'kriging'"):
        gapfill(ds, "NEE", method="kriging")
    with pytest.raises(KeyError, match="needs the driver 'VPD'"):
        gapfill(ds.drop_vars("VPD"), "NEE")
    with pytest.raises(ux.UnitsError, match="'TA' is in 'K'"):
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
    out = gapfill(ds, var, convention="hesseflux")
    gap = ds[var].isnull().values[0]
    values_agree = np.abs(out[f"{var}_f"].values[0][gap] - ref[f"{var}_f"].to_numpy()[gap]) <= 0.01
    flags_agree = out[f"{var}_fqc"].values[0][gap] == ref[f"{var}_fqc"].to_numpy()[gap]
    assert gap.sum() > 2000
    assert (values_agree & flags_agree).mean() >= 0.99
    assert flags_agree.mean() == 1.0
