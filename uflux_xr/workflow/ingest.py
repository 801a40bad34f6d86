"""Summaries of ingested inputs: what was read, over which period, with which gaps.

Pure functions returning text; the ``uflux-xr ingest`` command prints them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.site.aggregate import time_step


def longest_gap(values: np.ndarray) -> int:
    """Length of the longest run of NaN in a 1-D array [time steps]."""
    missing = np.isnan(np.asarray(values, dtype=float))
    if not missing.any():
        return 0
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max())


def _step(time: pd.DatetimeIndex) -> pd.Timedelta:
    return time_step(time) if len(time) > 1 else pd.Timedelta(0)


def summarize_sites(ds: xr.Dataset) -> str:
    """Per site: period, number of steps, and per variable units, % missing and longest gap."""
    time = ds.indexes["time"]
    step = _step(time)
    lines = [f"{ds.sizes['site']} site(s), {len(time)} time steps of {step}, {time[0]} .. {time[-1]}"]
    for site in ds["site"].values:
        one = ds.sel(site=site)
        lines.append(
            f"  {site}: lat {float(one['lat']):.4f}, lon {float(one['lon']):.4f}, igbp {str(one['igbp'].values)}"
        )
        for name, var in one.data_vars.items():
            if str(name).endswith("_QC"):
                continue
            values = var.values
            missing = 100.0 * float(np.isnan(values).mean())
            gap = longest_gap(values)
            lines.append(
                f"    {name:<12} [{var.attrs.get('units', '?')}] missing {missing:5.1f} %, "
                f"longest gap {gap} steps ({gap * step})"
            )
    return "\n".join(lines)


def summarize_cube(ds: xr.Dataset) -> str:
    """Dimensions, period and per-variable units and % missing of a predictor cube."""
    lines = [f"cube {dict(ds.sizes)}"]
    if "time" in ds.indexes:
        time = ds.indexes["time"]
        lines[0] += f", {time[0]} .. {time[-1]} every {_step(time)}"
    for name, var in ds.data_vars.items():
        missing = 100.0 * float(var.isnull().mean())
        lines.append(f"  {name:<10} [{var.attrs.get('units', '?')}] missing {missing:5.1f} %")
    return "\n".join(lines)
