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
