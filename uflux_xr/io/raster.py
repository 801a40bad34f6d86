"""Satellite rasters (GeoTIFF or NetCDF) onto a target grid, through rioxarray.

Scale factors and fill values are applied on reading (``mask_and_scale``);
rasters are reprojected and resampled onto the grid of ``like`` with an
explicit resampling method (no silent default: averaging 500 m reflectance
onto 0.25° is a different product from taking the nearest pixel).
NIRv and EVI2 are derived from red and NIR reflectance bands.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from uflux_xr.core.physics import evi2, nirv
from uflux_xr.core.plausibility import check_plausible
from uflux_xr.io.storage import local_copy

log = logging.getLogger(__name__)

RESAMPLING_METHODS = ("nearest", "bilinear", "cubic", "average", "mode", "min", "max", "med", "sum")


class RasterError(ValueError):
    """A raster cannot be read or put onto the target grid."""


def _open(path: Path, variable: str | None, scale_factor: float | None = None) -> xr.DataArray:
    import rioxarray
    from rasterio.errors import RasterioIOError

    if not path.exists():
        raise FileNotFoundError(f"{path}: raster file not found")
    try:
        obj = rioxarray.open_rasterio(path, mask_and_scale=True)
    except RasterioIOError as err:
        hint = (
            " HDF4 (MODIS .hdf) needs a GDAL built with HDF4, which the rasterio wheels are not: convert the "
            "subdataset to GeoTIFF (gdal_translate 'HDF4_EOS:EOS_GRID:file.hdf:grid:band' band.tif) or "
            "download the product as GeoTIFF/NetCDF."
            if path.suffix.lower() in (".hdf", ".hdf4", ".h4")
            else ""
        )
        raise RasterError(f"{path}: cannot be read as a raster ({err}).{hint}") from None
    if isinstance(obj, list):
        raise RasterError(f"{path}: holds several grids; pass a single-grid file")
    if isinstance(obj, xr.Dataset):
        if variable is None:
            if len(obj.data_vars) != 1:
                raise RasterError(f"{path}: several variables {sorted(map(str, obj.data_vars))}; pass variable=")
            variable = str(next(iter(obj.data_vars)))
        if variable not in obj:
            raise RasterError(f"{path}: no variable {variable!r}; it has {sorted(map(str, obj.data_vars))}")
        obj = obj[variable]
    if "band" in obj.dims:
        if obj.sizes["band"] != 1:
            raise RasterError(f"{path}: {obj.sizes['band']} bands; pass one band per file")
        obj = obj.isel(band=0, drop=True)
    if obj.rio.crs is None:
        raise RasterError(f"{path}: the raster has no CRS; write one (e.g. rio.write_crs('EPSG:4326'))")
    if scale_factor is not None:
        own = obj.encoding.get("scale_factor", obj.attrs.get("scale_factor"))
        if own is not None and float(own) != 1.0:
            raise RasterError(f"{path}: the file has its own scale_factor {own}; scale_factor= would apply a second")
        obj = obj * scale_factor
    return obj.astype(np.float32)


def _apply_qa(data: xr.DataArray, qa: xr.DataArray, mask: int, path: Path) -> xr.DataArray:
    """``data`` where every bit of ``mask`` is 0 in ``qa`` (a missing QA value rejects the pixel)."""
    bits = np.where(np.isfinite(qa.values), qa.values, -1).astype(np.int64)
    good = (bits >= 0) & ((bits & int(mask)) == 0)
    kept = float(good[np.isfinite(data.values)].mean()) if np.isfinite(data.values).any() else 0.0
    log.info("%s: the QA mask %s keeps %.1f %% of the valid pixels", path.name, bin(int(mask)), 100 * kept)
    if kept == 0.0:
        raise RasterError(f"{path}: the QA mask {bin(int(mask))} on {qa.name!r} rejects every pixel")
    return data.where(good)


def _target_grid(like) -> xr.DataArray:
    grid = like if isinstance(like, xr.DataArray) else next(iter(like.data_vars.values()))
    if "lat" in grid.dims and "lon" in grid.dims:
        grid = grid.rename({"lat": "y", "lon": "x"})
        if grid.rio.crs is None:
            grid = grid.rio.write_crs("EPSG:4326")
    for dim in [d for d in grid.dims if d not in ("y", "x")]:
        grid = grid.isel({dim: 0}, drop=True)
    if grid.rio.crs is None:
        raise RasterError("the target grid (like=) has (y, x) dims but no CRS; write one with rio.write_crs")
    return grid.rio.set_spatial_dims(x_dim="x", y_dim="y")


def read_raster(
    paths,
    like=None,
    resampling: str | None = None,
    *,
    variable: str | None = None,
    name: str | None = None,
    units: str = "1",
    scale_factor: float | None = None,
    qa_variable: str | None = None,
    qa_mask: int | None = None,
) -> xr.DataArray:
    """Read a raster (GeoTIFF or NetCDF) and put it on the grid of ``like``.

    Parameters
    ----------
    paths : path or list of paths
        One file, or several that tile the area (merged before reprojection).
    like : xarray.Dataset or DataArray, optional
        Target grid: geographic ``(lat, lon)`` (EPSG:4326 assumed when no CRS)
        or projected ``(y, x)`` with a CRS.  None keeps the native grid.
    resampling : str
        Method when ``like`` is given, one of :data:`RESAMPLING_METHODS`; required.
    variable : str, optional
        Variable of a NetCDF file holding several.
    name : str, optional
        Name of the result (default: the file's variable name).  A canonical
        name (``RED``, ``NIR``, ``NDVI``, ``EVI``, ``LAI``, ``elevation`` ...) is
        checked against its plausible range, which catches a missing scale factor.
    units : str
        Units of the values after scaling (reflectances and indices: "1").
    scale_factor : float, optional
        Scale for files that store scaled integers without saying so (MODIS
        surface reflectance written × 10^4 without a ``scale_factor``
        attribute: ``1e-4``); refused when the file has its own.
    qa_variable : str, optional
        Quality bit-field variable of the same file(s), applied on the native
        grid before any resampling.
    qa_mask : int, optional
        Bits of ``qa_variable`` that must all be 0 for a pixel to be kept
        (MODIS MOD09/MYD09GQ: ``0b11``, the MODLAND bits "ideal quality";
        ``0b11110011`` also demands band-1 quality 0000).

    Returns
    -------
    xarray.DataArray
        Values with scale and fill applied (NaN where missing); dims ``(lat, lon)``
        for geographic targets or ``(y, x)`` with the CRS for projected ones.

    Raises
    ------
    RasterError
        Unreadable file, several bands, no CRS, or a raster that does not
        overlap the target grid.
    uflux_xr.core.plausibility.PlausibilityError
        Values of a canonical ``name`` outside their plausible range.
    """
    # a URL becomes a fresh local copy (GDAL reads files); every name below is then a local path
    paths = [Path(local_copy(p)) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    arrays = [_open(p, variable, scale_factor) for p in paths]
    if (qa_variable is None) != (qa_mask is None):
        raise RasterError("qa_variable= and qa_mask= go together")
    if qa_variable is not None and qa_mask is not None:
        arrays = [_apply_qa(a, _open(p, qa_variable), qa_mask, p) for a, p in zip(arrays, paths, strict=True)]
    crs = {str(a.rio.crs) for a in arrays}
    if len(crs) > 1:
        raise RasterError(f"{', '.join(p.name for p in paths)}: tiles in different CRS {sorted(crs)}")
    if len(arrays) > 1:
        from rioxarray.merge import merge_arrays

        data = merge_arrays(arrays)
    else:
        data = arrays[0]
    if like is not None:
        if resampling is None:
            raise RasterError(f"resampling= is required when reprojecting; one of {RESAMPLING_METHODS}")
        if resampling not in RESAMPLING_METHODS:
            raise RasterError(f"unknown resampling {resampling!r}; expected one of {RESAMPLING_METHODS}")
        from rasterio.enums import Resampling

        target = _target_grid(like)
        # GDAL skips source nodata only when it can compare against it, which NaN never
        # equals: reproject with a finite sentinel, then turn it back into NaN.
        sentinel = np.float32(-3.0e38)
        source = data.fillna(sentinel).rio.write_nodata(sentinel, encoded=False)
        data = source.rio.reproject_match(target, resampling=Resampling[resampling], nodata=sentinel)
        data = data.where(data != sentinel)
        covered = float(data.notnull().mean())
        if covered == 0.0:
            bounds = ", ".join(f"{v:.4f}" for v in arrays[0].rio.bounds())
            grid = ", ".join(f"{v:.4f}" for v in target.rio.bounds())
            raise RasterError(
                f"{', '.join(p.name for p in paths)}: no value on the target grid: the raster ({bounds} in "
                f"{arrays[0].rio.crs}) does not overlap the grid ({grid} in {target.rio.crs})"
            )
        log.info("raster %s covers %.1f %% of the target grid", paths[0].name, 100 * covered)
        data = data.assign_coords(x=target["x"], y=target["y"])
        if "lat" in getattr(like, "dims", ()):
            data = data.rename({"y": "lat", "x": "lon"}).drop_vars("spatial_ref", errors="ignore")
    data = data.drop_vars("spatial_ref", errors="ignore") if like is not None and "lat" in data.dims else data
    data.name = name or data.name
    data.attrs = {"units": units, "source_file": ", ".join(p.name for p in paths)}
    log.info("raster %s -> %s", data.attrs["source_file"], dict(data.sizes))
    if data.name is not None:
        check_plausible(data, source=data.attrs["source_file"])
    return data


def vegetation_indices(red: xr.DataArray, nir: xr.DataArray) -> xr.Dataset:
    """NDVI, NIRv and EVI2 [-] from red and NIR reflectance [-] on the same grid.

    Raises
    ------
    RasterError
        When the two bands are not on the same grid.
    uflux_xr.core.plausibility.PlausibilityError
        Reflectances outside [-0.01, 1.2] (a missing 1e-4 scale factor) or
        indices outside their ranges.
    """
    try:
        xr.align(red, nir, join="exact")
    except ValueError:
        raise RasterError("red and NIR bands are not on the same grid; read both with the same like=") from None
    source = " and ".join(str(b.attrs.get("source_file", b.name or "band")) for b in (red, nir))
    check_plausible(red.rename("RED").assign_attrs(units="1"), source=source)
    check_plausible(nir.rename("NIR").assign_attrs(units="1"), source=source)
    ndvi = (nir - red) / (nir + red)
    out = xr.Dataset({"NDVI": ndvi, "NIRv": nirv(ndvi, nir), "EVI2": evi2(nir, red)})
    for v in out.data_vars:
        out[v].attrs = {"units": "1"}
    return check_plausible(out, source=source)
