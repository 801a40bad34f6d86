"""Product metadata (CF-1.10, ACDD-1.3) and atomic writers for NetCDF-4 and Zarr v3.

A product is written to a temporary name beside its destination and renamed
into place only when every chunk is on disk, so a failed or killed run never
leaves a file or store at the destination that looks complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import tempfile
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr import __version__
from uflux_xr.core.domain import COORDINATE_ATTRS, spatial_dims
from uflux_xr.io.storage import is_url

log = logging.getLogger(__name__)

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")
ZARR_SUFFIXES = (".zarr",)


def _bounds(values: np.ndarray) -> np.ndarray:
    """Cell edges of a regular or irregular 1-D coordinate, shape (n, 2)."""
    values = np.asarray(values, dtype=float)
    mid = (values[1:] + values[:-1]) / 2
    first = values[0] - (mid[0] - values[0]) if values.size > 1 else values[0] - 0.5
    last = values[-1] + (values[-1] - mid[-1]) if values.size > 1 else values[-1] + 0.5
    edges = np.concatenate([[first], mid, [last]])
    return np.stack([edges[:-1], edges[1:]], axis=1)


def time_bounds(time: pd.DatetimeIndex) -> np.ndarray:
    """Averaging periods of time steps labelled at their middles (the data contract):
    edges half-way between labels, the outer ones mirrored; one label spans a day."""
    t = time.values
    if len(t) == 1:
        half = np.timedelta64(12, "h")
        return np.array([[t[0] - half, t[0] + half]])
    mid = t[:-1] + (t[1:] - t[:-1]) / 2
    edges = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return np.stack([edges[:-1], edges[1:]], axis=1)


def flag_variable(da: xr.DataArray) -> xr.DataArray:
    """A CF flag variable in its integer type, with ``flag_values`` of that type (CF 1.10 §3.5).

    A flag layer read back from a store with a ``_FillValue`` (the AOA layers: -1 where no DI) comes as
    floats with NaN; it is written as the integers it was, the fill value restored.
    """
    stored = da.encoding.get("dtype", da.dtype)
    dtype = np.dtype(stored) if np.issubdtype(np.dtype(stored), np.integer) else np.dtype(np.int8)
    fill = da.encoding.get("_FillValue")
    out = da
    if np.issubdtype(da.dtype, np.floating):
        fill = -1 if fill is None or not np.isfinite(fill) else fill
        out = da.fillna(fill).astype(dtype)
    elif da.dtype != dtype:
        out = da.astype(dtype)
    out.attrs = {**da.attrs, "flag_values": np.asarray(da.attrs["flag_values"]).astype(dtype)}
    out.encoding = {k: v for k, v in da.encoding.items() if k not in ("dtype", "_FillValue")}
    if fill is not None:
        out.encoding["_FillValue"] = dtype.type(fill)
    return out


def add_cf_metadata(product: xr.Dataset, *, attrs: dict | None = None, history: str | None = None) -> xr.Dataset:
    """Return the product with CF-1.10 and ACDD-1.3 metadata filled in.

    Adds coordinate bounds (``time_bnds``, ``lat_bnds``/``lon_bnds``), a ``crs``
    grid-mapping variable, ACDD discovery attributes (title, summary, keywords,
    geospatial and time coverage, creator, dates) and appends a line to
    ``history``.  Existing attributes win over defaults; ``attrs`` wins over both.

    Parameters
    ----------
    product : xarray.Dataset
        Product (member, time, lat|y, lon|x), lazy or not.
    attrs : dict, optional
        Global attributes to set (e.g. ``title``, ``creator_name``, ``license``).
    history : str, optional
        What produced the product, for the ``history`` line.
    """
    ds = product.copy()
    ydim, xdim = spatial_dims(ds)
    time = ds.indexes["time"]
    ds = ds.assign_coords(time_bnds=(("time", "nv"), time_bounds(time)))
    ds["time"].attrs.update({"standard_name": "time", "long_name": "time", "axis": "T", "bounds": "time_bnds"})
    if ydim == "lat":
        ds = ds.assign_coords(
            lat_bnds=(("lat", "nv"), _bounds(ds["lat"].values)), lon_bnds=(("lon", "nv"), _bounds(ds["lon"].values))
        )
        ds["lat"].attrs.update({**COORDINATE_ATTRS["lat"], "bounds": "lat_bnds"})
        ds["lon"].attrs.update({**COORDINATE_ATTRS["lon"], "bounds": "lon_bnds"})
        ds["crs"] = xr.DataArray(
            np.int32(0),
            attrs={
                "grid_mapping_name": "latitude_longitude",
                "longitude_of_prime_meridian": 0.0,
                "semi_major_axis": 6378137.0,
                "inverse_flattening": 298.257223563,
            },
        )
    elif ds.rio.crs is not None:
        crs = ds.rio.crs
        ds = ds.drop_vars([v for v in ("spatial_ref", "crs") if v in ds.variables])
        ds = ds.rio.write_crs(crs, grid_mapping_name="crs")
        ds["x"].attrs.update(COORDINATE_ATTRS["x"])
        ds["y"].attrs.update(COORDINATE_ATTRS["y"])
    if "member" in ds.dims and not np.issubdtype(ds["member"].dtype, np.integer):
        # CF coordinate variables must be numeric and monotonic: index members 0..n-1
        # and keep their labels as a string auxiliary coordinate.
        labels = np.array([str(v) for v in ds["member"].values], dtype=object)
        ds = ds.assign_coords(
            member=np.arange(ds.sizes["member"], dtype=np.int32),
            member_name=("member", labels, {"long_name": "ensemble member label"}),
        )
    if "member" in ds.dims:
        ds["member"].attrs.update({"long_name": "ensemble member index", "units": "1"})
    for name in [*ds.coords, *[v for v in map(str, ds.data_vars) if v.endswith("_bnds")]]:
        ds[name].encoding["_FillValue"] = None
    ds["time"].encoding.update({"units": "hours since 1970-01-01 00:00:00", "calendar": "proleptic_gregorian"})
    ds["time_bnds"].encoding.update(ds["time"].encoding)
    for name in ds.data_vars:
        if "flag_values" in ds[name].attrs:
            ds[name] = flag_variable(ds[name])
    for name in ds.data_vars:
        if name == "crs":
            continue
        if ds[name].dims[-2:] == (ydim, xdim):
            ds[name].encoding.pop("grid_mapping", None)  # rioxarray's; CF wants the attribute
            ds[name].attrs["grid_mapping"] = "crs"
            ds[name].attrs.setdefault("coverage_content_type", "modelResult")
        if "_FillValue" not in ds[name].encoding and np.issubdtype(ds[name].dtype, np.floating):
            ds[name].encoding["_FillValue"] = np.float32(np.nan)

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flux_names = [str(v) for v in ds.data_vars if v != "crs"]
    defaults = {
        "title": "uflux-xr upscaled flux product",
        "summary": (
            "Ecosystem fluxes (" + ", ".join(flux_names) + ") upscaled from eddy-covariance towers with "
            "tree-ensemble models applied to gridded climate and satellite predictors; one member per "
            "model of the ensemble."
        ),
        "keywords": "eddy covariance, upscaling, GPP, ecosystem respiration, NEE, latent heat, sensible heat",
        "id": f"uflux-xr-{now}",
        "naming_authority": "uflux-xr",
        "institution": "uflux-xr users",
        "source": f"uflux-xr {__version__}",
        "creator_name": "uflux-xr",
        "creator_type": "institution",
        "license": "CC-BY-4.0",
        "product_version": __version__,
        "processing_level": "L4 model output",
        "cdm_data_type": "Grid",
        "standard_name_vocabulary": "CF Standard Name Table v93",
        "references": "Reichstein et al. (2005); Jung et al. (2020), FLUXCOM; Zhou & Feng (2019), deep forest",
    }
    merged = {**defaults, **ds.attrs, **(attrs or {})}
    merged["Conventions"] = "CF-1.10, ACDD-1.3"
    merged["date_created"] = merged.get("date_created", now)
    merged["date_modified"] = now
    merged["time_coverage_start"] = pd.Timestamp(time[0]).isoformat()
    merged["time_coverage_end"] = pd.Timestamp(ds["time_bnds"].values[-1, 1]).isoformat()
    if len(time) > 1:
        merged["time_coverage_resolution"] = pd.Timedelta(time[1] - time[0]).isoformat()
    if ydim == "lat":
        lat_b, lon_b = ds["lat_bnds"].values, ds["lon_bnds"].values
        merged.update(
            {
                "geospatial_lat_min": float(lat_b.min()),
                "geospatial_lat_max": float(lat_b.max()),
                "geospatial_lon_min": float(lon_b.min()),
                "geospatial_lon_max": float(lon_b.max()),
                "geospatial_lat_units": "degrees_north",
                "geospatial_lon_units": "degrees_east",
            }
        )
    line = f"{now}: {history or 'written by uflux-xr'} (uflux-xr {__version__})"
    merged["history"] = f"{merged['history']}\n{line}" if merged.get("history") else line
    ds.attrs = merged
    return ds


def _product_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in NETCDF_SUFFIXES:
        return "netcdf"
    if suffix in ZARR_SUFFIXES:
        return "zarr"
    raise ValueError(f"{path}: unknown product format; use a suffix in {NETCDF_SUFFIXES + ZARR_SUFFIXES}")


def open_any(path: str | os.PathLike, **kwargs) -> xr.Dataset:
    """Open a NetCDF file or a Zarr store (by suffix, or a directory) lazily; a local path or a URL.

    Raises
    ------
    FileNotFoundError
        Naming the path when it does not exist.
    """
    from uflux_xr.io.storage import exists, local_copy, redact, zarr_store

    if not exists(path):
        raise FileNotFoundError(f"{redact(path)}: input file not found")
    if is_url(path):
        if Path(os.fspath(path)).suffix.lower() in ZARR_SUFFIXES:
            ds = xr.open_zarr(zarr_store(path, read_only=True), consolidated=False, **kwargs)
        else:  # NetCDF-4 needs a file: a fresh local copy
            ds = xr.open_dataset(local_copy(path), **kwargs)
    elif Path(path).suffix == ".zarr" or Path(path).is_dir():
        ds = xr.open_zarr(path, consolidated=False, **kwargs)
    else:
        ds = xr.open_dataset(path, **kwargs)
    # Zarr does not say which variables are coordinates: a CF grid-mapping variable read back
    # as data would hide the CRS from rioxarray (and appear as a predictor).
    mappings = {v.attrs.get("grid_mapping") for v in ds.data_vars.values()}
    return ds.set_coords([m for m in mappings if m in ds.data_vars])


def _progress(enabled: bool):
    """dask's progress bar for the local schedulers; silent on a distributed cluster."""
    if not enabled:
        return contextlib.nullcontext()
    try:
        from distributed import default_client

        default_client()
        return contextlib.nullcontext()
    except (ImportError, ValueError):
        import sys

        from dask.diagnostics import ProgressBar

        # Redraw often on a terminal; in a log file, a line every 10 s is enough.
        return ProgressBar(minimum=1.0, dt=0.5 if sys.stdout.isatty() else 10.0)


