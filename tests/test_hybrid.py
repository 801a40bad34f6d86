"""Hybrid models: the shared physics by hand, baseline parameters recovered where the truth has them,
no leakage of held-out towers into the parameters, and the model file."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.core import physics
from uflux_xr.grid.validate import cross_validate
from uflux_xr.models.hybrid import BaselineError, fit_baseline, residual_weight, resolve_residual
from uflux_xr.sources.demo.eager import ALTERNATIVE_Q10
from uflux_xr.workflow.config import ConfigError, load_config

from .conftest import REPO

DEMO_FEATURES = ["TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv", "IGBP", "DOY_SIN", "DOY_COS"]


def test_physics_forms_by_hand():
    # Lloyd & Taylor (1994): 1 at 10 °C; at 20 °C, exp(309 (1/56.02 - 1/66.02)) = exp(0.83551) = 2.3059.
    assert physics.lloyd_taylor(10.0) == pytest.approx(1.0)
    assert physics.lloyd_taylor(20.0) == pytest.approx(np.exp(309.0 * (1 / 56.02 - 1 / 66.02)), rel=1e-12)
    assert physics.lloyd_taylor(20.0) == pytest.approx(2.3059, abs=1e-4)
    assert physics.q10_response(30.0, 2.0) == pytest.approx(4.0)
    # FAO-56 example 3 (T = 25 °C): Δ = 0.189 kPa K-1.
    assert physics.slope_saturation_vapour_pressure(25.0) == pytest.approx(0.189, abs=5e-4)
    # Priestley-Taylor at 25 °C, 100 W m-2: 1.26 × 0.1888 / (0.1888 + 0.0665) × 100 = 93.2 W m-2.
    delta = physics.slope_saturation_vapour_pressure(25.0)
    assert physics.priestley_taylor(delta, 100.0) == pytest.approx(1.26 * delta / (delta + 0.0665) * 100.0)
    assert physics.priestley_taylor(delta, -20.0) == 0.0
    assert physics.temperature_scalar(np.array([-2.0, 5.0, 12.0, 30.0, 35.0, 40.0])) == pytest.approx(
        [0.0, 0.5, 1.0, 1.0, 0.5, 0.0]
    )
    assert physics.rectangular_hyperbola(np.array([0.0, 10.0]), 2.0, 20.0) == pytest.approx([0.0, 10.0])
    assert physics.rectangular_hyperbola(0.0, 0.0, 0.0) == 0.0  # water cells: no 0/0


def _drivers(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "TA": rng.uniform(-10, 30, n),
            "SW_IN": rng.uniform(0, 350, n),
            "VPD": rng.uniform(0, 40, n),
            "SWC": rng.uniform(5, 45, n),
            "NIRv": rng.uniform(0.02, 0.4, n),
        }
    )


def test_baselines_recover_the_parameters_of_noise_free_data():
    d = _drivers()
    gpp = physics.lue_gpp(
        1.7,
        physics.absorbed_par(d.SW_IN, physics.fapar_from_nirv(d.NIRv)),
        physics.temperature_scalar(d.TA, t_opt=15.0),
        physics.vpd_scalar(d.VPD, span=25.0),
        physics.water_scalar(d.SWC),
    )
    fit = fit_baseline("lue", d, gpp.to_numpy(), "GPP", list(d.columns))
    assert fit.parameters == pytest.approx({"epsilon": 1.7, "t_opt": 15.0, "vpd_span": 25.0}, rel=1e-4)
    reco = (0.8 + 5.0 * d.NIRv) * physics.lloyd_taylor(d.TA, 250.0) * (0.4 + 0.6 * physics.water_scalar(d.SWC))
    fit = fit_baseline("lloyd_taylor", d, reco.to_numpy(), "RECO", ["TA", "SWC", "NIRv"])
    assert fit.parameters == pytest.approx({"r_ref": 0.8, "r_nirv": 5.0, "e0": 250.0, "water_weight": 0.6}, rel=1e-4)
    assert fit.rmse < 1e-6


def test_priestley_taylor_recovers_its_water_and_green_canopy_weights():
    d = _drivers()
    d["LW_IN"] = np.random.default_rng(2).uniform(250, 400, len(d))
    rn = physics.net_radiation(d.SW_IN, d.LW_IN, d.TA, 0.2)
    pt = physics.priestley_taylor(physics.slope_saturation_vapour_pressure(d.TA), 0.95 * rn, 1.26)
    green = physics.fapar_from_nirv(d.NIRv) / physics.FAPAR_MAX  # PT-JPL's green canopy fraction
    le = pt * (0.3 + 0.7 * physics.water_scalar(d.SWC)) * (0.4 + 0.6 * green)
    fit = fit_baseline("priestley_taylor", d, le.to_numpy(), "LE", ["SW_IN", "TA", "LW_IN", "SWC", "NIRv"])
    expected = {"alpha": 1.26, "albedo": 0.2, "water_weight": 0.7, "vegetation_weight": 0.6}
    assert fit.parameters == pytest.approx(expected, rel=1e-4)
    without = fit_baseline("priestley_taylor", d, le.to_numpy(), "LE", ["SW_IN", "TA", "LW_IN", "SWC"])
    assert "vegetation_weight" not in without.parameters and without.rmse > 10 * fit.rmse


def test_peak_greenness_scales_the_basal_respiration_and_the_light_use_efficiency():
    d = _drivers()
    d["NIRv_MAX"] = np.repeat(np.linspace(0.1, 0.45, 30), 100)  # 30 site-years
    d["NIRv"] = d["NIRv_MAX"] * np.random.default_rng(1).uniform(0.2, 1.0, len(d))  # the season's share of it
    # GPP with an efficiency rising with the canopy's peak greenness (Ollinger et al. 2008).
    apar = physics.absorbed_par(d.SW_IN, physics.fapar_from_nirv(d.NIRv))
    f_t, f_vpd = physics.temperature_scalar(d.TA, t_opt=15.0), physics.vpd_scalar(d.VPD, span=25.0)
    gpp = physics.lue_gpp(0.9 + 3.0 * d.NIRv_MAX, apar, f_t, f_vpd, physics.water_scalar(d.SWC))
    features = ["SW_IN", "TA", "VPD", "SWC", "NIRv", "NIRv_MAX"]
    fit = fit_baseline("lue", d, gpp.to_numpy(), "GPP", features, groups=np.repeat(np.arange(30), 100))
    expected = {"epsilon": 0.9, "epsilon_nirv_max": 3.0, "t_opt": 15.0, "vpd_span": 25.0}
    assert fit.parameters == pytest.approx(expected, rel=1e-4)
    assert "epsilon_nirv_max" not in fit_baseline("lue", d, gpp.to_numpy(), "GPP", features[:-1]).parameters
    # Migliavacca et al. (2011): the basal rate scales with the site-year's peak LAI, not today's.
    reco = (0.6 + 6.5 * d.NIRv_MAX) * physics.lloyd_taylor(d.TA, 280.0)
    fit = fit_baseline("lloyd_taylor", d, reco.to_numpy(), "RECO", ["TA", "NIRv_MAX"])  # without NIRv too
    assert fit.drivers == ["TA", "NIRv_MAX"]
    assert fit.parameters == pytest.approx({"r_ref": 0.6, "r_nirv": 6.5, "e0": 280.0}, rel=1e-4)
    both = fit_baseline("lloyd_taylor", d, reco.to_numpy(), "RECO", ["TA", "NIRv", "NIRv_MAX"])
    assert both.parameters["r_nirv"] == pytest.approx(6.5, rel=1e-4)  # the peak, not the day's NIRv
    today = fit_baseline("lloyd_taylor", d, reco.to_numpy(), "RECO", ["TA", "NIRv"])
    assert today.rmse > 0.1 * float(np.std(reco))  # the day's NIRv cannot carry the peak's scale


def test_nee_respiration_is_fitted_on_the_nights_where_there_are_enough():
    # Half-hourly NEE whose daytime uptake follows a light and temperature response that the LUE
    # form does not have (a rectangular hyperbola with a Gaussian temperature optimum): fitted on
    # all rows at once, the respiration term bends to absorb it; fitted on the nights (SW_IN < 10,
    # where NEE is respiration alone) it keeps the truth's E0 and R_ref.
    rng = np.random.default_rng(3)
    hours = np.arange(90 * 48) / 2.0
    day_of_year = 120 + hours / 24
    ta = 10 + 8 * np.sin(2 * np.pi * (day_of_year - 100) / 365) + 6 * np.sin(2 * np.pi * (hours - 9) / 24)
    ta = ta + rng.normal(0, 1.5, ta.size)
    sw_in = np.maximum(0.0, 850 * np.sin(2 * np.pi * (hours - 6) / 24)) * rng.uniform(0.4, 1.0, ta.size)
    vpd = np.maximum(0.5, 0.5 * (ta + 3))
    apar = physics.absorbed_par(sw_in, 0.9)
    uptake = physics.rectangular_hyperbola(apar, 1.0, 25.0) * physics.gaussian_temperature_scalar(ta, 18.0, 6.0)
    nee = 3.5 * physics.lloyd_taylor(ta, 220.0) - uptake + rng.normal(0, 0.3, ta.size)
    columns = {"SW_IN": sw_in, "TA": ta, "VPD": vpd}
    fit = fit_baseline("lue_lloyd_taylor", columns, nee, "NEE", list(columns))
    assert fit.fit == "night-time respiration"
    assert fit.parameters["e0"] == pytest.approx(220.0, rel=0.10)
    assert fit.parameters["r_ref"] == pytest.approx(3.5, rel=0.10)
    # Daily rows have no nights: both terms are fitted together, as before.
    daily = {k: v.reshape(-1, 48).mean(axis=1) for k, v in columns.items()}
    assert fit_baseline("lue_lloyd_taylor", daily, nee.reshape(-1, 48).mean(axis=1), "NEE", list(daily)).fit == "pooled"


def _respiration_table(world):
    table = ux.extract_at_sites(world.cube, world.sites, DEMO_FEATURES, targets=["RECO", "RECO_QC"])
    return table[table["RECO_QC"] >= 0.5].dropna(subset=[*DEMO_FEATURES, "RECO"])


@pytest.mark.parametrize(
    ("forms", "baseline", "parameter", "truth"),
    [("standard", "lloyd_taylor", "e0", 309.0), ("alternative", "q10", "q10", ALTERNATIVE_Q10)],
)
def test_demo_world_respiration_sensitivity_recovered_within_10_percent(forms, baseline, parameter, truth):
    # The demo truth's respiration is its reference rate x the temperature response x a soil-water factor, plus
    # 12 % of GPP; the towers measure it with noise.  Fitted within sites (a free reference rate per tower),
    # the sensitivity is what the world was made with, within the 10 %.
    world = ux.demo.make_world(1, resolution=1.0, n_sites=40, process_forms=forms)
    table = _respiration_table(world)
    fit = fit_baseline(baseline, table, table["RECO"].to_numpy(), "RECO", DEMO_FEATURES, groups=table["site"])
    assert fit.fit == "within-site"
    assert fit.parameters[parameter] == pytest.approx(truth, rel=0.10)


def test_baseline_parameters_never_see_the_held_out_towers(world):
    # Leave-one-site-out with a hybrid model: multiplying the held-out tower's fluxes by 10 must not change a
    # single prediction for it.  A baseline fitted on all rows (leakage) would change them.
    features = ["TA", "SW_IN", "VPD", "SWC", "NIRv", "IGBP"]
    table = ux.extract_at_sites(world.cube, world.sites, features, targets=["RECO"]).dropna()
    held = sorted(table["site"].unique())[:3]
    kwargs = dict(cv="kfold", n_splits=len(table["site"].unique()), baseline="lloyd_taylor", n_estimators=20, n_jobs=1)
    reference = cross_validate(table, "RECO", features, "xgboost", fold_jobs=1, **kwargs).predictions
    for site in held:
        changed = table.copy()
        changed.loc[changed["site"] == site, "RECO"] *= 10.0
        again = cross_validate(changed, "RECO", features, "xgboost", fold_jobs=1, **kwargs).predictions
        mine = again["site"] == site
        assert np.array_equal(again.loc[mine, "pred"].to_numpy(), reference.loc[mine, "pred"].to_numpy())
        assert not np.array_equal(again["pred"].to_numpy(), reference["pred"].to_numpy())  # the others did see it


def test_hybrid_model_file_round_trip(world, tmp_path):
    features = ["TA", "SW_IN", "VPD", "SWC", "NIRv", "IGBP"]
    table = ux.extract_at_sites(world.cube, world.sites, features, targets=["RECO", "GPP"])
    for target, kind in (("RECO", "xgboost"), ("GPP", "lightgbm")):
        model = ux.train(table, target, features, kind, baseline="auto", n_estimators=20)
        assert model.baseline.residual == ("multiplicative" if target == "RECO" else "additive")
        path = model.save(tmp_path / f"{target}.uxm")
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("metadata.json"))
        assert meta["format_version"] == 2 and meta["baseline"]["parameters"] == model.baseline.parameters
        again = ux.load_model(path)
        X = table[features].dropna().to_numpy(np.float32)
        assert np.array_equal(again.predict_array(X), model.predict_array(X))
        baseline, trees = again.predict_parts(X)
        combined = baseline * trees if target == "RECO" else baseline + trees
        np.testing.assert_array_equal(combined.astype(np.float32), again.predict_array(X))  # same arithmetic
    plain = ux.train(table, "GPP", features, "xgboost", n_estimators=5)
    with zipfile.ZipFile(plain.save(tmp_path / "plain.uxm")) as zf:
        assert json.loads(zf.read("metadata.json"))["format_version"] == 1  # readable by older uflux-xr


def test_hybrid_errors_name_what_is_missing(world):
    table = ux.extract_at_sites(world.cube, world.sites, ["TA", "SWC"], targets=["GPP", "RECO"])
    with pytest.raises(
        BaselineError, match=r"lue baseline .* needs \['SW_IN', 'TA', 'VPD'\].*missing \['SW_IN', 'VPD'\]"
    ):
        ux.train(table, "GPP", ["TA", "SWC"], "xgboost", baseline="auto")
    with pytest.raises(BaselineError, match="unknown baseline 'arrhenius'"):
        ux.train(table, "RECO", ["TA", "SWC"], "xgboost", baseline="arrhenius")
    wrong = table.copy()
    wrong.attrs["units"] = {**table.attrs.get("units", {}), "TA": "K"}
    with pytest.raises(BaselineError, match=r"needs TA in 'degC'; the table has it in 'K'"):
        ux.train(wrong, "RECO", ["TA", "SWC"], "xgboost", baseline="lloyd_taylor")
    with pytest.raises(BaselineError, match="sample_weight"):
        resolve_residual("multiplicative", "lloyd_taylor", weights_supported=False)
    assert resolve_residual("auto", "lloyd_taylor", weights_supported=False) == "additive"


def test_upscaled_hybrid_writes_baseline_and_residual_layers(world):
    features = ["TA", "SW_IN", "VPD", "SWC", "NIRv", "IGBP"]
    table = ux.extract_at_sites(world.cube, world.sites, features, targets=["RECO", "LE"])
    hybrid = ux.train(table, "RECO", features, "xgboost", baseline="auto", n_estimators=20)
    pure = ux.train(table, "RECO", features, "lightgbm", n_estimators=20)
    product = ux.upscale({"hybrid": {"RECO": hybrid}, "pure": {"RECO": pure}}, world.cube, chunks={"time": 40})
    assert json.loads(product.attrs["uflux_baselines"])["hybrid RECO"]["form"] == "lloyd_taylor"
    product = product.compute()
    land = world.cube["land_mask"].values == 1
    baseline = product["RECO_baseline"].sel(member="hybrid").values
    assert np.isfinite(baseline[:, land]).all() and np.isnan(baseline[:, ~land]).all()
    assert np.isnan(product["RECO_baseline"].sel(member="pure").values).all()
    # The same float32 baseline as the model's own, at every land cell of the first days.
    X = np.stack([world.cube[f].broadcast_like(world.cube["TA"]).values[:5][:, land].ravel() for f in features], axis=1)
    expected, _ = hybrid.predict_parts(X.astype(np.float32))
    np.testing.assert_array_equal(baseline[:5][:, land].ravel(), expected)
    # residual = prediction - baseline, as float32 arithmetic of the stored layers
    total = product["RECO"].sel(member="hybrid").values
    np.testing.assert_array_equal(product["RECO_residual"].sel(member="hybrid").values, (total - baseline))


def test_config_hybrid_models(tmp_path):
    text = (REPO / "configs" / "demo.yaml").read_text()
    hybrid = text.replace("  - name: lightgbm\n", "  - name: lightgbm\n    baseline: auto\n")
    path = tmp_path / "hybrid.yaml"
    path.write_text(hybrid)
    models = {m.name: m for m in load_config(path).ensemble.models}
    assert models["lightgbm"].train_options == {"baseline": "auto", "residual": "auto"}
    assert models["xgboost"].train_options == {}
    path.write_text(text.replace("  - name: lightgbm\n", "  - name: lightgbm\n    baseline: arrhenius\n"))
    with pytest.raises(ConfigError, match=r"models\[1\].baseline: unknown baseline 'arrhenius'"):
        load_config(path)
    # the cascade forest takes none of LightGBM's hyper-parameters: the hybrid line goes without them
    lightgbm = "  - name: lightgbm\n    params: {n_estimators: 150, learning_rate: 0.1, num_leaves: 31}\n"
    path.write_text(text.replace(lightgbm, "  - name: hybrid\n"))
    assert {m.name: m.baseline for m in load_config(path).ensemble.models}["hybrid"] == "auto"
    assert load_config(path).applicability.hybrid_residual == "keep"  # the default: the plain hybrid
    path.write_text(text.replace("applicability: {regions: IGBP}", "applicability: {hybrid_residual: maybe}"))
    with pytest.raises(ConfigError, match="applicability.hybrid_residual: expected fade or keep, got 'maybe'"):
        load_config(path)


def test_deduplicated_hybrid_predictions_equal_plain_ones(world):
    # Deduplication predicts each row of equal tree-interval codes once.  The baseline is a smooth function
    # of its drivers, so rows with equal codes but different TA must still get their own baseline.
    from uflux_xr.grid.upscale import predict_block

    features = ["TA", "SW_IN", "VPD", "SWC", "NIRv", "IGBP"]
    table = ux.extract_at_sites(world.cube, world.sites, features, targets=["RECO", "GPP"])
    X = table[features].dropna().to_numpy(np.float32)[:400]
    nudged = X.copy()
    nudged[:, 0] += np.float32(1e-3)  # a thousandth of a degree: the same tree intervals, another baseline
    rows = np.concatenate([X, nudged])
    for target, kind in (("RECO", "xgboost"), ("GPP", "lightgbm")):
        model = ux.train(table, target, features, kind, baseline="auto", n_estimators=20)
        blocks = [rows[:, i] for i in range(len(features))] + [np.ones(len(rows), dtype=bool)]
        plain = predict_block(*blocks, model=model, n_features=len(features), dedup=False)
        deduplicated = predict_block(*blocks, model=model, n_features=len(features), dedup=True)
        np.testing.assert_array_equal(deduplicated, plain)
        np.testing.assert_array_equal(plain, model.predict_array(rows))
        assert not np.array_equal(plain[:400], plain[400:])  # the nudge moved the baselines


def test_residual_weight_keeps_the_trees_inside_the_aoa_and_fades_them_beyond():
    di = np.array([0.1, 0.5, 1.0, 2.0, np.nan])
    expected = [1.0, 1.0, 0.5, 0.25, 1.0]  # by hand: threshold / DI beyond the threshold 0.5, 1 where DI is unknown
    np.testing.assert_array_equal(residual_weight(di, 0.5), expected)
    as_xarray = residual_weight(xr.DataArray(di, dims="cell"), 0.5)
    assert isinstance(as_xarray, xr.DataArray)
    np.testing.assert_array_equal(as_xarray.values, expected)
    with pytest.raises(ValueError, match="threshold must be positive"):
        residual_weight(di, 0.0)


def test_a_faded_hybrid_tends_to_its_baseline(world):
    features = ["TA", "SW_IN", "VPD", "SWC", "NIRv", "IGBP"]
    table = ux.extract_at_sites(world.cube, world.sites, features, targets=["RECO", "GPP"]).dropna(subset=features)
    rows = table.iloc[:500]
    X = rows[features].to_numpy(np.float32)
    for target, kind in (("RECO", "xgboost"), ("GPP", "lightgbm")):  # multiplicative and additive residuals
        model = ux.train(table, target, features, kind, baseline="auto", n_estimators=20)
        baseline, _ = model.predict_parts(X)
        full = model.predict(rows)
        # weight 0: the baseline itself (baseline + 0 * anything finite: exact)
        np.testing.assert_array_equal(model.predict(rows, residual_weight=np.zeros(len(rows))), baseline)
        # weight 1: the hybrid, up to float32 rounding of baseline + (prediction - baseline)
        scale = float(np.abs(full).max())
        eps = float(np.finfo(np.float32).eps)
        np.testing.assert_allclose(model.predict(rows, residual_weight=np.ones(len(rows))), full, atol=4 * eps * scale)
        half = model.predict(rows, residual_weight=np.full(len(rows), 0.5))
        np.testing.assert_allclose(half, (baseline + full) / 2, atol=4 * eps * scale)
        with pytest.raises(ValueError, match="one value per row"):
            model.predict(rows, residual_weight=np.ones(3))
    pure = ux.train(table, "GPP", features, "lightgbm", n_estimators=20)
    np.testing.assert_array_equal(pure.predict(rows, residual_weight=np.zeros(len(rows))), pure.predict(rows))


def test_upscaled_hybrid_fades_its_residual_by_the_weight_given(world):
    features = ["TA", "SW_IN", "VPD", "SWC", "NIRv", "IGBP"]
    table = ux.extract_at_sites(world.cube, world.sites, features, targets=["RECO", "GPP"])
    members = {
        "hybrid": {
            f: ux.train(table, f, features, "xgboost", baseline="auto", n_estimators=20) for f in ("GPP", "RECO")
        },
        "pure": {f: ux.train(table, f, features, "lightgbm", n_estimators=20) for f in ("GPP", "RECO")},
    }
    cube = world.cube.isel(time=slice(0, 20))
    # A known weight field: 1 on the first days, 0.25 on the others (what residual_weight gives at DI 4x threshold).
    weight = xr.where(cube["time"] < cube["time"][10], 1.0, 0.25) * xr.ones_like(cube["TA"])
    kept = ux.upscale(members, cube, chunks={"time": 7}).compute()
    faded = ux.upscale(members, cube, chunks={"time": 7}, residual_weights={"GPP": weight, "RECO": weight}).compute()
    eps = float(np.finfo(np.float32).eps)
    for flux in ("GPP", "RECO"):
        base = kept[f"{flux}_baseline"].sel(member="hybrid")
        np.testing.assert_array_equal(faded[f"{flux}_baseline"].sel(member="hybrid"), base)
        expected = base + weight * (kept[flux].sel(member="hybrid") - base)
        scale = float(np.nanmax(np.abs(kept[flux].values)))
        np.testing.assert_allclose(faded[flux].sel(member="hybrid"), expected, atol=4 * eps * scale)
        np.testing.assert_array_equal(faded[flux].sel(member="pure"), kept[flux].sel(member="pure"))  # untouched
        residual = faded[f"{flux}_residual"].sel(member="hybrid")
        np.testing.assert_allclose(
            residual, weight * kept[f"{flux}_residual"].sel(member="hybrid"), atol=4 * eps * scale
        )
        assert float(np.abs(residual.isel(time=slice(10, None))).max()) > 0  # the later days are not all baseline
        assert "fading it outside the area of applicability" in faded[flux].attrs["comment"]
        assert "stored as -0.0" in faded[flux].attrs["comment"]  # GPP and RECO keep the clipping note
    # the derived NEE is made of the faded fluxes: the same float32 subtraction
    np.testing.assert_array_equal(faded["NEE_RECO_GPP"], faded["RECO"] - faded["GPP"])


def test_run_fades_hybrid_residuals_outside_the_aoa_or_keeps_them(tmp_path):
    from uflux_xr.workflow.pipeline import run

    text = (REPO / "configs" / "demo.yaml").read_text()
    text = text.replace("fluxes: [GPP, RECO, NEE, LE, H]", "fluxes: [GPP, RECO]")
    start = text.index("models:")
    end = text.index("validation:")
    text = (
        text[:start]
        + "models:\n  - name: lightgbm\n    baseline: auto\n    params: {n_estimators: 20}\nmembers: 1\n"
        + text[end:].replace("  cv: loso", "  cv: none")
    )
    products = {}
    for mode in ("fade", "keep"):
        path = tmp_path / f"{mode}.yaml"
        path.write_text(text.replace("applicability: {regions: IGBP}", f"applicability: {{hybrid_residual: {mode}}}"))
        result = run(
            load_config(path),
            tmp_path / mode,
            progress=False,
            report=False,
            window={"time": slice(0, 12), "lat": slice(0, 30), "lon": slice(0, 40)},
        )
        products[mode] = xr.open_zarr(tmp_path / mode / "product.zarr").compute()
        threshold = {flux: result.applicability[flux]["threshold"] for flux in ("GPP", "RECO")}
    fade, keep = products["fade"], products["keep"]
    eps = float(np.finfo(np.float32).eps)
    for flux in ("GPP", "RECO"):
        di = fade[f"{flux}_DI"]
        np.testing.assert_array_equal(di, keep[f"{flux}_DI"])  # the same reference and cube
        outside = (di > threshold[flux]).values
        assert outside.any()  # the corner of the domain has cells beyond the towers' predictor space
        weight = threshold[flux] / np.maximum(di, threshold[flux])  # by hand, as the config's comment says
        scale = float(np.nanmax(np.abs(keep[flux].values)))
        expected = keep[f"{flux}_residual"] * weight
        np.testing.assert_allclose(fade[f"{flux}_residual"], expected, atol=4 * eps * scale)
        inside = ~outside & np.isfinite(di.values)
        np.testing.assert_allclose(fade[flux].values[:, inside], keep[flux].values[:, inside], atol=4 * eps * scale)
        assert not np.allclose(fade[flux].values[:, outside], keep[flux].values[:, outside])
