"""Ensemble statistics and area-weighted totals with true cell areas."""

import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr

from uflux_xr.grid.ensemble import area_weighted_total, cell_area, ensemble_statistics

GEOD = pyproj.Geod(ellps="WGS84")


def global_grid(resolution=1.0, value=1.0, units="g m-2 d-1", days=365):
    lat = np.arange(-90 + resolution / 2, 90, resolution)
    lon = np.arange(-180 + resolution / 2, 180, resolution)
    time = pd.date_range("2021-01-01 12:00", periods=days, freq="D")
    data = np.full((2, days, lat.size, lon.size), value, dtype="float32")
    data[1] *= 3
    return xr.DataArray(
        data,
        dims=("member", "time", "lat", "lon"),
        coords={"member": ["a", "b"], "time": time, "lat": lat, "lon": lon},
        name="GPP",
        attrs={"units": units},
    )


def test_ensemble_mean_std_and_count_per_cell():
    values = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, np.nan]])  # 3 members x 2 cells
    ds = xr.Dataset({"GPP": (("member", "cell"), values, {"units": "g m-2 d-1"})})
    stats = ensemble_statistics(ds).compute()
    np.testing.assert_allclose(stats["GPP_mean"], [3.0, 2.0])
    np.testing.assert_allclose(stats["GPP_std"], [2.0, np.nan])  # one member: no spread
    np.testing.assert_array_equal(stats["GPP_count"], [3, 1])
    assert stats["GPP_mean"].attrs["units"] == "g m-2 d-1" and stats["GPP_std"].attrs["units"] == "g m-2 d-1"
    with pytest.raises(ValueError, match="no variable of the product has the ensemble dim 'member'"):
        ensemble_statistics(ds.rename(member="seed"))
    # A projected grid's CRS lives in a coordinate's attributes: the statistics keep it (their totals need it).
    gridded = ds.assign_coords(crs=xr.DataArray(0, attrs={"crs_wkt": "EPSG:27700 as WKT"})).chunk({"cell": 1})
    assert ensemble_statistics(gridded)["GPP_std"]["crs"].attrs == {"crs_wkt": "EPSG:27700 as WKT"}


def test_geographic_cells_have_their_ellipsoidal_area():
    area = cell_area(global_grid(resolution=1.0, days=1))
    earth = 4 * np.pi * GEOD.a**2 * (1 + (1 - GEOD.f) ** 2 * np.arctanh(GEOD.es**0.5) / GEOD.es**0.5) / 2
    assert float(area.sum()) == pytest.approx(earth, rel=1e-9)  # ellipsoid surface, closed form
    along = np.linspace(0, 1, 2001)  # cell edges follow parallels: densify them for the geodesic polygon
    for lat in (0.5, 45.5, 89.5):  # one cell against pyproj's geodesic polygon area
        lons = np.concatenate([along, along[::-1]])
        lats = np.concatenate([np.full(along.size, lat - 0.5), np.full(along.size, lat + 0.5)])
        expected = abs(GEOD.polygon_area_perimeter(lons, lats)[0])
        assert float(area.sel(lat=lat, lon=0.5)) == pytest.approx(expected, rel=1e-6)


def test_projected_cells_have_their_true_ground_area():
    crs = pyproj.CRS.from_epsg(27700)
    x = np.arange(200_050.0, 201_050.0, 100.0)
    y = np.arange(800_050.0, 800_550.0, 100.0)  # northern Scotland: scale factor far from 1
    grid = xr.Dataset(coords={"y": y[::-1], "x": x, "crs": ((), 0, {"crs_wkt": crs.to_wkt()})})
    area = cell_area(grid).compute()
    # Independent reference: the cell's corners on the grid's own ellipsoid (Airy 1830), geodesic area.
    to_lonlat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    cx, cy = x[3], y[::-1][2]
    lons, lats = to_lonlat.transform([cx - 50, cx + 50, cx + 50, cx - 50], [cy - 50, cy - 50, cy + 50, cy + 50])
    expected = abs(crs.get_geod().polygon_area_perimeter(lons, lats)[0])
    assert float(area.isel(y=2, x=3)) == pytest.approx(expected, rel=1e-6)
    assert abs(float(area.isel(y=2, x=3)) - 10_000.0) > 1.0  # not the nominal 100 m x 100 m
    with pytest.raises(ValueError, match="projected grid has no CRS"):
        cell_area(grid.drop_vars("crs"))


def test_carbon_totals_are_in_pg_per_year():
    flux = global_grid(resolution=2.0, days=365)
    total = area_weighted_total(flux).compute()
    surface = float(cell_area(flux).sum())
    np.testing.assert_allclose(total.values, [1.0, 3.0] * np.array(surface * 365 / 1e15 * 365.25 / 365))
    assert total.attrs["units"] == "Pg yr-1"
    half_land = flux.where(flux["lon"] < 0)  # NaN cells carry no flux
    np.testing.assert_allclose(area_weighted_total(half_land).values, total.values / 2, rtol=1e-6)
    energy = global_grid(resolution=2.0, days=10, units="W m-2", value=100.0)
    np.testing.assert_allclose(area_weighted_total(energy.where(energy["lat"] > 0)).values, [100.0, 300.0])


@pytest.mark.parametrize("lead", [(), ("member",), ("member", "scenario")])
def test_weighted_sums_in_one_pass_match_numpy_for_numpy_and_dask_inputs(lead):
    """The totals' one-pass kernel against the weighted sums written out in numpy (float64; the sums
    run in another order, so rtol 1e-12), for 0, 1 and 2 dims besides time and space."""
    rng = np.random.default_rng(0)
    sizes = {"member": 3, "scenario": 2, "time": 5, "lat": 4, "lon": 6}
    dims = (*lead, "time", "lat", "lon")
    values = rng.normal(10, 3, [sizes[d] for d in dims]).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = np.nan
    flux = xr.DataArray(
        values,
        dims=dims,
        coords={
            "time": pd.date_range("2020-01-01", periods=5, freq="D"),
            "lat": np.arange(4) + 40.5,
            "lon": np.arange(6) + 0.5,
        },
        attrs={"units": "W m-2"},
    )
    area = cell_area(flux)
    weight = area.values[None] * np.ones(5)[:, None, None]  # daily steps: one day each
    finite = np.isfinite(values)
    expected_sum = np.where(finite, values * weight, 0).sum(axis=(-3, -2, -1))
    expected = expected_sum / np.where(finite, weight, 0).sum(axis=(-3, -2, -1))
    for obj in (flux, flux.chunk({"time": 2, "lat": 3, "lon": 4})):
        out = area_weighted_total(obj).compute()
        assert out.dims == lead
        np.testing.assert_allclose(out.values, expected, rtol=1e-12)
