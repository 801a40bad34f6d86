import numpy as np
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.grid.extract import ExtractionError

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
    with pytest.raises(ExtractionError, match=rf"outside the cube's lat cells.*{sites.site.values[2]}"):
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
    with pytest.raises(ExtractionError, match=r"predictor\(s\) \['NIRv'\] are NaN at every time step .* all 8 cells"):
        ux.extract_at_sites(holed, sites, ["NIRv"])
    with pytest.raises(ValueError, match="odd number"):
        ux.extract_at_sites(cube, sites, ["TA"], method="window", window=2)


def test_towers_need_coordinates(world):
    cube, sites, _ = world
    lost = sites.assign_coords(lat=sites["lat"].where(sites.site != sites.site[1]))
    with pytest.raises(ExtractionError, match=rf"tower\(s\) \['{sites.site.values[1]}'\] have no coordinates"):
        ux.extract_at_sites(cube, lost, ["TA"])


def test_one_point_cube_refuses_a_distant_tower(world):
    # A one-cell ERA5 file (Copenhagen, 55.75 N 12.5 E) must not lend its weather to Davos.
    cube, sites, _ = world
    point = cube[["TA"]].isel(lat=[0], lon=[0]).assign_coords(lat=[55.75], lon=[12.5])
    davos = sites.isel(site=[0]).assign_coords(lat=("site", [46.815]), lon=("site", [9.856]))
    with pytest.raises(ExtractionError, match=r"outside the cube's lat cells \[55.6250, 55.8750\]"):
        ux.extract_at_sites(point, davos, ["TA"])
    near = davos.assign_coords(lat=("site", [55.68]), lon=("site", [12.57]))  # within the 0.25° cell
    table = ux.extract_at_sites(point, near, ["TA"])
    assert table.attrs["tower_cells"]["distance_km"].iloc[0] == pytest.approx(9.0, abs=1.0)


def test_coastal_tower_takes_the_nearest_land_cell_and_reports_it(world):
    cube, sites, _ = world
    table0 = ux.extract_at_sites(cube, sites, ["TA", "NIRv"])
    cells = table0.attrs["tower_cells"]
    assert not cells["moved"].any() and (cells["distance_km"] < 100).all()
    site0 = cells.iloc[0]
    holed = cube.copy()
    # the tower's own cell loses its vegetation data (sea in a land-only product)
    holed["NIRv"] = cube["NIRv"].where(
        ~((cube["lat"] == cube["lat"][site0.iy]) & (cube["lon"] == cube["lon"][site0.ix]))
    )
    table = ux.extract_at_sites(holed, sites, ["TA", "NIRv"])
    moved = table.attrs["tower_cells"].iloc[0]
    assert moved["moved"] and abs(moved["iy"] - site0.iy) <= 1 and abs(moved["ix"] - site0.ix) <= 1
    assert moved["distance_km"] > site0.distance_km


def test_daily_towers_against_a_monthly_cube_are_refused(world):
    cube, sites, _ = world
    monthly = cube.resample(time="1MS").mean()
    with pytest.raises(ExtractionError, match="Aggregate the towers to the cube's step first"):
        ux.extract_at_sites(monthly, sites, ["TA"])


def test_tower_variables_named_like_features_are_kept_apart(world):
    """A tower's own TA is not the cube's TA: the feature column is the cube's, the tower's is TA_tower."""
    cube, sites, _ = world
    assert {"TA", "SW_IN", "VPD"} <= set(sites.data_vars)  # the demo towers measure them too
    table = ux.extract_at_sites(cube, sites, FEATURES)  # every site variable joined, as the README does
    assert not table.columns.duplicated().any()
    site = sites["site"].values[3]
    rows = table[table["site"] == site]
    lat, lon = float(sites["lat"].sel(site=site)), float(sites["lon"].sel(site=site))
    cube_ta = cube["TA"].sel(lat=lat, lon=lon, method="nearest").to_numpy()
    np.testing.assert_allclose(rows["TA"].to_numpy(), cube_ta, rtol=1e-6)  # float32 cube values
    np.testing.assert_array_equal(rows["TA_tower"].to_numpy(), sites["TA"].sel(site=site).to_numpy())
    assert table.attrs["units"]["TA_tower"] == sites["TA"].attrs["units"]


def test_train_fits_exactly_the_features_it_records(world, table):
    """A table with a feature column twice is refused by train and predict (it was fitted on 11 columns for 8)."""
    model = ux.train(table, "GPP", FEATURES, model="xgboost", n_estimators=5)
    assert model.predict(table).shape == (len(table),)
    doubled = table.copy()
    doubled.insert(len(doubled.columns), "TA", 0.0, allow_duplicates=True)
    with pytest.raises(ValueError, match=r"\['TA'\] more than once"):
        ux.train(doubled, "GPP", FEATURES, model="xgboost", n_estimators=5)
    with pytest.raises(ValueError, match=r"\['TA'\] more than once"):
        model.predict(doubled)
    with pytest.raises(ValueError, match="asked for more than once"):
        ux.train(table, "GPP", [*FEATURES, "TA"], model="xgboost", n_estimators=5)
    with pytest.raises(ValueError, match="also listed as a feature"):
        ux.train(table, "GPP", [*FEATURES, "GPP"], model="xgboost", n_estimators=5)
