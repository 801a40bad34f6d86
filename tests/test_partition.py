"""NEE partitioning: REddyProc's own test cases, CH-Dav against REddyProc's columns, and known answers."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.core.qc import long_runs
from uflux_xr.core.solar import potential_radiation, solar_elevation
from uflux_xr.site.partition.nighttime import NightTimeOptions, e0_short_term, lloyd_taylor

from .conftest import SHARED_DATA

needs_shared = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")

KELVIN = 273.15


# --- potential radiation -------------------------------------------------------------------------


def test_solar_noon_elevation_and_polar_night():
    # At solar noon the elevation is 90 - |lat - declination|; the declination series gives
    # +23.44 deg at the June solstice (DoY 172) within its 0.05 deg accuracy.
    hours = np.arange(10.0, 14.0, 1 / 60)
    elev = np.rad2deg(solar_elevation(172, hours, 51.0, 15.0, 1.0))  # lon 15 E, UTC+1: clock = mean solar time
    assert elev.max() == pytest.approx(90 - (51.0 - 23.44), abs=0.1)
    # solar noon moves by the equation of time only: at DoY 172 it is within 3 minutes of 12:00
    assert abs(hours[elev.argmax()] - 12.0) < 3 / 60
    # 7 degrees east in UTC+1: the sun culminates 32 minutes (8 x 4 min) after 12:00
    elev7 = np.rad2deg(solar_elevation(172, hours, 51.0, 7.0, 1.0))
    assert hours[elev7.argmax()] - hours[elev.argmax()] == pytest.approx(32 / 60, abs=1.5 / 60)
    # polar night at 80 N around the December solstice, polar day in June
    winter = pd.date_range("2020-12-15", periods=48 * 10, freq="30min")
    assert (potential_radiation(winter, 80.0, 10.0, 1.0) == 0).all()
    summer = pd.date_range("2020-06-15", periods=48 * 10, freq="30min")
    assert (potential_radiation(summer, 80.0, 10.0, 1.0) > 0).all()


def test_potential_radiation_needs_a_position():
    with pytest.raises(ValueError, match="site position"):
        potential_radiation(pd.date_range("2020-01-01", periods=3, freq="30min"), np.nan, 10.0, 1.0)


# --- REddyProc's partitioning tests (tests/testthat/test_sEddyProc_Partitioning.R) ---------------


@pytest.fixture(scope="module")
def eddy_hour():
    """REddyProc's ``EddyHour.C``: DETha98 after filterLongRuns(NEE), every second record, 90 days, DTS 24.

    REddyProc stamps a record at the middle of its period: end - 30 min for hourly records.
    """
    ds = ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv").isel(site=0)
    ds["NEE"] = ds["NEE"].where(~long_runs(ds["NEE"].values))
    hourly = ds.isel(time=slice(1, None, 2)).isel(time=slice(0, 24 * 90)).drop_vars("NEE_QC")
    hourly = hourly.assign_coords(time=hourly["time"].values - np.timedelta64(15, "m"))
    return ux.gapfill(ux.gapfill(hourly, "TA"), "NEE")


@needs_shared
def test_reddyproc_e0_standard(eddy_hour):
    # "sMRFluxPartition Standard": LatDeg 51, LongDeg 7, TimeZoneHour 1 -> E_0 133.7 (REddyProc
    # allows 10 % relative); we hold it to its printed precision
    out = ux.partition(eddy_hour, lat=51.0, lon=7.0, utc_offset=1)
    assert float(out["E0_NT"]) == pytest.approx(133.7, abs=0.05)
    assert np.isfinite(out["GPP_NT"]).all() and np.isfinite(out["RECO_NT"]).all()
    np.testing.assert_allclose(out["GPP_NT"], out["RECO_NT"] - out["NEE_f"], rtol=0, atol=1e-12)


@needs_shared
def test_reddyproc_fixed_e0_and_temperature_range(eddy_hour):
    # "Using fixed E0": E_0 120 is used as given
    fixed = ux.partition(eddy_hour, lat=51.0, lon=13.6, utc_offset=1, fixed_e0=120.0)
    assert float(fixed["E0_NT"]) == 120.0
    # "Tuning the temperature range": TempRange 3 -> 138 (REddyProc: 1 % relative)
    tuned = ux.partition(eddy_hour, lat=51.0, lon=13.6, utc_offset=1, temp_range=3.0)
    assert float(tuned["E0_NT"]) == pytest.approx(138.0, rel=1e-2)


# The temperatures of REddyProc's "fRegrE0fromShortTerm" test [degC].
TEMPS = np.array(
    [4.4, 4.7, 4.2, 4.8, 4.6, 4.1, 4.3, 4.8, 4.2, 4.9, 5, 4.9, 4.7, 4.8, 5.2, 5.2, 5.4, 6, 6.4, 6.8, 6.1, 5.7, 5.5]
    + [4.6, 4.6, 4.2, 4.4, 3.2, 2, 1.5, 1.4, 1, 1.1, 2.1, 2.8, 3.3, 3.3, 3.3, 3.3, 3.1, 3.1, 3.2, 3, 2, 2.2, 2.1]
    + [1.9, 2, 2.5, 3.3, 3.5, 4.1, 4.6, 5.1, 6.3, 7.8, 8.3, 8.6, 9.7, 9.8, 9.7, 10, 9.4, 8.9, 8.9, 9, 4.1, 4.7]
    + [5.3, 5.5, 6, 6.3, 6.8, 6.3, 6.4, 6.9, 7, 7.1, 7.5, 7.8, 8.2, 8.5, 8, 8.1, 7.7, 8, 8, 8, 7.8, 7.8, 8, 8.2]
    + [8.3, 8, 8.3, 8.4, 8.4, 8.2, 8.1, 8.2, 8.4, 8.4, 8.5, 8.9, 9.2, 9.2, 9.2, 9.2, 9.2, 9.2, 9.1, 9.3, 9.4]
    + [9.1, 9.1, 9.1, 9, 8.8, 8.6, 8.4, 8.3, 8, 7.5, 7.8, 7.4, 7.6, 8.3, 8.9, 9.8, 10.4, 11, 11.3, 11, 9.7]
    + [7.8, 7.3, 7.4, 7.3, 7.6, 7.7, 7.7, 6.9, 7.1, 7.5, 7.1, 7.2, 8.2, 7.6, 7.6, 7.9, 9.4, 11.4, 13.4, 14.3]
    + [15, 15.1, 13.4, 11.6, 10.4, 10.1, 10.4, 10.1, 9.8, 10.4, 11.3, 11.6, 12.5, 11.9, 11, 10.1, 9.4, 8.7]
    + [8.8, 8.7, 10.1, 12.1, 13.6, 14.7, 11.9, 11.4, 9.8]
)


@pytest.mark.parametrize("seed", range(5))
def test_reddyproc_e0_from_short_term_synthetic(seed):
    # "fRegrE0fromShortTerm": the temperatures three times with E0 238, 320 and 296 K (R_ref 10 at
    # 10 degC) plus N(0, 1) noise, 5 records a day -> E0 300 +- 15 (R's random stream differs from
    # numpy's, so five seeds are asked instead of R's one).
    rng = np.random.default_rng(seed)
    flux = np.concatenate(
        [lloyd_taylor(10.0, e0, TEMPS + KELVIN, KELVIN + 10) + rng.normal(size=TEMPS.size) for e0 in (238, 320, 296)]
    )
    days = np.repeat(np.arange(1, 301), 5)[: flux.size]
    e0, table = e0_short_term(flux, np.tile(TEMPS, 3), days, NightTimeOptions())
    assert e0 == pytest.approx(300, abs=15)
    assert table["valid"].sum() >= 3


# --- known answers -------------------------------------------------------------------------------

E0_TRUE = 250.0


def synthetic_site(days=365, seed=0, lat=50.0, lon=10.0, start="2021-01-01"):
    """Half-hourly site with known respiration: RECO = Lloyd-Taylor(R_ref(t), 250 K, TA), GPP a light response."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(start, periods=48 * days, freq="30min") + pd.Timedelta(minutes=15)
    doy = time.day_of_year.to_numpy()
    hour = time.hour.to_numpy() + time.minute.to_numpy() / 60
    pot = potential_radiation(time, lat, lon, 1.0)
    sw_in = pot * 0.75 * rng.uniform(0.3, 1.0, size=time.size)
    ta = (
        8
        - 10 * np.cos(2 * np.pi * (doy - 15) / 365)
        + 4 * np.sin(2 * np.pi * (hour - 9) / 24)
        + rng.normal(0, 1, time.size)
    )
    vpd = np.clip(2 + 0.6 * ta + 3 * np.sin(2 * np.pi * (hour - 10) / 24), 0.1, None)
    rref = 2.0 + 1.0 * np.sin(2 * np.pi * (doy - 100) / 365)
    reco = lloyd_taylor(rref, E0_TRUE, ta + KELVIN)
    # Lasslop's model: rectangular light response (alpha 0.08, a seasonal beta), limited above 10 hPa VPD (k 0.03)
    beta = (17 - 8 * np.cos(2 * np.pi * (doy - 15) / 365)) * np.where(vpd > 10, np.exp(-0.03 * (vpd - 10)), 1.0)
    gpp = 0.08 * beta * sw_in / (0.08 * sw_in + beta)
    nee = reco - gpp + rng.normal(0, 0.4, time.size)
    ds = xr.Dataset(
        {
            "NEE": ("time", nee, {"units": "umol m-2 s-1"}),
            "TA": ("time", ta, {"units": "degC"}),
            "SW_IN": ("time", sw_in, {"units": "W m-2"}),
            "VPD": ("time", vpd, {"units": "hPa"}),
            "RECO_TRUE": ("time", reco, {"units": "umol m-2 s-1"}),
            "GPP_TRUE": ("time", gpp, {"units": "umol m-2 s-1"}),
        },
        coords={"time": time, "lat": lat, "lon": lon, "utc_offset": 1.0},
    )
    return ds


