"""Ensemble statistics per cell and area-weighted totals of products.

Cell areas are true areas on the WGS84 ellipsoid: for geographic grids
R_q² Δλ (sin β_north − sin β_south) with β the authalic latitude and R_q the
authalic radius (Snyder 1987, eqs. 3-11 to 3-13), so the global 0.25° grid
sums to the ellipsoid's 5.1007 × 10^14 m²; for projected grids Δx Δy divided
by the projection's areal scale factor at the cell centre (pyproj), so a 100 m
British National Grid cell is not taken as exactly 10,000 m² of ground.
"""

from __future__ import annotations

import dask.array as da
import numba
import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.constants import DAYS_PER_YEAR, SECONDS_PER_DAY, WGS84_A, WGS84_F
from uflux_xr.core.domain import spatial_dims

WGS84_E = np.sqrt(2 * WGS84_F - WGS84_F**2)  # first eccentricity [-]


def ensemble_statistics(product: xr.Dataset, dim: str = "member") -> xr.Dataset:
    """Mean, standard deviation and member count per cell of every variable with ``dim``.

    Parameters
    ----------
    product : xarray.Dataset
        Product with a ``member`` dim (lazy or not).
    dim : str
        Ensemble dim.

    Returns
    -------
    xarray.Dataset
        ``<var>_mean`` and ``<var>_std`` [units of ``var``; SD with ddof 1, NaN
        for a single member] and ``<var>_count`` [1] (members with a value), lazily.
    """
    out = {}
    for name, var in product.data_vars.items():
        if dim not in var.dims:
            continue
        dtype = var.dtype if var.dtype.kind == "f" else np.dtype(np.float64)
        if var.chunks is not None:
            var = var.chunk({dim: -1})  # the members of a cell in one block
        mean, std, count = xr.apply_ufunc(
            _member_moments,
            var.astype(dtype, copy=False),
            input_core_dims=[[dim]],
            output_core_dims=[[], [], []],
            dask="parallelized",
            output_dtypes=[dtype, dtype, np.int16],
            keep_attrs=True,  # and the coordinates' (a projected grid's crs_wkt)
        )
        long_name = var.attrs.get("long_name", name)
        mean.attrs = {**var.attrs, "cell_methods": f"{dim}: mean", "long_name": f"{long_name}, ensemble mean"}
        std.attrs = {
            "units": var.attrs.get("units", "1"),
            "cell_methods": f"{dim}: standard_deviation",
            "long_name": f"{long_name}, ensemble standard deviation",
        }
        count.attrs = {"units": "1", "long_name": f"ensemble members with a value of {name}"}
        out.update({f"{name}_mean": mean, f"{name}_std": std, f"{name}_count": count})
    if not out:
        raise ValueError(f"no variable of the product has the ensemble dim {dim!r}")
    return xr.Dataset(out, attrs=product.attrs)


