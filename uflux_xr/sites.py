"""Tower-to-grid extraction: predictors at the tower cells joined to the tower
fluxes, giving the training table (one row per site and time step)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.features import resolve_features

log = logging.getLogger(__name__)


class ExtractionError(ValueError):
    """Sites and cube cannot be joined (no overlap, towers off the grid, empty predictors)."""


def spatial_dims(cube: xr.Dataset) -> tuple[str, str]:
    """The horizontal dims of a cube: ("lat", "lon") for geographic grids, ("y", "x") for projected ones."""
    if "lat" in cube.dims and "lon" in cube.dims:
        return "lat", "lon"
    if "y" in cube.dims and "x" in cube.dims:
        return "y", "x"
    raise ExtractionError(f"the cube has dims {tuple(cube.dims)}; expected (time, lat, lon) or (time, y, x)")


def tower_coordinates(cube: xr.Dataset, sites: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Tower positions in the cube's coordinates: (lat, lon) for geographic grids, or
    (y, x) projected with the cube's CRS (rioxarray) for projected grids."""
    ydim, _ = spatial_dims(cube)
    lat, lon = sites["lat"].values.astype(float), sites["lon"].values.astype(float)
    if ydim == "lat":
        return lat, lon
    crs = cube.rio.crs
    if crs is None:
        raise ExtractionError("the cube has (y, x) dims but no CRS; set one with cube.rio.write_crs(...)")
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    return np.asarray(y), np.asarray(x)


def nearest_index(axis: np.ndarray, points: np.ndarray, *, name: str, labels) -> np.ndarray:
    """Index of the grid cell nearest to each point along one axis.

    Raises
    ------
    ExtractionError
        When a point lies more than half a cell outside the axis.
    """
    axis = np.asarray(axis, dtype=float)
    step = np.abs(np.diff(axis)).max() if axis.size > 1 else np.inf
    idx = np.abs(axis[None, :] - points[:, None]).argmin(axis=1)
    off = np.abs(axis[idx] - points) > step / 2 + 1e-9
    if off.any():
        bad = [f"{labels[i]} ({name}={points[i]:.4f})" for i in np.flatnonzero(off)[:5]]
        raise ExtractionError(
            f"{off.sum()} tower(s) lie outside the cube's {name} range "
            f"[{axis.min():.4f}, {axis.max():.4f}]: {', '.join(bad)}"
        )
    return idx


def _is_categorical(da: xr.DataArray) -> bool:
    return "flag_values" in da.attrs or np.issubdtype(da.dtype, np.integer)


def _window_indices(idx: np.ndarray, size: int, n: int) -> np.ndarray:
    """(site, window) indices of a centred window, clipped at the grid edge."""
    half = size // 2
    return np.clip(idx[:, None] + np.arange(-half, half + 1)[None, :], 0, n - 1)