def filled(ds):
    """The synthetic record as a gap-filled one: every value measured (quality 0), SD the noise's 0.4."""
    return ds.assign(NEE_f=ds["NEE"], NEE_fqc=xr.zeros_like(ds["NEE"]), NEE_fsd=xr.full_like(ds["NEE"], 0.4))


def test_nighttime_recovers_known_respiration():
    ds = filled(synthetic_site())
    out = ux.partition(ds)  # position and UTC offset from the coordinates
    assert float(out["E0_NT"]) == pytest.approx(E0_TRUE, rel=0.1)
    annual = {k: float(out[k].mean()) for k in ("GPP_NT", "RECO_NT", "GPP_TRUE", "RECO_TRUE")}
    assert annual["RECO_NT"] == pytest.approx(annual["RECO_TRUE"], rel=0.03)
    assert annual["GPP_NT"] == pytest.approx(annual["GPP_TRUE"], rel=0.03)
    assert out["RECO_NT"].attrs["units"] == "umol m-2 s-1" and out["E0_NT"].attrs["units"] == "K"


def test_nighttime_u_star_scenario_suffix_and_sites():
    one = filled(synthetic_site(days=120))
    one = one.assign(NEE_U50_f=one["NEE_f"], NEE_U50_fqc=one["NEE_fqc"])
    two = xr.concat([one, one.assign(NEE_U50_f=one["NEE_U50_f"] * 1.1)], dim=pd.Index(["A", "B"], name="site"))
    out = ux.partition(two, nee="NEE_U50")
    assert {"GPP_NT_U50", "RECO_NT_U50", "E0_NT_U50", "GPP_NT_U50_fqc"} <= set(out.data_vars)
    assert out["GPP_NT_U50"].dims == ("site", "time")
    # scaling NEE scales R_ref, not E0
    e0 = out["E0_NT_U50"].values
    assert e0[0] == pytest.approx(e0[1], abs=1.0)


