import json
import warnings

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import uflux_xr as ux


@pytest.fixture(scope="module")
def product(world, small_models):
    return ux.upscale(small_models, world.cube)


@pytest.fixture(scope="module")
def netcdf_path(product, tmp_path_factory):
    return ux.write_product(
        product, tmp_path_factory.mktemp("nc") / "product.nc", progress=False, attrs={"creator_name": "pytest"}
    )


def test_netcdf_and_zarr_round_trip(product, netcdf_path, tmp_path):
    computed = product.compute()
    nc = xr.open_dataset(netcdf_path)
    zarr_path = ux.write_product(product, tmp_path / "product.zarr", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consolidated metadata: opening as a user would warns of nothing
        zr = xr.open_zarr(zarr_path)
    assert json.loads((zarr_path / "zarr.json").read_text())["zarr_format"] == 3
    for ds in (nc, zr):
        for name in computed.data_vars:
            np.testing.assert_allclose(ds[name].values, computed[name].values, rtol=1e-6, equal_nan=True)
        assert list(ds["member_name"].values) == ["xgboost", "lightgbm"]


def test_cf_acdd_attributes(netcdf_path):
    ds = xr.open_dataset(netcdf_path)
    assert ds.attrs["Conventions"] == "CF-1.10, ACDD-1.3"
    assert ds.attrs["creator_name"] == "pytest"
    for key in (
        "title",
        "summary",
        "history",
        "date_created",
        "time_coverage_start",
        "geospatial_lat_min",
        "uflux_features",
        "uflux_training_sites",
    ):
        assert ds.attrs.get(key), key
    assert "DOY_SIN" in ds.attrs["uflux_features"]
    assert ds["GPP"].attrs["units"] == "g m-2 d-1"
    assert ds["GPP"].attrs["cell_methods"] == "time: mean"
    assert ds["LE"].attrs["standard_name"] == "surface_upward_latent_heat_flux"
    assert "time_bnds" in ds and ds["time"].attrs["bounds"] == "time_bnds"


def test_compliance_checker_cf_has_no_high_priority_failures(netcdf_path, tmp_path):
    pytest.importorskip("compliance_checker")
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = tmp_path / "cf.json"
    ComplianceChecker.run_checker(
        str(netcdf_path), ["cf:1.10"], 0, "normal", output_filename=str(report), output_format="json"
    )
    result = json.loads(report.read_text())["cf:1.10"]
    failures = [p for p in result["high_priorities"] if p["msgs"]]
    assert result["high_count"] == 0, failures
    assert result["scored_points"] == result["possible_points"], result["medium_priorities"]


def _failing_product(product):
    def boom(block):
        raise RuntimeError("disk full (simulated)")

    bad = product.copy()
    bad["GPP"] = bad["GPP"].copy(data=da.map_blocks(boom, bad["GPP"].data, dtype=np.float32))
    return bad


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_failed_write_leaves_nothing_and_keeps_old_product(product, tmp_path, suffix):
    dest = tmp_path / f"p{suffix}"
    with pytest.raises(RuntimeError, match="disk full"):
        ux.write_product(_failing_product(product), dest, progress=False)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []  # no partial leftovers either
    ux.write_product(product, dest, progress=False)
    with pytest.raises(RuntimeError, match="disk full"):
        ux.write_product(_failing_product(product), dest, progress=False)
    reopened = xr.open_zarr(dest, consolidated=False) if suffix == ".zarr" else xr.open_dataset(dest)
    assert int(reopened["GPP"].notnull().sum()) > 0  # the good product survived


def test_unknown_suffix(product, tmp_path):
    with pytest.raises(ValueError, match="unknown product format"):
        ux.write_product(product, tmp_path / "p.csv")


FULL_OPTIONS = """
name: full-options
title: every optional layer switched on
data:
  source: demo
  seed: 3
  domain: {lat: [40, 60], lon: [0, 20], resolution: 1.0}
  period: {start: 2020-01-01, end: 2020-03-31}
  n_sites: 20
predictors: [TA, SW_IN, LW_IN, VPD, P, SWC, NIRv, IGBP, DOY_SIN, DOY_COS]
fluxes: [GPP, RECO, LE]
models:
  - name: xgboost
    params: {n_estimators: 20}
  - name: hybrid
    params: {n_trees: 10, max_layers: 1}
members: 1
validation: {cv: loso, model: xgboost, params: {n_estimators: 20}}
applicability: {regions: IGBP}
explain: {enabled: true, period: [2020-02-01, 2020-02-05]}
output: {formats: [zarr, netcdf], chunks: {time: 31}}
"""


def _cf_high_priority_failures(path, report):
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    ComplianceChecker.run_checker(
        str(path), ["cf:1.10"], 0, "normal", output_filename=str(report), output_format="json"
    )
    result = json.loads(report.read_text())["cf:1.10"]
    return [(p["name"], p["msgs"]) for p in result["high_priorities"] if p["msgs"]]


def test_a_run_with_every_optional_layer_is_cf_compliant(tmp_path):
    # DI, AOA and error layers, a hybrid's baseline and residual, the explanation maps: the AOA flags came
    # back from the Zarr store as float32 with int64 flag_values, and the explanation's coordinates had
    # fill values and its cell_methods named no coordinate.
    pytest.importorskip("compliance_checker")
    config_path = tmp_path / "full.yaml"
    config_path.write_text(FULL_OPTIONS)
    result = ux.run(ux.load_config(config_path), tmp_path / "out", progress=False, report=False)
    product = xr.open_dataset(result.products["netcdf"])
    assert {"GPP_DI", "GPP_AOA", "GPP_error", "GPP_baseline"} <= set(product.data_vars)
    assert product["GPP_AOA"].dtype == np.int8 and product["GPP_AOA"].attrs["flag_values"].dtype == np.int8
    for path in (result.products["netcdf"], result.products["explanation"]):
        assert _cf_high_priority_failures(path, tmp_path / "cf.json") == [], path
