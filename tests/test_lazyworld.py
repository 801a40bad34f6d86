"""The lazily generated demo world: chunk-independent, never whole in memory,
and its towers see exactly what extraction from its cube gives."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tests.conftest import raise_if_dask_computes
from uflux_xr.core.domain import Domain
from uflux_xr.grid.extract import extract_at_sites
from uflux_xr.sources.demo.lazy import FLUXES, PREDICTORS, LazyWorld, site_table

UK = Domain("EPSG:27700", (0, 700_000), (0, 1_250_000), 100, "2020-01-01", "2020-12-31", "daily")
SMALL_GEO = Domain("EPSG:4326", (-10, 20), (40, 60), 1.0, "2020-01-01", "2020-03-31", "daily")
SMALL_BNG = Domain("EPSG:27700", (300_000, 400_000), (200_000, 300_000), 2_000, "2020-06-01", "2020-06-20", "daily")


def test_the_full_uk_year_is_a_lazy_graph_of_chunks():
    world = LazyWorld(UK, seed=17)  # the seed of configs/uk_daily_100m.yaml
    with raise_if_dask_computes():
        cube = world.cube({"time": 8, "y": 500, "x": 500})
    ta = cube["TA"]
    assert ta.shape == (366, 12_500, 7_000) and ta.nbytes > 1e11  # 128 GB were it in memory
    assert ta.data.npartitions == 46 * 25 * 14
    assert cube.rio.crs.to_epsg() == 27700
    block = cube.isel(time=slice(0, 8), y=slice(4000, 4500), x=slice(2000, 2500)).compute()  # a coast
    land = block["land_mask"].values == 1
    assert 0.2 < land.mean() < 0.95
    for name in ("SWC", "NIRv", "NDVI", "EVI2", "SIF"):
        assert np.isnan(block[name].values[:, ~land]).all() and np.isfinite(block[name].values[:, land]).all()
    assert np.isfinite(block["TA"].values).all()  # weather everywhere, land or not


@pytest.mark.parametrize("domain", [SMALL_GEO, SMALL_BNG], ids=["lat-lon", "bng"])
def test_values_do_not_depend_on_the_chunking(domain):
    world = LazyWorld(domain, seed=5)
    a = world.cube({"time": 7, domain.dims[0]: 4, domain.dims[1]: 9}).compute()
    b = world.cube({"time": 50}).compute()
    window = {"time": slice(3, 40), domain.dims[0]: slice(2, 9), domain.dims[1]: slice(5, 30)}
    c = world.cube({"time": 10, domain.dims[1]: 7}, window=window).compute()
    # The values are float32 computed from chunk-shaped coordinate arrays; numpy's SIMD
    # paths (exp, sin) may round a different last bit for a different array length, and
    # differences of large terms (TA near 0 from ~280 K terms) carry that error into small
    # values. So the chunkings agree to 8 float32 ulps of each variable's magnitude
    # (measured: at most 4.9e-7 x max|value|), not bit for bit. Categorical layers
    # (land_mask, IGBP) come from comparisons and must be equal.
    eps = float(np.finfo(np.float32).eps)
    for name in [*PREDICTORS, "land_mask", "IGBP"]:
        ref = b[name].isel({d: w for d, w in window.items() if d in b[name].dims})
        if name in ("land_mask", "IGBP"):
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
            xr.testing.assert_identical(c[name], ref)
        else:
            atol = 8 * eps * float(np.nanmax(np.abs(b[name].values)))
            np.testing.assert_allclose(a[name].values, b[name].values, rtol=0, atol=atol, err_msg=name)
            xr.testing.assert_allclose(c[name], ref, rtol=0, atol=atol)
            assert c[name].attrs == ref.attrs


@pytest.mark.parametrize("domain", [SMALL_GEO, SMALL_BNG], ids=["lat-lon", "bng"])
def test_tower_predictors_equal_extraction_from_the_cube(domain):
    world = LazyWorld(domain, seed=2, n_sites=12)
    features = ["TA", "SW_IN", "SWC", "NIRv", "SIF", "IGBP", "DOY_SIN"]
    direct = site_table(world, features, ["GPP", "GPP_QC", "LE"])
    extracted = extract_at_sites(world.cube({"time": 30}), world.sites(), features, targets=["GPP", "GPP_QC", "LE"])
    assert list(direct.columns) == list(extracted.columns) and len(direct) == 12 * len(domain.time())
    # Same float32 formulas on arrays of other shapes: 8 float32 ulps of each column's magnitude.
    for col in features + ["GPP", "LE"]:
        ref = extracted[col].to_numpy(float)
        atol = 8 * float(np.finfo(np.float32).eps) * float(np.nanmax(np.abs(ref)))
        np.testing.assert_allclose(direct[col].to_numpy(float), ref, rtol=0, atol=atol, err_msg=col)
    assert direct.attrs["units"] == extracted.attrs["units"]


def test_truth_is_physically_consistent_and_towers_are_noisy_truth():
    world = LazyWorld(SMALL_GEO, seed=4, n_sites=20)
    truth = world.truth({"time": 30}).compute()
    land = world.cube({"time": 30})["land_mask"].values == 1
    gpp, reco, nee = (truth[n].values[:, land] for n in ("GPP", "RECO", "NEE"))
    assert (gpp >= 0).all() and (reco > 0).all()
    np.testing.assert_allclose(nee, reco - gpp, rtol=1e-5, atol=1e-6)
    sites = world.sites()
    iy, ix = world.site_cells
    true_le = truth["LE"].values[:, iy, ix].T
    measured = sites["LE"].values
    ok = np.isfinite(measured)
    assert 0.3 < ok.mean() < 0.97  # gaps
    assert np.corrcoef(measured[ok], true_le[ok])[0, 1] > 0.9
    assert set(FLUXES) <= set(sites.data_vars)


def test_same_seed_same_world_other_seed_other_world():
    a = LazyWorld(SMALL_GEO, seed=1).cube({}).TA.values
    assert np.array_equal(a, LazyWorld(SMALL_GEO, seed=1).cube({}).TA.values)
    assert not np.allclose(a, LazyWorld(SMALL_GEO, seed=2).cube({}).TA.values)


@pytest.mark.parametrize("domain", [SMALL_GEO, SMALL_BNG], ids=["lat-lon", "bng"])
def test_coarse_climate_is_one_value_per_climate_cell(domain):
    """climate_km: the weather of a coarse cell given to every fine cell inside it (nearest-neighbour
    regridding of a reanalysis); land cover and vegetation stay fine."""
    km = 300.0 if domain.geographic else 9.0
    world = LazyWorld(domain, seed=4, climate_km=km)
    cube = world.cube({"time": 5}, window={"time": slice(0, 5)}).compute()
    ydim, xdim = domain.dims
    y, x = np.meshgrid(cube[ydim].values, cube[xdim].values, indexing="ij")
    step = km / 111.32 if domain.geographic else km * 1000.0
    cell = np.floor(y / step) * 1e6 + np.floor(x / step)
    n_cells = np.unique(cell).size
    assert 1 < n_cells < cell.size / 4
    for name in ("TA", "SW_IN", "LW_IN", "VPD", "P"):
        values = cube[name].values[0]
        assert np.unique(values).size <= n_cells, name
        for c in np.unique(cell)[:20]:
            assert np.unique(values[cell == c]).size == 1, name
    land = cube["land_mask"].values == 1
    nirv = cube["NIRv"].values[0][land]
    assert np.unique(nirv).size > 2 * n_cells  # field-scale vegetation: several values per climate cell
    # The towers see what extraction from the coarse-climate cube gives.
    features = ["TA", "SW_IN", "NIRv"]
    direct = site_table(world, features, ["GPP"])
    extracted = extract_at_sites(world.cube({"time": 30}), world.sites(), features, targets=["GPP"])
    for col in features + ["GPP"]:
        ref = extracted[col].to_numpy(float)
        atol = 8 * float(np.finfo(np.float32).eps) * float(np.nanmax(np.abs(ref)))
        np.testing.assert_allclose(direct[col].to_numpy(float), ref, rtol=0, atol=atol, err_msg=col)


def test_worlds_without_coarse_climate_are_unchanged():
    """Values of a cell of the default world, recorded before climate_km existed (commit fd6b5a2):
    the option draws its waves from a separate stream and leaves other worlds alone."""
    world = LazyWorld(SMALL_BNG, seed=5)
    cell = world.cube({"time": 20}).isel(time=3, y=10, x=20).compute()
    got = {name: float(cell[name]) for name in ("TA", "SW_IN", "NIRv", "SWC")}
    assert got == pytest.approx(EXPECTED_SMALL_BNG_CELL, rel=4 * float(np.finfo(np.float32).eps))


#: TA [degC], SW_IN [W m-2], NIRv [1] and SWC [%] of cell (time 3, y 10, x 20) of SMALL_BNG, seed 5,
#: computed with uflux_xr/lazyworld.py (now uflux_xr/sources/demo/lazy.py) as of commit fd6b5a2.
EXPECTED_SMALL_BNG_CELL = {
    "TA": 15.98287296295166,
    "SW_IN": 349.4372253417969,
    "NIRv": 0.2588230073451996,
    "SWC": 32.77470397949219,
}