def _netcdf_encoding(ds: xr.Dataset) -> dict:
    enc = {}
    for name, var in ds.data_vars.items():
        if var.ndim >= 3:
            chunks = tuple(c[0] for c in var.chunks) if var.chunks else None
            enc[name] = {"zlib": True, "complevel": 4, "shuffle": True, **({"chunksizes": chunks} if chunks else {})}
    return enc


def write_dataset(ds: xr.Dataset, path: str | os.PathLike, *, progress: bool = True) -> Path | str:
    """Compute and write any dataset to NetCDF-4 (``.nc``) or Zarr v3 (``.zarr``), atomically.

    The data go to a temporary file or store beside ``path`` that is renamed to
    ``path`` only after every chunk is written; an existing file at ``path`` is
    replaced only then, so a failed run never leaves a complete-looking output.

    Parameters
    ----------
    ds : xarray.Dataset
        Lazy or in-memory dataset.
    path : str or path-like
        Destination; the suffix picks the format.
    progress : bool
        Show dask's progress bar while computing (local schedulers).
    """
    return write_dataset_computing(ds, path, progress=progress)[0]


def write_dataset_computing(
    ds: xr.Dataset, path: str | os.PathLike, *others, progress: bool = True
) -> tuple[Path | str, tuple]:
    """:func:`write_dataset`, computing the lazy ``others`` in the same dask pass.

    Whatever ``ds`` and ``others`` read in common (the chunks of one opened
    store) is then read once.  Returns the path and the computed ``others``.

    At a URL (object storage), a Zarr store is written in place with its root
    metadata held back until every chunk is written
    (:func:`uflux_xr.io.storage.held_root_store`), so it opens only when
    complete; a NetCDF file is written locally and put in one request.
    """
    if is_url(path):
        return _write_to_url(ds, os.fspath(path), others, progress)
    path = Path(path)
    fmt = _product_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    target = tmp / path.name
    try:
        with _progress(progress):
            if fmt == "netcdf":
                writing = ds.to_netcdf(
                    target, engine="netcdf4", format="NETCDF4", encoding=_netcdf_encoding(ds), compute=False
                )
            else:
                writing = _zarr_ready(ds).to_zarr(target, mode="w", zarr_format=3, consolidated=False, compute=False)
            _, *computed = dask.compute(writing, *others)
            if fmt != "netcdf":
                consolidate(target)
        _replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote %s", path)
    return path, tuple(computed)


