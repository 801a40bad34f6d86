"""Explanations: additive terms per row, maps of the leading driver, importance tables.

Tolerances: terms are summed in float64 from float32 model outputs, so a row's terms match the
float32 prediction to 1e-5 relative (XGBoost and LightGBM compute SHAP in float32, about 7 digits);
maps are float32 means of float64 sums, compared across chunkings to 1e-5 relative.
"""

from __future__ import annotations

import importlib
import pickle

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux

from .conftest import FEATURES

ex = importlib.import_module("uflux_xr.grid.explain")

#: Rows sum to the model's float32 prediction within this (relative to the prediction's spread).
SUM_RTOL = 1e-5


def _known_driver_world(seed: int = 0):
    """A cube whose sensible heat has a known cause per half: H = 2 (TA - 15) + 3 (VPD - 8) + 5 [W m-2].

    TA varies (sd 5 degC) only in the western half and VPD (sd 3 hPa) only in the eastern half; SWC varies
    everywhere and does nothing.  So TA must lead in the west, VPD in the east, and SWC nowhere.
    """
    rng = np.random.default_rng(seed)
    nt, ny, nx = 60, 6, 8
    west = np.arange(nx) < nx // 2
    # Normal anomalies cut at 2.5 sd, so that VPD stays positive (the plausibility check of the door).
    ta = 15.0 + 5.0 * np.clip(rng.standard_normal((nt, ny, nx)), -2.5, 2.5) * west
    vpd = 8.0 + 3.0 * np.clip(rng.standard_normal((nt, ny, nx)), -2.5, 2.5) * ~west
    swc = rng.uniform(10.0, 40.0, (nt, ny, nx))
    h = 2.0 * (ta - 15.0) + 3.0 * (vpd - 8.0) + 5.0
    coords = {
        "time": pd.date_range("2021-05-01T12:00", periods=nt, freq="D"),
        "lat": 50.0 - np.arange(ny),
        "lon": 5.0 + np.arange(nx),
    }
    dims = ("time", "lat", "lon")
    cube = xr.Dataset(
        {
            "TA": (dims, ta.astype(np.float32), {"units": "degC"}),
            "VPD": (dims, vpd.astype(np.float32), {"units": "hPa"}),
            "SWC": (dims, swc.astype(np.float32), {"units": "%"}),
            "land_mask": (("lat", "lon"), np.ones((ny, nx), dtype=np.int8), {"units": "1"}),
        },
        coords=coords,
    )
    table = pd.DataFrame({"TA": ta.ravel(), "VPD": vpd.ravel(), "SWC": swc.ravel(), "H": h.ravel()})
    table["site"] = np.tile(np.arange(ny * nx), nt).astype(str)
    table.attrs["units"] = {"TA": "degC", "VPD": "hPa", "SWC": "%", "H": "W m-2"}
    return cube, table, west


@pytest.fixture(scope="module")
def known():
    cube, table, west = _known_driver_world()
    models = {
        "xgboost": ux.train(table, "H", ["TA", "VPD", "SWC"], model="xgboost", n_estimators=150),
        "deepforest": ux.train(table, "H", ["TA", "VPD", "SWC"], model="deepforest", n_estimators=1, n_trees=40),
    }
    return cube, table, west, models


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm", "random_forest", "deepforest"])
def test_terms_sum_to_the_prediction(table, kind):
    params = {"n_estimators": 30} if kind != "deepforest" else {"n_estimators": 1, "n_trees": 30, "max_layers": 2}
    model = ux.train(table, "GPP", FEATURES, model=kind, **params)
    rows = table.dropna(subset=FEATURES).head(400)
    terms = ux.contributions(model, rows, background=table)
    assert list(terms.columns[: len(FEATURES)]) == FEATURES and terms.columns[len(FEATURES)] == "bias"
    pred = model.predict(rows)
    np.testing.assert_allclose(terms.sum(axis=1), pred, rtol=0, atol=SUM_RTOL * np.ptp(pred))
    if kind in ("xgboost", "lightgbm"):  # exact TreeSHAP of the model itself: nothing left unexplained
        assert "unexplained" not in terms and terms.attrs["method"].startswith("TreeSHAP")
    else:  # a surrogate: its fidelity is reported and what it misses stays small next to the drivers
        assert terms.attrs["surrogate_r2"] > 0.95
        drivers = terms[FEATURES].abs().sum(axis=1).mean()
        assert terms["unexplained"].abs().mean() < 0.15 * drivers


@pytest.mark.parametrize("residual", ["additive", "multiplicative"])
def test_hybrid_terms_hold_the_baseline_and_sum(table, residual):
    model = ux.train(
        table, "RECO", FEATURES, model="xgboost", baseline="lloyd_taylor", residual=residual, n_estimators=30
    )
    rows = table.dropna(subset=FEATURES).head(300)
    terms = ux.contributions(model, rows)
    pred = model.predict(rows)
    np.testing.assert_allclose(terms.sum(axis=1), pred, rtol=0, atol=SUM_RTOL * np.ptp(pred))
    X = rows[model.features].to_numpy(np.float32)
    np.testing.assert_allclose(terms["baseline"], model.baseline_values(X), rtol=1e-6)


def test_rows_with_a_missing_feature_get_nan(table, small_models):
    model = small_models["xgboost"]["GPP"]
    rows = table.dropna(subset=FEATURES).head(5).copy()
    rows.iloc[2, rows.columns.get_loc("TA")] = np.nan
    terms = ux.contributions(model, rows)
    assert terms.iloc[2].isna().all() and terms.drop(index=rows.index[2]).notna().all().all()