def test_nighttime_without_position_names_what_is_missing():
    ds = filled(synthetic_site(days=60)).drop_vars("utc_offset")
    with pytest.raises(ux.PartitioningError, match="utc_offset"):
        ux.partition(ds)
    assert "GPP_NT" in ux.partition(ds, utc_offset=1.0)


def test_nighttime_needs_filled_nee():
    ds = synthetic_site(days=60)
    with pytest.raises(ux.PartitioningError, match=r"NEE_f.*gapfill"):
        ux.partition(ds)


def test_nighttime_too_few_night_records():
    ds = filled(synthetic_site(days=60))
    sparse = ds.assign(
        NEE_fqc=ds["NEE_fqc"].copy(data=np.where(np.arange(ds.sizes["time"]) % 48 == 0, 0, 1))
    )  # one measured record a day
    with pytest.raises(ux.PartitioningError, match="valid.*temp_range=3"):
        ux.partition(sparse)


def test_polar_day_and_polar_night():
    # 78 N (Svalbard): May-July has no record with potential radiation 0, so no night to learn from
    summer = filled(synthetic_site(days=60, lat=78.0, start="2021-05-15"))
    with pytest.raises(ux.PartitioningError, match="0 night records"):
        ux.partition(summer)
    # polar night: every record is night; respiration is all of NEE, GPP is the noise around zero
    winter = filled(synthetic_site(days=60, lat=78.0, start="2021-11-10"))
    out = ux.partition(winter, temp_range=3.0)
    assert abs(float(out["GPP_NT"].mean())) < 0.1


