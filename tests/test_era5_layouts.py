"""ERA5 / ERA5-Land told apart by what the file is: accumulation convention from the
values, product from the grid, sub-sampled accumulations, partial days, the current
CDS monthly layout, mean rates, mixed grids, GRIB without cfgrib, plausibility.

Synthetic files are written here in the exact CDS layouts; the real files in
../shared/data/real_inputs are read where present."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.core.plausibility import PlausibilityError
from uflux_xr.io.era5 import ERA5Error, read_era5

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_inputs"


def diurnal_sw(time: pd.DatetimeIndex) -> np.ndarray:
    """Hourly mean shortwave [W m-2] of the hour ending at each stamp: a half sine 06-18 UTC, peak 800."""
    middle = (time - pd.Timedelta(minutes=30)).hour + 0.5
    return np.where((middle > 6) & (middle < 18), 800.0 * np.sin(np.pi * (middle - 6) / 12), 0.0)


def write_cds(path, time, spacing, *, land, rain_mm_per_hour=0.5, attrs=None, layout="valid_time"):
    """Hourly amounts as the CDS delivers them: per hour (ERA5) or running since 00 UTC (ERA5-Land)."""
    lat = 50.0 - spacing * np.arange(3)
    lon = spacing * np.arange(4)
    hourly_index = pd.date_range(time[0].floor("D") - pd.Timedelta(days=1), time[-1], freq="h")
    sw_hour = diurnal_sw(hourly_index) * 3600.0  # J m-2 in each hour
    tp_hour = np.full(len(hourly_index), rain_mm_per_hour / 1000.0)
    if land:  # running sums over the hours since 00 UTC (the 00 UTC value: the whole previous day)
        day = (hourly_index - pd.Timedelta(minutes=30)).floor("D")
        sw = pd.Series(sw_hour, index=hourly_index).groupby(day).cumsum()
        tp = pd.Series(tp_hour, index=hourly_index).groupby(day).cumsum()
    else:
        sw, tp = pd.Series(sw_hour, index=hourly_index), pd.Series(tp_hour, index=hourly_index)
    shape = (len(time), lat.size, lon.size)
    grid = np.ones(shape)
    data = {
        "ssrd": (sw.reindex(time).to_numpy()[:, None, None] * grid, "J m**-2"),
        "tp": (tp.reindex(time).to_numpy()[:, None, None] * grid, "m"),
        "t2m": (288.15 * grid, "K"),
    }
    ds = xr.Dataset(
        {k: ((layout, "latitude", "longitude"), v, {"units": u}) for k, (v, u) in data.items()},
        coords={layout: time, "latitude": lat, "longitude": lon},
        attrs=attrs or {},
    )
    ds.to_netcdf(path)
    return path


HOURS = pd.date_range("2024-07-01 00:00", "2024-07-03 23:00", freq="h")
# Daily mean of the hourly amounts above (midpoint sum of the half sine, 255.38 W m-2): computed
# from the same hours, independent of the reader.
DAILY_SW = float(diurnal_sw(pd.date_range("2024-07-02 01:00", periods=24, freq="h")).mean())


@pytest.mark.parametrize("spacing", [0.1, 0.25])
def test_era5_land_found_from_the_values_without_attributes(tmp_path, spacing):
    # Current CDS layout, no "ERA5-Land" text anywhere: the running sums give it away.
    cube = read_era5(write_cds(tmp_path / "land.nc", HOURS, spacing, land=True), freq="D").compute()
    assert cube.attrs["product"] == "ERA5-Land"
    np.testing.assert_allclose(cube["SW_IN"].isel(lat=0, lon=0), DAILY_SW, rtol=1e-9)
    np.testing.assert_allclose(cube["P"], 12.0, rtol=1e-6)  # 0.5 mm h-1 x 24 h


def test_era5_hourly_amounts_are_not_deaccumulated(tmp_path):
    cube = read_era5(write_cds(tmp_path / "era5.nc", HOURS, 0.25, land=False), freq="D").compute()
    assert cube.attrs["product"] == "ERA5"
    np.testing.assert_allclose(cube["SW_IN"].isel(lat=0, lon=0), DAILY_SW, rtol=1e-9)
    np.testing.assert_allclose(cube["P"], 12.0, rtol=1e-6)


def test_land_flag_that_contradicts_the_values_is_an_error(tmp_path):
    path = write_cds(tmp_path / "land.nc", HOURS, 0.1, land=True)
    with pytest.raises(ERA5Error, match=r"land.nc: land=False was passed, but the accumulations .* run since 00 UTC"):
        read_era5(path, land=False)


def test_six_hourly_era5_accumulations_are_refused(tmp_path):
    six = pd.date_range("2024-07-01 00:00", "2024-07-03 18:00", freq="6h")
    path = write_cds(tmp_path / "era5_6h.nc", six, 0.25, land=False, rain_mm_per_hour=0.4)
    with pytest.raises(ERA5Error, match=r"era5_6h.nc: ssrd, tp cover the hour ending .* sampled every 0 days 06:00"):
        read_era5(path)


def test_six_hourly_era5_land_is_deaccumulated_over_the_real_step(tmp_path):
    six = pd.date_range("2024-07-01 00:00", "2024-07-04 00:00", freq="6h")
    cube = read_era5(write_cds(tmp_path / "land_6h.nc", six, 0.1, land=True), freq="D").compute()
    # 2 and 3 July are whole (their four 6-h amounts end at 06, 12, 18 and 00 of the next day)
    assert [str(t.date()) for t in cube.indexes["time"]] == ["2024-07-01", "2024-07-02", "2024-07-03"]
    np.testing.assert_allclose(cube["P"], 12.0, rtol=1e-6)  # not 12 / 6
    np.testing.assert_allclose(cube["SW_IN"].isel(lat=0, lon=0), DAILY_SW, rtol=1e-9)


def test_partial_first_and_last_days_are_dropped(tmp_path):
    hours = pd.date_range("2024-07-01 07:00", "2024-07-03 15:00", freq="h")
    cube = read_era5(write_cds(tmp_path / "part.nc", hours, 0.25, land=False), freq="D")
    assert [str(t.date()) for t in cube.indexes["time"]] == ["2024-07-02"]


def test_current_cds_monthly_layout_with_date_dimension(tmp_path):
    # Monthly means of daily accumulations: J m-2 per day and m per day.
    dates = np.array([20240101, 20240201, 20240301])
    ds = xr.Dataset(
        {
            "ssrd": (("date", "latitude", "longitude"), np.full((3, 2, 2), 100.0 * 86400), {"units": "J m**-2"}),
            "tp": (("date", "latitude", "longitude"), np.full((3, 2, 2), 0.003), {"units": "m"}),
            "t2m": (("date", "latitude", "longitude"), np.full((3, 2, 2), 280.0), {"units": "K"}),
        },
        coords={"date": dates, "latitude": [50.0, 49.75], "longitude": [0.0, 0.25], "expver": ("date", ["0001"] * 3)},
    )
    ds.to_netcdf(tmp_path / "monthly.nc")
    cube = read_era5(tmp_path / "monthly.nc").compute()
    assert cube.indexes["time"][0] == pd.Timestamp("2024-01-16 12:00")
    np.testing.assert_allclose(cube["SW_IN"], 100.0)
    np.testing.assert_allclose(cube["P"], 3.0)
    assert cube["P"].attrs["units"] == "mm d-1"


def test_old_layout_expver_dimension_is_merged(tmp_path):
    time = pd.date_range("2024-07-01", periods=4, freq="h")
    t2m = np.full((4, 2, 2, 2), np.nan)
    t2m[:2, 0] = 290.0  # final ERA5 for the first two hours
    t2m[2:, 1] = 291.0  # ERA5T after
    ds = xr.Dataset(
        {"t2m": (("time", "expver", "latitude", "longitude"), t2m, {"units": "K"})},
        coords={"time": time, "expver": [1, 5], "latitude": [50.0, 49.75], "longitude": [0.0, 0.25]},
    )
    ds.to_netcdf(tmp_path / "expver.nc")
    cube = read_era5(tmp_path / "expver.nc").compute()
    np.testing.assert_allclose(cube["TA"].isel(lat=0, lon=0), [16.85, 16.85, 17.85, 17.85], atol=1e-9)


def test_mean_rates_current_names(tmp_path):
    time = pd.date_range("2024-07-01", periods=48, freq="h")
    ones = np.ones((48, 2, 2))
    ds = xr.Dataset(
        {
            "avg_sdswrf": (("valid_time", "latitude", "longitude"), 250.0 * ones, {"units": "W m**-2"}),
            "avg_tprate": (("valid_time", "latitude", "longitude"), 1e-4 * ones, {"units": "kg m**-2 s**-1"}),
        },
        coords={"valid_time": time, "latitude": [50.0, 49.75], "longitude": [0.0, 0.25]},
    )
    ds.to_netcdf(tmp_path / "rates.nc")
    cube = read_era5(tmp_path / "rates.nc").compute()
    np.testing.assert_allclose(cube["SW_IN"], 250.0)
    np.testing.assert_allclose(cube["P"], 0.36)  # 1e-4 kg m-2 s-1 x 3600 s = 0.36 mm per hour


def test_files_on_different_grids_are_not_combined(tmp_path):
    a = write_cds(tmp_path / "era5.nc", HOURS, 0.25, land=False)
    b = write_cds(tmp_path / "land.nc", HOURS, 0.1, land=True)
    with pytest.raises(ERA5Error, match=r"different grids \(era5.nc 0.25°, land.nc 0.1°\).*build_cube"):
        read_era5([a, b])


def test_grib_without_cfgrib_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_cfgrib(name, *args, **kwargs):
        if name == "cfgrib":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cfgrib)
    (tmp_path / "era5.grib").write_bytes(b"GRIB")
    with pytest.raises(ERA5Error, match=r"era5.grib: GRIB needs the optional package cfgrib \(pip install cfgrib\)"):
        read_era5(tmp_path / "era5.grib")


def test_implausible_values_stop_with_file_variable_and_cause(tmp_path):
    path = write_cds(tmp_path / "hpa.nc", HOURS, 0.25, land=False)
    ds = xr.open_dataset(path).load()
    ds["sp"] = ds["t2m"] * 0 + 1013.25  # hPa written with the CDS's "Pa" label
    ds["sp"].attrs["units"] = "Pa"
    ds.to_netcdf(tmp_path / "sp.nc")
    with pytest.raises(PlausibilityError, match=r"sp.nc: PA has 864 of 864 values .* outside .*\[40, 110\] kPa"):
        read_era5(tmp_path / "sp.nc")
    with ux.set_options(range_check="warn"):
        assert float(read_era5(tmp_path / "sp.nc")["PA"].max()) == pytest.approx(1.01325)


needs_real = pytest.mark.skipif(not REAL.exists(), reason="../shared/data/real_inputs not present")


@needs_real
def test_real_pvlib_point_file_with_mean_rates():
    cube = read_era5(REAL / "era5_pvlib" / "era5_testfile.nc", freq="D").compute()
    assert cube.attrs["product"] == "ERA5" and cube.sizes["time"] == 365  # 2020 minus the partial last day
    # Copenhagen 2020: annual mean temperature ~9.5 °C, shortwave ~115 W m-2, pressure ~101 kPa
    assert 8.0 < float(cube["TA"].mean()) < 11.0
    assert 90.0 < float(cube["SW_IN"].mean()) < 140.0
    assert 100.0 < float(cube["PA"].mean()) < 102.5


@needs_real
def test_real_zampy_files_current_layout():
    era5 = read_era5(sorted((REAL / "era5_zampy" / "era5").glob("*.nc"))).compute()
    assert era5.attrs["product"] == "ERA5" and set(era5.data_vars) == {"SW_IN", "LW_IN", "P", "PA", "WS"}
    assert 250 < float(era5["LW_IN"].mean()) < 350  # January night, North Sea coast
    land = read_era5(sorted((REAL / "era5_zampy" / "era5-land").glob("*.nc"))).compute()
    assert land.attrs["product"] == "ERA5-Land" and set(land.data_vars) == {"TA", "VPD"}
    assert np.isnan(land["TA"].values).any()  # sea cells
    with pytest.raises(ERA5Error, match="different grids"):
        read_era5(sorted((REAL / "era5_zampy").rglob("*.nc")))
