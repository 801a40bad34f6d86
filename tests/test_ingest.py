import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.workflow.ingest import longest_gap, summarize_cube, summarize_sites


def test_longest_gap():
    assert longest_gap(np.array([1.0, 2.0])) == 0
    assert longest_gap(np.array([np.nan, 1, np.nan, np.nan, np.nan, 2, np.nan])) == 3
    assert longest_gap(np.full(4, np.nan)) == 4


def test_summaries_report_period_units_and_gaps():
    time = pd.date_range("2021-01-01 00:15", periods=6, freq="30min")
    ds = xr.Dataset(
        {"NEE": (("site", "time"), [[1, np.nan, np.nan, 2, 3, 4.0]], {"units": "umol m-2 s-1"})},
        coords={
            "site": ["XX-Aaa"],
            "time": time,
            "lat": ("site", [1.0]),
            "lon": ("site", [2.0]),
            "igbp": ("site", ["GRA"]),
        },
    )
    text = summarize_sites(ds)
    assert "1 site(s), 6 time steps of 0 days 00:30:00" in text
    assert "NEE          [umol m-2 s-1] missing  33.3 %, longest gap 2 steps (0 days 01:00:00)" in text
    cube = xr.Dataset({"TA": (("time", "lat"), np.ones((6, 2)), {"units": "degC"})}, coords={"time": time})
    assert "TA         [degC] missing   0.0 %" in summarize_cube(cube)