def test_units_are_checked():
    ds = filled(synthetic_site(days=60))
    ds["TA"].attrs["units"] = "K"
    with pytest.raises(ValueError, match="TA.*degC"):
        ux.partition(ds)


def test_daytime_recovers_known_fluxes():
    ds = filled(synthetic_site())
    out = ux.partition(ds, "daytime", n_boot=0)
    mean = {k: float(out[k].mean()) for k in ("GPP_DT", "RECO_DT", "GPP_TRUE", "RECO_TRUE")}
    assert mean["GPP_DT"] == pytest.approx(mean["GPP_TRUE"], rel=0.05)
    assert mean["RECO_DT"] == pytest.approx(mean["RECO_TRUE"], rel=0.10)
    daily = out[["GPP_DT", "GPP_TRUE"]].reset_coords(drop=True).to_dataframe().resample("D").mean()
    assert np.corrcoef(daily["GPP_DT"], daily["GPP_TRUE"])[0, 1] ** 2 > 0.95
    assert (out["GPP_DT_SD"] >= 0).all() and set(np.unique(out["GPP_DT_fqc"])) <= {0.0, 1.0, 2.0}


def test_daytime_bootstrap_uncertainty():
    ds = filled(synthetic_site(days=40, start="2021-06-01"))
    out = ux.partition(ds, "daytime", n_boot=10, smooth_e0=False)
    noon = out["SW_IN"] > 300
    sd = out["GPP_DT_SD"].where(noon)
    # the parameters of 4-day windows of 40 days of a known curve: uncertain by a few percent, not zero
    assert 0 < float(sd.median()) < 0.2 * float(out["GPP_DT"].where(noon).median())


def test_daytime_without_vpd_names_it():
    ds = filled(synthetic_site(days=60, start="2021-06-01")).drop_vars("VPD")
    with pytest.raises(ux.PartitioningError, match="VPD.*neglect_vpd=True"):
        ux.partition(ds, "daytime", n_boot=0)
    assert np.isfinite(ux.partition(ds, "daytime", n_boot=0, neglect_vpd=True)["GPP_DT"]).all()


