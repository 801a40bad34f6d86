import numpy as np
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.grid.features import resolve_features
from uflux_xr.grid.upscale import normalize_ensemble, predict_block

from .conftest import FEATURES, assert_product_matches_table, raise_if_dask_computes


def test_upscale_is_lazy(world, small_models):
    cube = world.cube.chunk({"time": 40})
    with raise_if_dask_computes():
        product = ux.upscale(small_models, cube)
    assert all(v.chunks is not None for v in product.data_vars.values())
    assert product["GPP"].dims == ("member", "time", "lat", "lon")
    assert list(product["member"].values) == ["xgboost", "lightgbm"]
    assert {"GPP", "RECO", "LE", "NEE_RECO_GPP", "ET"} == set(product.data_vars)


def test_numpy_and_dask_paths_agree_under_two_chunkings(world, small_models):
    model = small_models["xgboost"]["GPP"]
    cube = world.cube
    arrays = [
        np.broadcast_to(
            a.transpose(*[d for d in ("time", "lat", "lon") if d in a.dims]).values.reshape(
                [cube.sizes[d] if d in a.dims else 1 for d in ("time", "lat", "lon")]
            ),
            (cube.sizes["time"], cube.sizes["lat"], cube.sizes["lon"]),
        )
        for a in resolve_features(cube, FEATURES).values()
    ]
    mask = (cube["land_mask"].values == 1)[None]
    reference = predict_block(*arrays, mask, model=model, n_features=len(FEATURES))
    for chunks in ({"time": 17}, {"time": 64, "lat": 5, "lon": 4}):
        product = ux.upscale({"GPP": [model]}, cube.chunk(chunks), derived=False)
        np.testing.assert_allclose(product["GPP"].isel(member=0).values, reference, rtol=1e-5, equal_nan=True)


def test_product_matches_model_predict_on_extracted_table(world, table, small_models):
    model = small_models["lightgbm"]["RECO"]
    product = ux.upscale({"RECO": [model]}, world.cube, derived=False).compute()
    assert_product_matches_table(product, "RECO", model, world, table)


def test_masked_cells_are_nan_and_land_is_filled(world, small_models):
    product = ux.upscale(small_models, world.cube).compute()
    land = world.cube["land_mask"] == 1
    for name in product.data_vars:
        assert bool(product[name].where(~land).isnull().all()), name
        assert bool(product[name].where(land).notnull().sum() > 0), name
    custom = xr.zeros_like(world.cube["land_mask"], dtype=bool)
    custom[0, 0] = True
    one = ux.upscale({"GPP": [small_models["xgboost"]["GPP"]]}, world.cube, mask=custom).compute()
    assert int(one["GPP"].notnull().sum()) == world.cube.sizes["time"]


def test_derived_variables(world, small_models):
    p = ux.upscale(small_models, world.cube).compute()
    np.testing.assert_allclose(p["NEE_RECO_GPP"], p["RECO"] - p["GPP"], rtol=1e-6)
    lam = (2.501 - 0.002361 * world.cube["TA"]) * 1e6
    np.testing.assert_allclose(p["ET"], p["LE"] * 86400 / lam, rtol=1e-5)
    assert p["ET"].attrs["units"] == "kg m-2 d-1"
    assert p["GPP"].attrs["standard_name"] == "gross_primary_productivity_of_biomass_expressed_as_carbon"
    assert "standard_name" not in p["RECO"].attrs  # no attributes inherited from the predictors
    assert "DW-" in p.attrs["uflux_training_sites"]


def test_models_from_paths_and_ensemble_forms(world, small_models):
    paths = {flux: [m.path] for flux, m in small_models["xgboost"].items()}
    by_path = ux.upscale(paths, world.cube, derived=False)
    by_obj = ux.upscale([small_models["xgboost"][f] for f in ("GPP", "RECO", "LE")], world.cube, derived=False)
    xr.testing.assert_allclose(by_path["GPP"].compute(), by_obj["GPP"].compute())
    with pytest.raises(ValueError, match="one model per flux"):
        normalize_ensemble([small_models["xgboost"]["GPP"], small_models["lightgbm"]["GPP"]])
    with pytest.raises(ValueError, match="same fluxes"):
        normalize_ensemble({"a": {"GPP": small_models["xgboost"]["GPP"]}, "b": {"LE": small_models["xgboost"]["LE"]}})


def test_bad_cube_errors(world, small_models):
    with pytest.raises(KeyError, match="not found in the cube"):
        ux.upscale(small_models, world.cube.drop_vars("NIRv"))
    kelvin = world.cube.assign(TA=(world.cube["TA"] + 273.15).assign_attrs(units="K"))
    with pytest.raises(ValueError, match="predictor cube: feature 'TA' is in 'K'"):
        ux.upscale(small_models, kelvin)
    with pytest.raises(KeyError, match="mask variable 'sea'"):
        ux.upscale(small_models, world.cube, mask="sea")


@pytest.mark.slow
def test_local_cluster_matches_threaded(world, small_models, tmp_path):
    distributed = pytest.importorskip("distributed")
    cube_path = tmp_path / "cube.zarr"
    world.cube.chunk({"time": 60}).to_zarr(cube_path, zarr_format=3, consolidated=False)
    cube = xr.open_zarr(cube_path, consolidated=False)
    threaded = ux.upscale(small_models, cube).compute()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        with distributed.Client(lc):
            clustered = ux.upscale(small_models, cube).compute()
            unsaved = ux.train(
                ux.extract_at_sites(world.cube, world.sites, FEATURES, targets=["GPP"]),
                "GPP",
                FEATURES,
                model="lightgbm",
                n_estimators=5,
            )
            with pytest.raises(ValueError, match="save it"):
                ux.upscale({"GPP": [unsaved]}, cube)
    xr.testing.assert_allclose(threaded, clustered)


def test_gpp_and_reco_products_are_never_negative(world, table):
    """Negative GPP predictions become 0 (stored as -0.0) and are counted; NEE keeps its sign."""
    from uflux_xr.grid.upscale import count_clipped

    from .conftest import FEATURES

    shifted = table.assign(GPP=table["GPP"] - 2.0)  # a model that predicts below 0 in winter
    model = ux.train(shifted, "GPP", FEATURES, model="xgboost", n_estimators=20)
    nee = ux.train(table, "NEE", FEATURES, model="xgboost", n_estimators=20)
    product = ux.upscale({"GPP": [model], "NEE": [nee]}, world.cube).compute()
    assert int((product["GPP"] < 0).sum()) == 0
    raw = model.predict(table).reshape(world.sites.sizes["site"], world.sites.sizes["time"])
    at_towers = product["GPP"].isel(member=0).sel(lat=world.sites["lat"], lon=world.sites["lon"], method="nearest")
    at_towers = at_towers.transpose("site", "time").values
    # the cells set to 0 are those where the model predicts below 0 (signs compared away from 0:
    # float32 predictions through two code paths)
    clear = np.abs(raw) > 1e-5
    assert (raw[clear] < 0).sum() > 100
    np.testing.assert_array_equal(np.signbit(at_towers)[clear], (raw < 0)[clear])
    np.testing.assert_array_equal(at_towers[clear & (raw < 0)], 0.0)
    assert count_clipped(product["GPP"]) == int(np.signbit(product["GPP"].values).sum())
    assert "set to 0" in product["GPP"].attrs["comment"]
    assert int((product["NEE"] < 0).sum()) > 0  # NEE is a net flux and keeps its sign
