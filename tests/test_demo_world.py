import numpy as np
import pytest

import uflux_xr as ux

from .conftest import SMALL_WORLD


def test_same_seed_same_world_and_other_seed_differs(world):
    again = ux.demo.make_world(seed=3, **SMALL_WORLD)
    assert again.cube.identical(world.cube)
    assert again.sites.identical(world.sites)
    other = ux.demo.make_world(seed=4, **SMALL_WORLD)
    assert not np.allclose(other.cube["TA"], world.cube["TA"])


def test_contracts(world):
    cube, sites, truth = world
    assert dict(cube["TA"].sizes) == {"time": 182, "lat": 12, "lon": 14}
    assert cube["land_mask"].dims == ("lat", "lon")
    for name in ("TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv", "IGBP", "land_mask"):
        assert "units" in cube[name].attrs, name
    assert sites["GPP"].dims == ("site", "time")
    assert {"lat", "lon", "igbp", "elevation"} <= set(sites.coords)
    assert sites["GPP"].attrs["units"] == "g m-2 d-1"
    assert {"GPP_QC", "LE_QC"} <= set(sites.data_vars)


def test_towers_on_land_and_default_network_size():
    cube, sites, _ = ux.demo.make_world(seed=0, resolution=2.0, start="2020-01-01", end="2020-01-10")
    assert sites.sizes["site"] >= 50
    land = cube["land_mask"].sel(lat=sites["lat"], lon=sites["lon"], method="nearest")
    assert bool((land == 1).all())


def test_truth_is_consistent_and_plausible(world):
    truth = world.truth
    np.testing.assert_allclose(truth["NEE"], truth["RECO"] - truth["GPP"], atol=1e-5)
    land = world.cube["land_mask"] == 1
    assert bool(truth["GPP"].where(~land).isnull().all())  # NaN over water
    gpp = truth["GPP"].where(land)
    assert 0 <= float(gpp.min()) and float(gpp.max()) < 30  # g C m-2 d-1
    # Spring greening: June GPP well above January GPP.
    assert float(gpp.sel(time="2020-06").mean()) > 3 * float(gpp.sel(time="2020-01").mean())


def test_latitudinal_temperature_gradient():
    cube = ux.demo.make_world(seed=0, resolution=2.0, start="2020-01-01", end="2020-12-31").cube
    ta = cube["TA"].where(cube["land_mask"] == 1).mean("time")
    south, north = float(ta.sel(lat=slice(35, 45)).mean()), float(ta.sel(lat=slice(60, 70)).mean())
    assert south > north + 5  # °C


def test_tower_records_have_noise_and_gaps(world):
    sites, truth = world.sites, world.truth
    missing = float(sites["GPP"].isnull().mean())
    assert 0.05 < missing < 0.5
    gap = sites["GPP"].isnull().values
    qc = sites["GPP_QC"].values
    assert (qc[gap] == 0).all() and (qc[~gap] >= 0.5).all()
    at_tower = truth["GPP"].sel(lat=sites["lat"], lon=sites["lon"], method="nearest")
    err = (sites["GPP"] - at_tower).values
    assert 0.2 < np.nanstd(err) < 2.0  # measurement noise present but not overwhelming


def test_bad_domain_rejected():
    with pytest.raises(ValueError, match="resolution must be positive"):
        ux.demo.make_world(resolution=0)