def test_daytime_missing_vpd_records_take_a_fit_without_vpd():
    ds = filled(synthetic_site(days=60, start="2021-06-01"))
    ds["VPD"] = ds["VPD"].where(np.arange(ds.sizes["time"]) % 7 != 0)  # one record in seven without VPD
    out = ux.partition(ds, "daytime", n_boot=0)
    assert np.isfinite(out["GPP_DT"]).all()
    assert "without VPD" in out.attrs["partitioning_notes_daytime"]


def test_daytime_polar_night_has_no_light_response():
    winter = filled(synthetic_site(days=60, lat=78.0, start="2021-11-10"))
    with pytest.raises(ux.PartitioningError, match="no 4-day window"):
        ux.partition(winter, "daytime", n_boot=0)


# --- CH-Dav 2013-2022 against REddyProc's columns -------------------------------------------------


@pytest.fixture(scope="module")
def chdav_chain():
    """Our chain on CH-Dav 2013-2022 from the measured records, and REddyProc's partitioned columns.

    MDS (REddyProc convention, ``fill_all`` for the NEE uncertainty as REddyProc's default) on the
    u*-filtered NEE and the measured drivers, then each partitioning on the whole ten years.
    """
    ds = ux.read_sites(SHARED_DATA / "CH-Dav_2013-2022_halfhourly.parquet").isel(site=0)
    reference = ds[["GPP", "RECO", "GPP_DT", "RECO_DT"]].reset_coords(drop=True).to_dataframe().add_suffix("_REF")
    ds = ds[["NEE", "TA_orig", "SW_IN_orig", "VPD_orig"]].rename(TA_orig="TA", SW_IN_orig="SW_IN", VPD_orig="VPD")
    for var in ("TA", "VPD", "SW_IN"):
        ds = ux.gapfill(ds, var)
    ds = ux.gapfill(ds, "NEE", fill_all=True)
    position = {"lat": 46.8153, "lon": 9.8559, "utc_offset": 1}
    # n_boot=0: the bootstrap changes the SDs and one rejection rule, not the fit (2013 with 30 samples: +1.6 %
    # against +2.4 % without); it would take 2 minutes here
    out = ux.partition(ux.partition(ds, **position), "daytime", n_boot=0, **position)
    ours = out[["GPP_NT", "RECO_NT", "GPP_DT", "RECO_DT"]].reset_coords(drop=True).to_dataframe()
    return ours.join(reference)


@needs_shared
def test_chdav_nighttime_against_reddyproc(chdav_chain):
    """Issue 12: annual night-time GPP within 5 % of REddyProc's every year, daily RECO r2 >= 0.9."""
    annual = chdav_chain.groupby(chdav_chain.index.year).mean()
    deviation = annual["GPP_NT"] / annual["GPP_REF"] - 1
    assert (deviation.abs() < 0.05).all(), deviation.round(3).to_dict()
    daily = chdav_chain.resample("D").mean()
    assert np.corrcoef(daily["RECO_NT"], daily["RECO_REF"])[0, 1] ** 2 >= 0.9


@needs_shared
def test_chdav_daytime_against_reddyproc(chdav_chain):
    """Issue 12: annual day-time GPP within 10 % of REddyProc's every year, daily r2 >= 0.85."""
    annual = chdav_chain.groupby(chdav_chain.index.year).mean()
    deviation = annual["GPP_DT"] / annual["GPP_DT_REF"] - 1
    assert (deviation.abs() < 0.10).all(), deviation.round(3).to_dict()
    daily = chdav_chain.resample("D").mean()
    assert np.corrcoef(daily["GPP_DT"], daily["GPP_DT_REF"])[0, 1] ** 2 >= 0.85


def test_fill_quality_from_the_measured_record_when_fqc_is_absent():
    ds = filled(synthetic_site(days=60))
    gappy = ds.assign(NEE=ds["NEE"].where(np.arange(ds.sizes["time"]) % 3 != 0)).drop_vars("NEE_fqc")
    out = ux.partition(gappy)
    # night records used are only the measured ones: every third record is a fill and is left out
    used = np.isfinite(out["NEE_NIGHT"].values)
    assert used.any() and not used[::3].any()
    with pytest.raises(ux.PartitioningError, match="measured from filled"):
        ux.partition(gappy.drop_vars("NEE"))


