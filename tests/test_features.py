import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uflux_xr import features as f


def test_saturation_vapour_pressure_fao56_table():
    # FAO-56 Annex 2, Table 2.3: es(20 °C) = 2.338 kPa, es(30 °C) = 4.243 kPa
    assert f.saturation_vapour_pressure(20.0) == pytest.approx(2.338, abs=1e-3)
    assert f.saturation_vapour_pressure(30.0) == pytest.approx(4.243, abs=1e-3)


def test_vpd_from_dewpoint():
    assert f.vpd_from_dewpoint(20.0, 20.0) == pytest.approx(0.0)
    assert f.vpd_from_dewpoint(30.0, 20.0) == pytest.approx(10 * (4.2430 - 2.3383), abs=0.01)


def test_vegetation_indices():
    assert f.nirv(0.5, 0.3) == pytest.approx(0.15)
    # EVI2 = 2.5 (0.4 − 0.1) / (0.4 + 0.24 + 1)
    assert f.evi2(0.4, 0.1) == pytest.approx(2.5 * 0.3 / 1.64)


def test_toa_radiation_fao56_example_8():
    # FAO-56 example 8: 20° S on 3 September, Ra = 32.2 MJ m-2 d-1 with Gsc = 1366.7 W m-2.
    ra = f.toa_daily_radiation(-20.0, 246) * 86400 / 1e6
    assert ra * 1366.7 / f.SOLAR_CONSTANT == pytest.approx(32.2, abs=0.1)
    assert f.toa_daily_radiation(80.0, 355) == pytest.approx(0.0, abs=1e-6)  # polar night


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
