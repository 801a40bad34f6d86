import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uflux_xr.core import physics, solar
from uflux_xr.core.constants import SOLAR_CONSTANT
from uflux_xr.grid import features as f


def test_saturation_vapour_pressure_fao56_table():
    # FAO-56 Annex 2, Table 2.3: es(20 °C) = 2.338 kPa, es(30 °C) = 4.243 kPa
    assert physics.saturation_vapour_pressure(20.0) == pytest.approx(2.338, abs=1e-3)
    assert physics.saturation_vapour_pressure(30.0) == pytest.approx(4.243, abs=1e-3)


def test_vpd_from_dewpoint():
    assert physics.vpd_from_dewpoint(20.0, 20.0) == pytest.approx(0.0)
    assert physics.vpd_from_dewpoint(30.0, 20.0) == pytest.approx(10 * (4.2430 - 2.3383), abs=0.01)


def test_vegetation_indices():
    assert physics.nirv(0.5, 0.3) == pytest.approx(0.15)
    # EVI2 = 2.5 (0.4 − 0.1) / (0.4 + 0.24 + 1)
    assert physics.evi2(0.4, 0.1) == pytest.approx(2.5 * 0.3 / 1.64)


def test_toa_radiation_fao56_example_8():
    # FAO-56 example 8: 20° S on 3 September, Ra = 32.2 MJ m-2 d-1 with Gsc = 1366.7 W m-2.
    ra = solar.toa_daily_radiation(-20.0, 246) * 86400 / 1e6
    assert ra * 1366.7 / SOLAR_CONSTANT == pytest.approx(32.2, abs=0.1)
    assert solar.toa_daily_radiation(80.0, 355) == pytest.approx(0.0, abs=1e-6)  # polar night


def test_doy_harmonics_and_resolve():
    time = xr.DataArray(pd.date_range("2021-01-01", "2021-12-31"), dims="time")
    h = f.doy_harmonics(time)
    assert float(h["DOY_SIN"][0]) == pytest.approx(0.0)
    assert float(h["DOY_COS"][0]) == pytest.approx(1.0)
    assert np.allclose(h["DOY_SIN"] ** 2 + h["DOY_COS"] ** 2, 1.0, atol=1e-6)
    cube = xr.Dataset({"TA": (("time",), np.zeros(365), {"units": "degC"})}, coords={"time": time})
    out = f.resolve_features(cube, ["TA", "DOY_COS"])
    assert list(out) == ["TA", "DOY_COS"]
    with pytest.raises(KeyError, match=r"\['NIRv'\] not found in the cube"):
        f.resolve_features(cube, ["NIRv"])


def test_annual_maximum_is_each_years_peak_per_location_and_keeps_dask_chunks():
    time = pd.date_range("2019-07-01", "2021-06-30", freq="D")
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 0.4, (len(time), 3, 2)).astype("float32")
    values[:, 0, 0] = np.nan  # a cell without data stays NaN
    nirv = xr.DataArray(values, dims=("time", "lat", "lon"), coords={"time": time}, attrs={"units": "1"})
    cube = xr.Dataset({"NIRv": nirv}).chunk({"time": 61, "lat": 2, "lon": 1})
    derived = f.resolve_features(cube, ["NIRv_MAX"])["NIRv_MAX"]
    assert derived.chunks == cube["NIRv"].chunks  # lines up with the other predictors' blocks
    assert derived.attrs["units"] == "1" and derived.dtype == np.float32
    # Expected by pandas: the maximum of each calendar year per cell, repeated over the year's days.
    frame = pd.DataFrame(values.reshape(len(time), -1), index=time)
    expected = frame.groupby(time.year).transform("max").to_numpy().reshape(values.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the all-NaN cell (sea) gives NaN and no warning
        computed = derived.values
    np.testing.assert_array_equal(computed, expected)  # the same comparisons: exact
    assert np.isnan(derived.values[:, 0, 0]).all()
    # Towers (site, time) too.
    sites = xr.Dataset({"NIRv": (("site", "time"), values[:, :, 1].T)}, coords={"time": time})
    np.testing.assert_array_equal(f.resolve_features(sites, ["NIRv_MAX"])["NIRv_MAX"].values, expected[:, :, 1].T)
    # A cube that holds the layer is read as it is; a window cut after with_annual_maxima keeps the whole year's.
    held = f.with_annual_maxima(cube, ["NIRv_MAX", "TA"])
    window = held.isel(time=slice(200, 230))  # 2020-01-17 .. 2020-02-15
    np.testing.assert_array_equal(f.resolve_features(window, ["NIRv_MAX"])["NIRv_MAX"].values, expected[200:230])
    own = f.resolve_features(cube.isel(time=slice(200, 230)), ["NIRv_MAX"])["NIRv_MAX"]
    assert not np.array_equal(own.values[:, 1:], expected[200:230, 1:])  # what the window alone would give
    with pytest.raises(KeyError, match="NIRv_MAX"):
        f.resolve_features(cube.drop_vars("NIRv"), ["NIRv_MAX"])