def test_lloyd_taylor_fit_equals_scipy_curve_fit():
    """The numba Levenberg-Marquardt reaches the least-squares minimum that MINPACK (scipy) reaches.

    Tolerance: MINPACK stops at xtol 1.49e-8 relative and estimates its
    Jacobian by finite differences, so parameters agree to 1e-5 and SEs to
    1e-3 relative, not to the last bit.
    """
    from scipy.optimize import curve_fit

    from uflux_xr.site.partition.nighttime import fit_lloyd_taylor

    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(10, 200))
        temp_k = 273.15 + rng.uniform(-5, 25, n)
        nee = lloyd_taylor(rng.uniform(0.5, 5), rng.uniform(80, 350), temp_k) * (1 + rng.normal(0, 0.2, n))
        params, sd, resid = fit_lloyd_taylor(nee, temp_k, 288.15)
        expected, cov = curve_fit(lambda t, r, e: lloyd_taylor(r, e, t, 288.15), temp_k, nee, p0=(2.0, 200.0))
        np.testing.assert_allclose(params, expected, rtol=1e-5)
        np.testing.assert_allclose(sd, np.sqrt(np.diag(cov)), rtol=1e-3)
        np.testing.assert_allclose(resid, nee - lloyd_taylor(*params, temp_k, 288.15), rtol=1e-12)
    # no temperature range: E0 is not identifiable, the fit reports NaN as REddyProc's failed nls
    params, sd, _ = fit_lloyd_taylor(np.full(20, 2.0) + rng.normal(0, 0.1, 20), np.full(20, 283.15), 288.15)
    assert np.isnan(params).all() and np.isnan(sd).all()


def test_light_response_fit_reaches_the_least_squares_minimum():
    """fit_lrc minimises REddyProc's cost: the minimum scipy's least_squares finds on the same residuals.

    Tolerance 1e-5 relative: both stop at their own convergence tests near
    the same minimum of a well-constrained window.
    """
    from scipy.optimize import least_squares

    from uflux_xr.site.partition.daytime import PRIOR_SD, lrc_terms
    from uflux_xr.site.partition.lrc_fit import fit_lrc

    rng = np.random.default_rng(3)
    n = 150
    rg = rng.uniform(20, 1000, n)
    vpd = rng.uniform(2, 25, n)
    temp_c = rng.uniform(5, 25, n)
    truth = np.array([0.04, 30.0, 0.05, 3.0, 150.0])
    gpp, reco, *_ = lrc_terms(truth, rg, vpd, temp_c)
    sd_flux = np.full(n, 1.5)
    flux = gpp - reco + rng.normal(0, 1.5, n)
    prior = np.array([0.05, 28.0, 0.1, 2.5, 150.0])
    free = np.array([0, 1, 2, 3])

    def residuals(x):
        theta = np.append(x, truth[4])
        g, r, *_ = lrc_terms(theta, rg, vpd, temp_c)
        return np.concatenate([(g - r - flux) / sd_flux, (x - prior[:4]) / PRIOR_SD])

    expected = least_squares(residuals, prior[:4], xtol=1e-14, ftol=1e-14, gtol=1e-14).x
    theta, cost, ok = fit_lrc(prior.copy(), free, rg, vpd, temp_c, flux, sd_flux, prior, PRIOR_SD)
    assert ok
    np.testing.assert_allclose(theta[:4], expected, rtol=1e-5)
    assert cost == pytest.approx(float(residuals(theta[:4]) @ residuals(theta[:4])), rel=1e-12)
    # and the estimate is near the truth it was drawn from
    np.testing.assert_allclose(theta[:4], truth[:4], rtol=0.3)
