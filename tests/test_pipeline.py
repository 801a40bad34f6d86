"""The demo job as the README runs it: targets of issue #2 on the real demo config."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.workflow.pipeline import score_against_truth


@pytest.mark.slow
def test_demo_meets_validation_targets(demo_run):
    result = demo_run
    nse = result.validation.set_index("target")["nse"]
    assert nse["GPP"] >= 0.85
    assert nse["RECO"] >= 0.8
    assert nse["LE"] >= 0.8
    truth = result.product_vs_truth.set_index("variable")["nse"]
    assert set(truth.index) >= {"GPP", "RECO", "NEE", "LE", "H", "ET", "NEE_RECO_GPP"}
    assert (truth > 0.9).all(), truth
    assert result.products["netcdf"].exists() and result.products["zarr"].exists()
    sizes = xr.open_dataset(result.products["netcdf"]).sizes
    assert sizes["member"] == 4 and sizes["time"] == 366


def test_score_against_truth_uses_true_nee_for_difference():
    coords = {"time": pd.date_range("2020-01-01", periods=3), "lat": [0.0], "lon": [0.0]}
    truth = xr.Dataset({"NEE": (("time", "lat", "lon"), np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1))}, coords=coords)
    product = xr.Dataset(
        {"NEE_RECO_GPP": (("member", "time", "lat", "lon"), np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1))},
        coords={**coords, "member": ["a"]},
    )
    table = score_against_truth(product, truth)
    assert table.loc[0, "variable"] == "NEE_RECO_GPP" and table.loc[0, "nse"] == 1.0


def test_validation_states_the_skill_cost_of_fewer_bins(table, tmp_path):
    """With max_bin below the kind's default, validation fits the same folds with the default too."""
    import yaml

    import uflux_xr as ux
    from uflux_xr.workflow.config import parse_config
    from uflux_xr.workflow.pipeline import RunResult, format_summary, validate_fluxes

    from .conftest import FEATURES, REPO

    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw.update(
        predictors=FEATURES,
        fluxes=["GPP", "LE"],
        models=[{"name": "xgboost", "max_bin": 8, "params": {"n_estimators": 30}}],
        validation={"cv": "kfold", "n_splits": 3, "model": "xgboost"},
    )
    config = parse_config(raw, "bins.yaml")
    pooled, _ = validate_fluxes(table, config, tmp_path)
    assert list(pooled["max_bin"]) == [8, 8] and list(pooled["default_bins"]) == [256, 256]
    # The two columns are what cross-validation gives with each bin count on the same folds.
    for bins, column in ((8, "r2"), (256, "r2_default_bins")):
        expected = [
            ux.cross_validate(
                table,
                flux,
                FEATURES,
                "xgboost",
                cv="kfold",
                n_splits=3,
                qc_threshold=0.5,
                n_estimators=30,
                max_bin=bins,
            )
            .metrics["r2"]
            .iloc[0]
            for flux in ("GPP", "LE")
        ]
        # Same folds, same single-threaded fits: the same arithmetic, up to float64 summation order.
        np.testing.assert_allclose(pooled[column], expected, rtol=1e-12)
    assert (pooled["r2"] != pooled["r2_default_bins"]).all()  # the bin count reached the models
    assert set(pd.read_csv(tmp_path / "metrics.csv").columns) >= {"r2_default_bins", "rmse_default_bins"}
    result = RunResult(out_dir=tmp_path, products={}, validation=pooled, product_vs_truth=None)
    summary = format_summary(result)
    assert "(max_bin 8; dr2_bins: r2 minus r2 with the default 256 bins, same folds)" in summary
    assert f"{pooled['r2'].iloc[0] - pooled['r2_default_bins'].iloc[0]:+.4f}" in summary


