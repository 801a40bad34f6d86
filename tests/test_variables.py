import numpy as np
import pytest
import xarray as xr

from uflux_xr.core import variables as v


def test_carbon_conversion_factor():
    # 12.011 g mol-1 x 86400 s x 1e-6 = 1.0377 g C m-2 d-1 per µmol CO2 m-2 s-1
    assert v.convert_values(1.0, "umol m-2 s-1", "g m-2 d-1") == pytest.approx(1.0377, abs=1e-4)
    assert v.convert_values(1.0377504, "gC m-2 d-1", "µmol CO2 m-2 s-1") == pytest.approx(1.0, abs=1e-6)


def test_temperature_and_pressure():
    assert v.convert_values(273.15, "K", "degC") == pytest.approx(0.0)
    assert v.convert_values(1.2, "kPa", "hPa") == pytest.approx(12.0)


def test_ensure_units_converts_and_names_problems():
    da = xr.DataArray([280.0], attrs={"units": "K"})
    assert float(v.ensure_units(da, "degC", name="TA", source="f.nc")[0]) == pytest.approx(6.85)
    with pytest.raises(v.UnitsError, match=r"f\.nc: variable 'TA' has no 'units'"):
        v.ensure_units(xr.DataArray([1.0]), "degC", name="TA", source="f.nc")
    with pytest.raises(v.UnitsError, match="unknown units 'furlongs'"):
        v.ensure_units(xr.DataArray([1.0], attrs={"units": "furlongs"}), "degC", name="TA", source="f.nc")
    with pytest.raises(v.UnitsError, match="cannot be converted to 'degC'"):
        v.ensure_units(xr.DataArray([1.0], attrs={"units": "W m-2"}), "degC", name="TA", source="f.nc")


def test_latent_heat_and_et():
    # λ(20 °C) = (2.501 − 0.002361·20)·1e6 = 2.45378e6 J kg-1
    assert v.latent_heat_of_vaporization(20.0) == pytest.approx(2.45378e6)
    # 100 W m-2 over a day at 20 °C: 8.64e6 J m-2 / 2.45378e6 J kg-1 = 3.5211 mm
    assert v.le_to_et(100.0, 20.0) == pytest.approx(3.52110, rel=1e-4)
    assert v.le_to_et(100.0, 20.0, seconds=1800) == pytest.approx(3.52110 / 48, rel=1e-4)


def test_registry_has_cf_metadata():
    assert v.variable_attrs("GPP")["standard_name"] == "gross_primary_productivity_of_biomass_expressed_as_carbon"
    assert "standard_name" not in v.variable_attrs("NEE")  # CF has no upward net name
    assert "source to the atmosphere" in v.variable_attrs("NEE")["long_name"]
    with pytest.raises(KeyError, match="not a canonical"):
        v.variable_attrs("FOO")
    assert np.isin(["GPP", "TA", "NIRv", "ET"], sorted(v.known_names())).all()


def test_subdaily_units_are_the_registry_s_with_carbon_fluxes_in_umol():
    from uflux_xr.core.variables import subdaily_units

    assert subdaily_units("NEE", "GPP", "LE", "TA", "VPD", "PA", "NETRAD", "USTAR") == {
        "NEE": "umol m-2 s-1",
        "GPP": "umol m-2 s-1",
        "LE": "W m-2",
        "TA": "degC",
        "VPD": "hPa",
        "PA": "kPa",
        "NETRAD": "W m-2",
        "USTAR": "m s-1",
    }
    with pytest.raises(KeyError, match="not a canonical"):
        subdaily_units("TAIR")