def extract_at_sites(
    cube: xr.Dataset,
    sites: xr.Dataset,
    features,
    *,
    targets=None,
    method: str = "nearest",
    window: int = 3,
) -> pd.DataFrame:
    """Training table: the cube's predictors at each tower joined to the tower records.

    Parameters
    ----------
    cube : xarray.Dataset
        Predictor cube (time, lat, lon) or (time, y, x) with a CRS.
    sites : xarray.Dataset
        Site dataset (site, time) with coords ``lat``, ``lon`` [degrees] and ``igbp``.
    features : sequence of str
        Predictor names (cube variables, or derived ``DOY_SIN``/``DOY_COS``).
    targets : sequence of str, optional
        Site variables to join (default: every data variable of ``sites``, QC included).
    method : {"nearest", "window"}
        Take the nearest cell, or the NaN-skipping mean of a ``window`` × ``window``
        block of cells centred on it.
    window : int
        Odd window width [cells] for ``method="window"``.

    Returns
    -------
    pandas.DataFrame
        One row per (site, time) in the common period, columns ``site``, ``time``,
        ``igbp``, the features and the targets.  ``attrs["units"]`` maps each
        column to its units.

    Raises
    ------
    ExtractionError
        No common time steps, towers outside the grid, or a predictor that is
        all-NaN at a tower over the common period.
    """
    if method not in ("nearest", "window"):
        raise ValueError(f"method must be 'nearest' or 'window', got {method!r}")
    if method == "window" and (window < 1 or window % 2 == 0):
        raise ValueError(f"window must be an odd number of cells, got {window}")
    for coord in ("lat", "lon"):
        if coord not in sites.coords:
            raise ExtractionError(f"site dataset has no {coord!r} coordinate; expected tower positions [degrees]")
    if sites.indexes["time"].has_duplicates:
        raise ExtractionError("site dataset has duplicate timestamps")
    targets = list(sites.data_vars) if targets is None else list(targets)
    missing = [t for t in targets if t not in sites.data_vars]
    if missing:
        raise ExtractionError(f"target(s) {missing} not in the site dataset; it has {sorted(sites.data_vars)}")

    common = sites.indexes["time"].intersection(cube.indexes["time"])
    if common.empty:
        raise ExtractionError(
            "no overlap in time between sites "
            f"({sites.time.values[0]!s:.10}..{sites.time.values[-1]!s:.10}) and cube "
            f"({cube.time.values[0]!s:.10}..{cube.time.values[-1]!s:.10})"
        )
    cube = cube.sel(time=common)
    sites = sites.sel(time=common)

    ydim, xdim = spatial_dims(cube)
    labels = sites["site"].values
    py, px = tower_coordinates(cube, sites)
    iy = nearest_index(cube[ydim].values, py, name=ydim, labels=labels)
    ix = nearest_index(cube[xdim].values, px, name=xdim, labels=labels)

    arrays = resolve_features(cube, list(features))
    if method == "nearest":
        sel = {ydim: xr.DataArray(iy, dims="site"), xdim: xr.DataArray(ix, dims="site")}
        at = {k: v.isel({d: sel[d] for d in (ydim, xdim) if d in v.dims}) for k, v in arrays.items()}
    else:
        wy = xr.DataArray(_window_indices(iy, window, cube.sizes[ydim]), dims=("site", "wy"))
        wx = xr.DataArray(_window_indices(ix, window, cube.sizes[xdim]), dims=("site", "wx"))
        sel = {ydim: wy, xdim: wx}
        at = {k: v.isel({d: sel[d] for d in (ydim, xdim) if d in v.dims}) for k, v in arrays.items()}
        centre = {"wy": window // 2, "wx": window // 2}
        # Categorical layers (IGBP) cannot be averaged: take the tower's own cell.
        at = {
            k: v.isel({d: centre[d] for d in centre if d in v.dims})
            if _is_categorical(arrays[k])
            else v.mean([d for d in centre if d in v.dims], skipna=True)
            for k, v in at.items()
        }
    at = xr.Dataset(at).assign_coords(site=labels).compute()
    for k in at.data_vars:
        at[k].attrs = dict(arrays[k].attrs)  # window means drop them
    return join_site_table(at, sites, features, targets)


def join_site_table(at: xr.Dataset, sites: xr.Dataset, features, targets) -> pd.DataFrame:
    """Join predictors at the towers (site[, time]) to the tower records as a training table.

    Parameters
    ----------
    at : xarray.Dataset
        Every feature at every tower (static ones without ``time``), site labels
        as in ``sites``, time steps equal to those of ``sites``.
    sites : xarray.Dataset
        Tower records (site, time) holding ``targets``.
    features, targets : sequence of str
        Column names to keep.

    Raises
    ------
    ExtractionError
        A predictor that is all-NaN at a tower.
    """
    labels = sites["site"].values
    at = at.broadcast_like(sites["time"])  # static layers (IGBP) repeat over time
    for name in features:
        empty = at[name].isnull().all("time") if "time" in at[name].dims else at[name].isnull()
        if bool(empty.any()):
            bad = list(labels[np.asarray(empty)])[:5]
            raise ExtractionError(
                f"predictor {name!r} is all-NaN at tower(s) {bad} over the common period; "
                "check the land mask and the tower coordinates"
            )

    table = xr.merge(
        [at[list(features)].transpose("site", "time"), sites[targets].drop_vars(["lat", "lon"], errors="ignore")],
        compat="override",
        join="exact",
    )
    frame = table.to_dataframe().reset_index()
    if "igbp" in sites.coords:
        frame["igbp"] = frame["site"].map(dict(zip(labels, sites["igbp"].values, strict=True)))
    keep = ["site", "time"] + (["igbp"] if "igbp" in frame else []) + list(features) + list(targets)
    frame = frame[keep]
    frame.attrs["units"] = {
        **{k: at[k].attrs.get("units", "1") for k in features},
        **{k: sites[k].attrs.get("units", "1") for k in targets},
    }
    log.info("training table: %d rows, %d sites, %d features", len(frame), len(labels), len(features))
    return frame