def _write_to_url(ds: xr.Dataset, url: str, others: tuple, progress: bool) -> tuple[str, tuple]:
    """:func:`write_dataset_computing` to object storage."""
    from uflux_xr.io.storage import filesystem, held_root_store, publish_held_root, redact, remove

    if _product_format(Path(url)) == "netcdf":
        with tempfile.TemporaryDirectory(prefix="uflux-xr-") as tmp:
            local, computed = write_dataset_computing(ds, Path(tmp) / Path(url).name, *others, progress=progress)
            fs, inside = filesystem(url)
            fs.put_file(str(local), inside)
        log.info("wrote %s", redact(url))
        return url, computed
    remove(url)
    remove(url.rstrip("/") + ".partial")
    store = held_root_store(url)
    with _progress(progress):
        writing = _zarr_ready(ds).to_zarr(store, mode="w", zarr_format=3, consolidated=False, compute=False)
        _, *computed = dask.compute(writing, *others)
    consolidate(store)
    publish_held_root(url)
    log.info("wrote %s", redact(url))
    return url, tuple(computed)


def consolidate(store) -> None:
    """Write a finished Zarr store's consolidated metadata, so ``xr.open_zarr(path)`` opens it without a warning.

    zarr-python 3 warns that consolidated metadata is not yet part of the Zarr
    v3 specification; xarray and zarr-python read it, and readers that do
    not simply ignore it, so the warning is silenced here.
    """
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(store if hasattr(store, "get") else str(store))


