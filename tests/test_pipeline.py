"""The demo job as the README runs it: targets of issue #2 on the real demo config."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uflux_xr.pipeline import score_against_truth


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
