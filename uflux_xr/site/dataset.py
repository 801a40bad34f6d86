"""Helpers for site datasets, ``(site, time)`` as the readers make them, or one site as ``(time,)``.

Every step of the tower wing accepts both shapes and returns the shape it was given; these three
functions are how they do it.
"""

from __future__ import annotations

from typing import TypeVar

import xarray as xr


def with_site_dim(site_ds: xr.Dataset) -> xr.Dataset:
    """``site_ds`` as (site, time, ...): a single-site dataset gets a site dimension of length one."""
    if "site" in site_ds.dims:
        return site_ds.transpose("site", "time", ...)
    if "site" in site_ds.coords:  # a site picked with isel keeps its name as a scalar coordinate
        return site_ds.expand_dims("site")
    return site_ds.expand_dims(site=["site"])


def one_site(site_ds: xr.Dataset, what: str) -> xr.Dataset:
    """The one site of ``site_ds`` as (time, ...) with its name as a scalar ``site`` coordinate.

    ``what`` names the step for the error raised when ``site_ds`` holds several sites.
    """
    ds = with_site_dim(site_ds)
    if ds.sizes["site"] != 1:
        raise ValueError(f"{what} runs on one site; got {ds.sizes['site']}: select one with ds.isel(site=[i])")
    return ds.isel(site=0)


DatasetOrArray = TypeVar("DatasetOrArray", xr.Dataset, xr.DataArray)


def like_input(out: DatasetOrArray, site_ds: xr.Dataset) -> DatasetOrArray:
    """``out`` (site, time) back in the shape of ``site_ds``: a single site squeezed, its name kept if it had one."""
    if "site" in site_ds.dims:
        return out
    return out.isel(site=0, drop="site" not in site_ds.coords)