@pytest.mark.parametrize("config_name", ["demo", "uk_daily_100m"])
def test_a_window_trains_on_its_period_or_on_all_towers(config_name, tmp_path):
    # demo: the eager world read back from Zarr (the files path); uk: the lazy world.
    import dataclasses

    from tests.conftest import REPO
    from uflux_xr.workflow.config import ConfigError, TrainingConfig, load_config
    from uflux_xr.workflow.pipeline import prepare_inputs, training_table

    config = load_config(REPO / "configs" / f"{config_name}.yaml", demo_inputs=True)
    ydim, xdim = ("lat", "lon") if config_name == "demo" else ("y", "x")
    # a corner of the domain that holds none or few of the towers: they still train, at their own cells
    window = {"time": slice(0, 10), ydim: slice(20, 40), xdim: slice(30, 60)}
    tables = {}
    for period in ("window", "all"):
        run_config = dataclasses.replace(config, training=dataclasses.replace(config.training, period=period))
        inputs = prepare_inputs(run_config, tmp_path / period, window)
        assert inputs.cube.sizes["time"] == 10 and inputs.cube.sizes[ydim] == 20
        tables[period] = training_table(run_config, inputs)
    times = inputs.sites.indexes["time"]  # the "all" run's towers: the whole year
    assert times.size == 366
    assert tables["window"]["time"].isin(times[:10]).all()
    assert set(tables["all"]["time"]) == set(times)
    assert tables["window"]["site"].nunique() == tables["all"]["site"].nunique() == inputs.sites.sizes["site"]
    both = tables["all"][tables["all"]["time"].isin(times[:10])].reset_index(drop=True)
    pd.testing.assert_frame_equal(both, tables["window"].reset_index(drop=True))  # same rows where both train
    with pytest.raises(ConfigError, match="training.period"):
        TrainingConfig.parse({"period": "winter"}, "x.yaml")


@pytest.mark.parametrize("config_name", ["demo", "uk_daily_100m"])
def test_a_time_window_reads_the_years_peak_greenness(config_name, tmp_path):
    # NIRv_MAX is the calendar year's maximum: a window of 10 days must read the year's, as the models trained.
    import dataclasses

    from tests.conftest import REPO
    from uflux_xr.workflow.config import load_config
    from uflux_xr.workflow.pipeline import prepare_inputs

    config = load_config(REPO / "configs" / f"{config_name}.yaml", demo_inputs=True)
    predictors = [*config.ensemble.predictors, "NIRv_MAX"]
    config = dataclasses.replace(config, ensemble=dataclasses.replace(config.ensemble, predictors=predictors))
    ydim, xdim = ("lat", "lon") if config_name == "demo" else ("y", "x")
    window = {"time": slice(100, 110), ydim: slice(20, 30), xdim: slice(30, 40)}
    if config_name != "demo":  # the lazy world makes only the window's days: it cannot know the year's peak
        with pytest.raises(ValueError, match=r"\['NIRv_MAX'\] are annual maxima.*without a time window"):
            prepare_inputs(config, tmp_path, window)
        return
    inputs = prepare_inputs(config, tmp_path, window)
    whole = inputs.training_cube["NIRv"].isel({ydim: slice(20, 30), xdim: slice(30, 40)}).max("time").values
    peak = inputs.cube["NIRv_MAX"].compute().values
    assert peak.shape[0] == 10
    np.testing.assert_array_equal(peak, np.broadcast_to(whole, peak.shape))  # the same max: exact
    assert (peak > inputs.cube["NIRv"].max("time").values + 0.01).any()  # the window's own peak is lower


def test_a_cube_written_by_a_plain_to_zarr_is_accepted(tmp_path):
    # A 3-D cube and a 2-D land_mask written without explicit chunks get different Zarr chunks; the run
    # stopped with xarray's "inconsistent chunks along dimension lat ... unify_chunks()".
    import yaml

    from tests.conftest import REPO
    from uflux_xr.workflow.pipeline import prepare_inputs
    from uflux_xr.workflow.plan import plan_run

    cube, sites, _ = ux.demo.make_world(seed=1, resolution=2.0, start="2020-01-01", end="2020-03-31", n_sites=10)
    plain = cube.copy()
    plain["TA"] = plain["TA"].chunk({"time": 10, "lat": 5, "lon": 7})
    plain["land_mask"] = plain["land_mask"].chunk({"lat": 3, "lon": 4})
    for var in plain.variables.values():
        var.encoding.clear()
    plain.to_zarr(tmp_path / "cube.zarr", mode="w")
    sites.to_netcdf(tmp_path / "sites.nc")
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["data"] = {"source": "files", "cube": str(tmp_path / "cube.zarr"), "sites": str(tmp_path / "sites.nc")}
    (tmp_path / "files.yaml").write_text(yaml.safe_dump(raw))
    config = ux.load_config(tmp_path / "files.yaml")
    assert plan_run(config, throughput=1e6).n_chunks >= 1
    opened = prepare_inputs(config, tmp_path / "out").cube
    assert opened.chunks["lat"] and opened["land_mask"].chunks[0] == opened["TA"].chunks[1]