def _member_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and SD (ddof 1) over the last axis of floating ``values`` skipping NaN (accumulated in
    float64, returned in ``values``' dtype; SD NaN with fewer than 2 values, the mean NaN with none) and
    the count of values (int16), each of the other axes' shape."""
    shape = values.shape[:-1]
    flat = np.ascontiguousarray(values.reshape(-1, values.shape[-1]))
    mean, std, count = _moments_kernel(flat)
    return mean.reshape(shape), std.reshape(shape), count.reshape(shape)


@numba.njit(nogil=True, cache=True)
def _moments_kernel(values):
    """Per row: two passes over its few members in float64 (one read of the chunk; numpy's nanmean,
    nanvar and count each read it again with temporaries)."""
    n, m = values.shape
    mean = np.empty(n, values.dtype)
    std = np.empty(n, values.dtype)
    count = np.empty(n, np.int16)
    for i in range(n):
        c = 0
        total = 0.0
        for k in range(m):
            v = values[i, k]
            if not np.isnan(v):
                c += 1
                total += v
        count[i] = c
        if c == 0:
            mean[i] = np.nan
            std[i] = np.nan
            continue
        mu = total / c
        mean[i] = mu
        if c < 2:
            std[i] = np.nan
            continue
        squares = 0.0
        for k in range(m):
            v = values[i, k]
            if not np.isnan(v):
                squares += (v - mu) ** 2
        std[i] = np.sqrt(squares / (c - 1))
    return mean, std, count


def _authalic_q(phi: np.ndarray) -> np.ndarray:
    """Snyder's q(φ) (eq. 3-12) on the WGS84 ellipsoid."""
    e, s = WGS84_E, np.sin(phi)
    return (1 - e**2) * (s / (1 - e**2 * s**2) - np.log((1 - e * s) / (1 + e * s)) / (2 * e))


def _geographic_area(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    lat_edges = np.deg2rad(np.clip(_edges(lat), -90, 90))
    q_pole = _authalic_q(np.array(np.pi / 2))
    band = np.abs(np.diff(_authalic_q(lat_edges) / q_pole))  # Δ sin β
    width = np.abs(np.deg2rad(np.diff(_edges(lon))))
    authalic_radius_sq = WGS84_A**2 * q_pole / 2
    return authalic_radius_sq * band[:, None] * width[None, :]


def _edges(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    if c.size == 1:
        raise ValueError("cell areas need at least two coordinate values along each spatial dim")
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _projected_area_block(y: np.ndarray, x: np.ndarray, dy: float, dx: float, crs: str) -> np.ndarray:
    import pyproj

    proj = pyproj.Proj(crs)
    xx, yy = np.meshgrid(x, y)
    lon, lat = proj(xx, yy, inverse=True)
    return np.abs(dx * dy) / proj.get_factors(lon, lat).areal_scale


def cell_area(ds: xr.Dataset | xr.DataArray, crs: str | None = None) -> xr.DataArray:
    """True area [m2] of every grid cell (lat/lon or projected y/x grids).

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Gridded object with (lat, lon) or (y, x) coordinates.
    crs : str, optional
        CRS of a projected grid (default: the ``crs`` variable's ``crs_wkt`` or
        ``spatial_ref``, or rioxarray's).

    Returns
    -------
    xarray.DataArray
        Cell areas [m2], dask-backed for projected grids.
    """
    ydim, xdim = spatial_dims(ds)
    if ydim == "lat":
        area = _geographic_area(ds["lat"].values, ds["lon"].values)
        return xr.DataArray(
            area, dims=("lat", "lon"), coords={"lat": ds["lat"], "lon": ds["lon"]}, attrs={"units": "m2"}
        )
    crs = crs or grid_crs(ds)
    y, x = ds[ydim].values, ds[xdim].values
    dy, dx = float(np.median(np.diff(y))), float(np.median(np.diff(x)))
    chunks = (_dim_chunks(ds, ydim), _dim_chunks(ds, xdim))
    ys = da.from_array(y, chunks=(chunks[0],))
    xs = da.from_array(x, chunks=(chunks[1],))
    area = da.blockwise(
        lambda yb, xb: _projected_area_block(yb, xb, dy, dx, crs), "ij", ys, "i", xs, "j", dtype=np.float64
    )
    return xr.DataArray(area, dims=(ydim, xdim), coords={ydim: ds[ydim], xdim: ds[xdim]}, attrs={"units": "m2"})


def _dim_chunks(obj, dim: str) -> tuple[int, ...]:
    """Dask chunks of the data along ``dim`` (coordinates such as ``member_name`` may be chunked otherwise)."""
    arrays = [obj] if isinstance(obj, xr.DataArray) else list(obj.data_vars.values())
    for arr in arrays:
        if dim in arr.dims and arr.chunks:
            return arr.chunks[arr.dims.index(dim)]
    return (obj.sizes[dim],)


def grid_crs(ds) -> str:
    """WKT of a projected grid's CRS (its ``crs`` or ``spatial_ref`` variable, else rioxarray's)."""
    for name in ("crs", "spatial_ref"):
        if name in ds.coords or (isinstance(ds, xr.Dataset) and name in ds):
            attrs = ds[name].attrs
            for key in ("crs_wkt", "spatial_ref"):
                if key in attrs:
                    return attrs[key]
    try:
        crs = ds.rio.crs
    except Exception:  # rioxarray absent or no CRS
        crs = None
    if crs is None:
        raise ValueError("the projected grid has no CRS (crs_wkt or spatial_ref); pass crs= to cell_area")
    return crs.to_wkt()


def step_days(time: xr.DataArray) -> xr.DataArray:
    """Length of each time step [d]: from the midpoints between steps (the ends mirrored)."""
    t = pd.DatetimeIndex(time.values)
    if t.size == 1:
        return xr.DataArray([1.0], dims="time", coords={"time": time})
    mid = t[:-1] + (t[1:] - t[:-1]) / 2
    edges = t[:1] - (mid[:1] - t[:1]), mid, t[-1:] + (t[-1:] - mid[-1:])
    bounds = pd.DatetimeIndex(np.concatenate([e.values for e in edges]))
    days = np.diff(bounds.values).astype("timedelta64[s]").astype(float) / SECONDS_PER_DAY
    return xr.DataArray(days, dims="time", coords={"time": time})


#: Per-area rate units and the total each integrates to: (factor to the total's units, total's units).
_TOTALS = {
    "g m-2 d-1": (1e-15, "Pg yr-1"),  # carbon: g -> Pg
    "kg m-2 d-1": (1e-12, "km3 yr-1"),  # water: 1e12 kg = 1 km3
}


def area_weighted_total(da_: xr.DataArray, area: xr.DataArray | None = None) -> xr.DataArray:
    """Annual total of a per-area daily rate over the grid, or the area-weighted mean of other fluxes.

    Parameters
    ----------
    da_ : xarray.DataArray
        Flux (…, time, lat|y, lon|x); carbon in g m-2 d-1 gives Pg C yr-1, ET
        in kg m-2 d-1 gives km3 yr-1, anything else (e.g. W m-2) its
        area-weighted mean in its own units.  NaN cells (sea, masked) count as zero area.
    area : xarray.DataArray, optional
        Cell areas [m2] (default :func:`cell_area`).

    Returns
    -------
    xarray.DataArray
        Total per year over the period (time-weighted by the length of each
        step), or the area- and time-weighted mean; keeps other dims (member).
    """
    area = cell_area(da_) if area is None else area
    days = step_days(da_["time"])
    amount, covered = _weighted_sums(da_, area, days.values)
    return total_of_sums(amount, covered, da_.attrs.get("units", "1"), float(days.sum()), str(da_.name or "flux"))


def total_of_sums(
    amount: xr.DataArray, covered: xr.DataArray, units: str, period_days: float, name: str = "flux"
) -> xr.DataArray:
    """What :func:`area_weighted_total` reports, from the sums of value x area x days (``amount``) and of
    area x days over the values (``covered``) [m2 d]: the total per year for carbon and water rates,
    the area- and time-weighted mean [``units``] otherwise; ``period_days`` is the period's length [d]."""
    if units in _TOTALS:
        factor, total_units = _TOTALS[units]
        out = amount * factor / (period_days / DAYS_PER_YEAR)
        return out.assign_attrs(units=total_units, long_name=f"{name} total per year")
    # no value at all (e.g. no cell outside an area of applicability): NaN, without a 0/0 warning
    out = amount / covered.where(covered > 0)
    return out.assign_attrs(units=units, long_name=f"{name} area-weighted mean")


def _weighted_sums(values: xr.DataArray, area: xr.DataArray, days: np.ndarray) -> tuple[xr.DataArray, xr.DataArray]:
    """Sum of value x area x days and of area x days over the finite values of ``values`` (…, time,
    y, x), per index of its other dims (float64; lazily per chunk for dask arrays, one read of each).
    Cells whose weight is NaN are left out, as xarray's NaN-skipping sums left them out."""
    ydim, xdim = spatial_dims(values)
    space_time = ("time", ydim, xdim)
    lead = [d for d in values.dims if d not in space_time]
    arr = values.transpose(*lead, *space_time)
    arr = arr.stack(_lead=lead) if lead else arr.expand_dims(_lead=1)
    arr = arr.transpose("_lead", *space_time)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    weights = area.transpose(ydim, xdim).data
    if arr.chunks is None:
        sums = _weighted_sums_kernel(np.asarray(arr.data), days, np.asarray(weights, dtype=np.float64))
    else:
        data = arr.data
        per_block = da.blockwise(
            _weighted_sums_block,
            "ltyxk",
            data,
            "ltyx",
            da.from_array(days, chunks=(data.chunks[1],)),
            "t",
            da.asarray(weights).astype(np.float64).rechunk((data.chunks[2], data.chunks[3])),
            "yx",
            new_axes={"k": 2},
            adjust_chunks={"t": 1, "y": 1, "x": 1},
            dtype=np.float64,
        )
        sums = per_block.sum(axis=(1, 2, 3))
    coords = {"_lead": arr["_lead"]} if lead else None
    out = [xr.DataArray(sums[:, k], dims=("_lead",), coords=coords) for k in (0, 1)]
    if not lead:
        return out[0].isel(_lead=0, drop=True), out[1].isel(_lead=0, drop=True)
    return out[0].unstack("_lead"), out[1].unstack("_lead")


def _weighted_sums_block(values: np.ndarray, days: np.ndarray, area: np.ndarray) -> np.ndarray:
    """:func:`_weighted_sums_kernel` of one block, shaped (lead, 1, 1, 1, 2) for its place in the blockwise sum."""
    return _weighted_sums_kernel(values, days, area)[:, None, None, None, :]


@numba.njit(nogil=True, cache=True)
def _weighted_sums_kernel(values, days, area):
    """(lead, 2): per lead index, sum of value x days[t] x area[y, x] and of the weight over finite values."""
    n_lead, n_time, ny, nx = values.shape
    out = np.zeros((n_lead, 2))
    for a in range(n_lead):
        total = 0.0
        weight = 0.0
        for t in range(n_time):
            for i in range(ny):
                for j in range(nx):
                    v = values[a, t, i, j]
                    w = days[t] * area[i, j]
                    if not np.isnan(v) and not np.isnan(w):
                        total += v * w
                        weight += w
        out[a, 0] = total
        out[a, 1] = weight
    return out
