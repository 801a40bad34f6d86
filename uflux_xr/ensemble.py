"""Ensemble statistics per cell and area-weighted totals of products.

Cell areas are true areas on the WGS84 ellipsoid: for geographic grids
R_q² Δλ (sin β_north − sin β_south) with β the authalic latitude and R_q the
authalic radius (Snyder 1987, eqs. 3-11 to 3-13), so the global 0.25° grid
sums to the ellipsoid's 5.1007 × 10^14 m²; for projected grids Δx Δy divided
by the projection's areal scale factor at the cell centre (pyproj), so a 100 m
British National Grid cell is not taken as exactly 10,000 m² of ground.
"""

from __future__ import annotations

from typing import cast

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.domain import spatial_dims

WGS84_A = 6378137.0  # semi-major axis [m]
WGS84_E = np.sqrt(2 / 298.257223563 - (1 / 298.257223563) ** 2)  # first eccentricity
SECONDS_PER_DAY = 86400.0
DAYS_PER_YEAR = 365.25


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
        count = var.notnull().sum(dim)
        out[f"{name}_mean"] = var.mean(dim).assign_attrs(
            {
                **var.attrs,
                "cell_methods": f"{dim}: mean",
                "long_name": f"{var.attrs.get('long_name', name)}, ensemble mean",
            }
        )
        squares = ((var - var.mean(dim)) ** 2).sum(dim)
        # no 0/0 for single-member cells; np.sqrt of a DataArray is a DataArray (numpy's stubs say ndarray)
        std = cast(xr.DataArray, np.sqrt(squares / (count - 1).where(count > 1)))
        out[f"{name}_std"] = std.assign_attrs(
            units=var.attrs.get("units", "1"),
            cell_methods=f"{dim}: standard_deviation",
            long_name=f"{var.attrs.get('long_name', name)}, ensemble standard deviation",
        )
        out[f"{name}_count"] = count.astype("int16").assign_attrs(
            units="1", long_name=f"ensemble members with a value of {name}"
        )
    if not out:
        raise ValueError(f"no variable of the product has the ensemble dim {dim!r}")
    return xr.Dataset(out, attrs=product.attrs)


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


def _step_days(time: xr.DataArray) -> xr.DataArray:
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
    ydim, xdim = spatial_dims(da_)
    days = _step_days(da_["time"])
    units = da_.attrs.get("units", "1")
    if units in _TOTALS:
        factor, total_units = _TOTALS[units]
        amount = (da_.fillna(0) * area * days).sum(("time", ydim, xdim))
        out = amount * factor / (float(days.sum()) / DAYS_PER_YEAR)
        return out.assign_attrs(units=total_units, long_name=f"{da_.name or 'flux'} total per year")
    weights = (area * days).where(da_.notnull())
    covered = weights.sum(("time", ydim, xdim))
    # no value at all (e.g. no cell outside an area of applicability): NaN, without a 0/0 warning
    out = (da_.fillna(0) * weights).sum(("time", ydim, xdim)) / covered.where(covered > 0)
    return out.assign_attrs(units=units, long_name=f"{da_.name or 'flux'} area-weighted mean")
