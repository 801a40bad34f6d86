"""ERA5 reader on small files written here in both CDS layouts, with known values."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uflux_xr.io.era5 import ERA5Error, read_era5

HOURS = pd.date_range("2021-06-01 00:00", periods=48, freq="h")
LAT = [50.0, 49.75]  # descending, as the CDS delivers
LON = [359.75, 0.0, 0.25]  # 0-360


def fields(shape, land=False):
    """Constant weather: 20 °C, dew point 10 °C, 200 W m-2 shortwave, 300 W m-2 longwave,
    1 mm per hour of rain, 101325 Pa, wind (3, 4) m s-1, soil water 0.3 m3 m-3."""
    ones = np.ones(shape)
    accum_hour = {"ssrd": 200.0 * 3600, "strd": 300.0 * 3600, "tp": 0.001}
    if land:  # ERA5-Land: accumulated since 00 UTC; 00 UTC holds the previous day's total
        hour = HOURS.hour.to_numpy()
        n_hours = np.where(hour == 0, 24, hour)[:, None, None]
        accum = {k: v * n_hours * ones for k, v in accum_hour.items()}
    else:
        accum = {k: v * ones for k, v in accum_hour.items()}
    units = {
        "t2m": "K",
        "d2m": "K",
        "ssrd": "J m**-2",
        "strd": "J m**-2",
        "tp": "m",
        "sp": "Pa",
        "u10": "m s**-1",
        "v10": "m s**-1",
        "swvl1": "m**3 m**-3",
    }
    values = {
        "t2m": 293.15 * ones,
        "d2m": 283.15 * ones,
        "sp": 101325.0 * ones,
        "u10": 3.0 * ones,
        "v10": 4.0 * ones,
        "swvl1": 0.3 * ones,
        **accum,
    }
    return values, units


def write_old_layout(path, land=False):
    values, units = fields((48, 2, 3), land)
    ds = xr.Dataset(
        {k: (("time", "latitude", "longitude"), v, {"units": units[k]}) for k, v in values.items()},
        coords={"time": HOURS, "latitude": LAT, "longitude": LON},
    )
    if land:
        ds.attrs["title"] = "ERA5-Land hourly data"
    ds.to_netcdf(path)
    return path


def write_new_layout(path):
    values, units = fields((48, 2, 3))
    ds = xr.Dataset(
        {k: (("valid_time", "latitude", "longitude"), v, {"units": units[k]}) for k, v in values.items()},
        coords={
            "valid_time": HOURS,
            "latitude": LAT,
            "longitude": LON,
            "number": 0,
            "expver": ("valid_time", np.array(["0001"] * 48)),
        },
    )
    ds.to_netcdf(path)
    return path


def check_converted(cube):
    assert cube["lon"].values.tolist() == [-0.25, 0.0, 0.25]
    assert cube["lat"].values.tolist() == [49.75, 50.0]
    np.testing.assert_allclose(cube["TA"], 20.0, atol=1e-9)
    # FAO-56 Table 2.3: es(20 °C) = 2.338 kPa, es(10 °C) = 1.228 kPa -> 11.10 hPa (table rounding ±0.01)
    np.testing.assert_allclose(cube["VPD"], 11.10, atol=0.01)
    np.testing.assert_allclose(cube["WS"], 5.0)
    np.testing.assert_allclose(cube["PA"], 101.325)
    np.testing.assert_allclose(cube["SWC"], 30.0)
    assert cube["TA"].attrs["units"] == "degC" and cube["SW_IN"].attrs["units"] == "W m-2"


@pytest.mark.parametrize("writer", [write_old_layout, write_new_layout])
def test_hourly_conversion_both_layouts(tmp_path, writer):
    cube = read_era5(writer(tmp_path / "era5.nc")).compute()
    check_converted(cube)
    np.testing.assert_allclose(cube["SW_IN"], 200.0)  # 720000 J m-2 per hour / 3600 s
    np.testing.assert_allclose(cube["LW_IN"], 300.0)
    np.testing.assert_allclose(cube["P"], 1.0)
    assert cube["P"].attrs["units"] == "mm"


def test_daily_and_monthly(tmp_path):
    daily = read_era5(write_old_layout(tmp_path / "era5.nc"), freq="D").compute()
    # Hour ending 00:00 on 1 June belongs to 31 May; 2 June gets its 24 hours ending at 3 June 00:00 - absent.
    assert pd.Timestamp("2021-06-01 12:00") in daily.indexes["time"]
    june1 = daily.sel(time="2021-06-01 12:00")
    assert float(june1["P"].isel(lat=0, lon=0)) == pytest.approx(24.0)  # 24 hours of 1 mm
    assert daily["P"].attrs["units"] == "mm d-1"
    np.testing.assert_allclose(june1["SW_IN"], 200.0)
    check_converted(daily)
    with pytest.raises(ERA5Error, match="era5m.nc: no complete month"):
        read_era5(write_old_layout(tmp_path / "era5m.nc"), freq="MS")


def test_era5_land_is_deaccumulated(tmp_path):
    cube = read_era5(write_old_layout(tmp_path / "land.nc", land=True)).compute()
    valid = cube["SW_IN"].isel(time=slice(1, None))  # the first step has nothing to difference against
    np.testing.assert_allclose(valid, 200.0)
    np.testing.assert_allclose(cube["P"].isel(time=slice(1, None)), 1.0)
    assert "ERA5-Land" in cube.attrs["source"]


def test_errors_name_file_and_variable(tmp_path):
    path = write_old_layout(tmp_path / "bad_units.nc")
    ds = xr.open_dataset(path).load()
    ds["t2m"].attrs["units"] = "degC"
    ds.to_netcdf(tmp_path / "celsius.nc")
    with pytest.raises(ERA5Error, match=r"celsius.nc: variable 't2m' is in 'degC'; expected 'K'"):
        read_era5(tmp_path / "celsius.nc")
    del ds["t2m"].attrs["units"]
    ds.to_netcdf(tmp_path / "nounits.nc")
    with pytest.raises(ERA5Error, match=r"nounits.nc: variable 't2m' has no 'units'"):
        read_era5(tmp_path / "nounits.nc")
    xr.Dataset({"x": ("n", [1.0])}).to_netcdf(tmp_path / "notime.nc")
    with pytest.raises(ERA5Error, match="notime.nc: no 'time', 'valid_time' or 'date' dimension"):
        read_era5(tmp_path / "notime.nc")
    with pytest.raises(FileNotFoundError):
        read_era5(tmp_path / "missing.nc")