def _zarr_ready(ds: xr.Dataset) -> xr.Dataset:
    """Drop NetCDF encodings Zarr v3 does not take; fixed-width unicode (no Zarr v3 spec) becomes vlen UTF-8."""
    ds = ds.copy()
    for name, var in ds.variables.items():
        var.encoding.pop("chunksizes", None)
        var.encoding.pop("zlib", None)
        if var.dtype.kind == "U":
            ds[name] = var.astype(object)
    return ds


def write_product(
    product: xr.Dataset,
    path: str | os.PathLike,
    *,
    attrs: dict | None = None,
    history: str | None = None,
    progress: bool = True,
) -> Path | str:
    """Compute and write a product to NetCDF-4 (``.nc``) or Zarr v3 (``.zarr``), atomically.

    CF/ACDD metadata are added by :func:`add_cf_metadata`, then the product is
    written by :func:`write_dataset` (temporary name, renamed when complete).

    Parameters
    ----------
    product : xarray.Dataset
        Lazy or in-memory product.
    path : str or path-like
        Destination; the suffix picks the format.
    attrs : dict, optional
        Global attributes to set.
    history : str, optional
        What produced the product, for the ``history`` attribute.
    progress : bool
        Show dask's progress bar while computing (local schedulers).

    Returns
    -------
    pathlib.Path or str
        The written product (a URL stays a string).
    """
    return write_dataset(add_cf_metadata(product, attrs=attrs, history=history), path, progress=progress)


def _replace(new: Path, dest: Path) -> None:
    """Move ``new`` to ``dest``; an existing ``dest`` is removed only once ``new`` is in place."""
    if not dest.exists():
        os.replace(new, dest)
        return
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
