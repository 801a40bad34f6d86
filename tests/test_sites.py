import numpy as np
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.sites import ExtractionError

from .conftest import FEATURES


def test_nearest_matches_independent_selection(world, table):
    cube, sites, _ = world
    site = sites["site"].values[5]
    rows = table[table["site"] == site].set_index("time")
    lat, lon = float(sites["lat"].sel(site=site)), float(sites["lon"].sel(site=site))
    expected = cube["TA"].sel(lat=lat, lon=lon, method="nearest").to_series()
    np.testing.assert_allclose(rows["TA"].to_numpy(), expected.reindex(rows.index).to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(rows["GPP"].to_numpy(), sites["GPP"].sel(site=site).to_numpy(), equal_nan=True)
    assert set(table["igbp"]) <= {"ENF", "DBF", "MF", "OSH", "SAV", "GRA", "CRO"}
    assert table.attrs["units"]["TA"] == "degC" and table.attrs["units"]["GPP"] == "g m-2 d-1"
    assert len(table) == sites.sizes["site"] * sites.sizes["time"]


def test_window_mean_and_categorical_centre(world):
    cube, sites, _ = world
    t = ux.extract_at_sites(cube, sites, ["TA", "IGBP"], targets=["GPP"], method="window", window=3)
    site = sites["site"].values[0]
    iy = int(np.abs(cube["lat"].values - float(sites["lat"][0])).argmin())
    ix = int(np.abs(cube["lon"].values - float(sites["lon"][0])).argmin())
    block = cube["TA"].isel(lat=slice(max(iy - 1, 0), iy + 2), lon=slice(max(ix - 1, 0), ix + 2))
    rows = t[t["site"] == site]
    np.testing.assert_allclose(rows["TA"].to_numpy(), block.mean(("lat", "lon")).to_numpy(), rtol=1e-5)
    assert (rows["IGBP"] == int(cube["IGBP"][iy, ix])).all()


def test_dask_cube_gives_the_same_table(world, table):
    lazy = ux.extract_at_sites(
        world.cube.chunk({"time": 50}), world.sites, FEATURES, targets=list(table.columns[3 + len(FEATURES) :])
    )
    np.testing.assert_allclose(lazy[FEATURES].to_numpy(float), table[FEATURES].to_numpy(float))


def test_errors_are_explicit(world):
    cube, sites, _ = world
    with pytest.raises(ExtractionError, match="no overlap in time"):
        ux.extract_at_sites(cube, sites.assign_coords(time=sites.time + np.timedelta64(3650, "D")), ["TA"])
    far = sites.assign_coords(lat=sites["lat"].where(sites.site != sites.site[2], 80.0))
    with pytest.raises(ExtractionError, match=rf"outside the cube's lat range.*{sites.site.values[2]}"):
        ux.extract_at_sites(cube, far, ["TA"])
    dup = xr.concat([sites.isel(time=[0]), sites], dim="time")
    with pytest.raises(ExtractionError, match="duplicate timestamps"):
        ux.extract_at_sites(cube, dup, ["TA"])
    with pytest.raises(ExtractionError, match=r"target\(s\) \['FOO'\]"):
        ux.extract_at_sites(cube, sites, ["TA"], targets=["FOO"])
    with pytest.raises(KeyError, match="not found in the cube"):
        ux.extract_at_sites(cube, sites, ["EVI"])
    holed = cube.copy()
    holed["NIRv"] = cube["NIRv"].where(cube["lat"] > 100)  # all NaN
    with pytest.raises(ExtractionError, match="predictor 'NIRv' is all-NaN at tower"):
        ux.extract_at_sites(holed, sites, ["NIRv"])
    with pytest.raises(ValueError, match="odd number"):
        ux.extract_at_sites(cube, sites, ["TA"], method="window", window=2)