@pytest.mark.parametrize("kind", ["xgboost", "deepforest"])
def test_contributions_recover_a_known_additive_function(known, kind):
    """TreeSHAP of an additive function is each feature's own effect: 2 (TA - 15) and 3 (VPD - 8) up to a constant."""
    cube, table, west, models = known
    terms = ux.contributions(models[kind], table, background=table)
    # The cascade forest is explained through a surrogate of itself, one approximation more: 0.95 (measured 0.966).
    floor = 0.97 if kind == "xgboost" else 0.95
    for feature, slope, centre in (("TA", 2.0, 15.0), ("VPD", 3.0, 8.0)):
        truth = slope * (table[feature] - centre)
        assert np.corrcoef(terms[feature], truth)[0, 1] > floor
    assert terms["SWC"].abs().mean() < 0.1 * terms["TA"].abs().mean()


@pytest.mark.parametrize("kind", ["xgboost", "deepforest"])
def test_leading_driver_map_and_importance_table(known, kind):
    cube, table, west, models = known
    maps = ux.explain({"0": {"H": models[kind]}}, cube, background=table).compute()
    drivers = maps["H_leading_driver"].attrs["flag_meanings"].split()
    leading = np.array(drivers)[maps["H_leading_driver"].values]
    assert (leading[:, west] == "TA").all() and (leading[:, ~west] == "VPD").all()
    assert int(maps["H_n_steps"].min()) == cube.sizes["time"]
    # Mean |effect| on its own half: 2 x 5 x sqrt(2/pi) for TA and 3 x 3 x sqrt(2/pi) for VPD, so shares 10:9.
    importance = ux.importance_table(maps).set_index("term")
    assert importance.loc["TA", "share"] == pytest.approx(100 * 10 / 19, abs=5)
    assert importance.loc["VPD", "share"] == pytest.approx(100 * 9 / 19, abs=5)
    assert importance.loc["SWC", "share"] < 5.0 and importance.loc["SWC", "rank"] == 3
    assert importance.loc["TA", "leading_area"] == pytest.approx(50.0) and pd.isna(importance.loc["bias", "share"])


def test_maps_sum_to_the_unclipped_ensemble_mean_and_ignore_chunking(world, table, small_models):
    """Summed over terms, the period-mean maps equal the period mean of the ensemble-mean prediction; LE is never
    clipped, so the upscaler's product is the reference.  Two chunkings give the same maps."""
    members = {k: {"LE": v["LE"]} for k, v in small_models.items()}
    period = ("2020-03-01", "2020-04-30")
    maps = ux.explain(members, world.cube, period=period, chunks={"time": 7, "lat": 5, "lon": 6}).compute()
    other = ux.explain(members, world.cube, period=period, chunks={"time": 61}).compute()
    xr.testing.assert_allclose(maps, other, rtol=1e-5)
    thinned = ux.explain(members, world.cube, period=period, every=3).compute()
    direct = ux.explain(members, world.cube.sel(time=slice(*period)).isel(time=slice(None, None, 3))).compute()
    assert int(thinned["LE_n_steps"].max()) == 21  # 61 days, one in every 3
    xr.testing.assert_allclose(thinned.drop_attrs(), direct.drop_attrs(), rtol=1e-5)
    product = ux.upscale(members, world.cube.sel(time=slice(*period)), derived=False)
    expected = product["LE"].mean(("member", "time")).values
    got = maps["LE_contribution"].sum("LE_term").where(maps["LE_n_steps"] > 0).values
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3, equal_nan=True)
    land = world.cube["land_mask"].values == 1
    assert (maps["LE_leading_driver"].values[~land] == -1).all() and (maps["LE_leading_driver"].values[land] >= 0).all()


def test_explain_errors_name_the_problem(world, small_models, table):
    members = {k: {"GPP": v["GPP"]} for k, v in small_models.items()}
    with pytest.raises(ux.ExplainError, match="holds no time step"):
        ux.explain(members, world.cube, period=("2031-01-01", "2031-02-01"))
    with pytest.raises(ux.ExplainError, match="every must be a positive integer"):
        ux.explain(members, world.cube, every=0)
    with pytest.raises(ux.ExplainError, match=r"no model of \['H'\]"):
        ux.explain(members, world.cube, fluxes=["H"])
    forest = ux.train(table, "GPP", FEATURES, model="random_forest", n_estimators=5)
    with pytest.raises(ux.ExplainError, match="at least 50"):
        ux.contributions(forest, table.dropna(subset=FEATURES).head(10))


def test_implausible_predictors_stop_the_explanation(known):
    cube, table, west, models = known
    kelvin = cube.assign(TA=cube["TA"] + 273.15)  # Kelvin labelled degC: the unit error the door must catch
    with pytest.raises(ux.PlausibilityError, match="TA"):
        ux.explain({"0": {"H": models["xgboost"]}}, kelvin).compute()


def test_surrogate_travels_to_workers_as_its_model_string(table):
    forest = ux.train(table, "GPP", FEATURES, model="random_forest", n_estimators=5)
    rows = table.dropna(subset=FEATURES)
    surrogate = ex.fit_surrogate(forest, rows[FEATURES].to_numpy(np.float32))
    copy = pickle.loads(pickle.dumps(surrogate))
    X = rows[FEATURES].to_numpy(np.float32)[:50]
    assert np.array_equal(copy.contributions(X), surrogate.contributions(X)) and copy.r2 == surrogate.r2
