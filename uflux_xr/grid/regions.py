"""Sums over the regions of a map: land-cover classes or a user's region codes, chunk by chunk.

A region layer is one map (y, x) of class codes (IGBP, or any integer code
with CF ``flag_values``/``flag_meanings`` naming them).  :func:`region_index`
turns it into a dense index 0 … R-1 (-1 where a cell has no region) and the
regions' names; :func:`region_sums` adds a (time, y, x) field per time step
and region with one ``bincount`` per spatial chunk, and dask adds the chunks'
partial sums (the way flox reduces a groupby: a chunk-wise kernel, then a
combine), so that no (region, y, x) mask is ever made.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import xarray as xr

from uflux_xr.core.domain import spatial_dims
from uflux_xr.core.variables import igbp_classes


class RegionError(ValueError):
    """A region layer that cannot be used: not one map, or codes that are not whole numbers."""


def region_index(layer: xr.DataArray, source: str = "the cube") -> tuple[xr.DataArray, list[str]]:
    """Dense region index of every cell and the regions' names.

    Parameters
    ----------
    layer : xarray.DataArray
        One map (y, x) of class codes [1]: whole numbers, NaN where a cell is
        in no region.  ``IGBP`` codes are named by their abbreviation (``ENF``),
        and codes outside the 17 classes (0 or a fill value such as 255) are in
        no region; other layers are named by their CF ``flag_meanings`` when
        they have ``flag_values``, else by the code.
    source : str
        Where the layer came from, for error messages.

    Returns
    -------
    (xarray.DataArray, list of str)
        int32 index (y, x): 0 … R-1, -1 for no region (lazy when ``layer`` is);
        the R names, in the order of the sorted codes.
    """
    ydim, xdim = spatial_dims(layer)
    extra = [d for d in layer.dims if d not in (ydim, xdim)]
    if extra:
        raise RegionError(
            f"{source}: region layer {layer.name!r} has dimension(s) {extra}; "
            f"a region layer is one map ({ydim}, {xdim})"
        )
    codes = _codes(layer, source)
    if layer.name == "IGBP":
        classes = igbp_classes()
        codes = codes[np.isin(codes, list(classes))]
        names = [classes[int(c)] for c in codes]
    else:
        names = _region_names(layer, codes, source)
    index = xr.apply_ufunc(_index_block, layer, kwargs={"codes": codes}, dask="parallelized", output_dtypes=[np.int32])
    return index.rename(None), names


@dataclass(frozen=True)
class RegionMap:
    """A region layer resolved once: its name, the dense index of every cell and the regions' names."""

    name: str
    index: xr.DataArray  # int32 (y, x): 0 ... R-1, -1 for no region
    names: list[str]


def resolve_regions(layer: xr.DataArray, source: str = "the cube") -> RegionMap:
    """:func:`region_index` of ``layer`` kept with the layer's name (one pass over the map)."""
    index, names = region_index(layer, source)
    return RegionMap(str(layer.name), index, names)


def _codes(layer: xr.DataArray, source: str) -> np.ndarray:
    """The layer's distinct codes (sorted int64), after checking that they are whole numbers."""
    data = layer.data
    if np.issubdtype(layer.dtype, np.integer):
        return np.asarray(dask.compute(np.unique(data))[0], dtype=np.int64)
    finite = data[np.isfinite(data)]
    fractional, distinct = dask.compute(np.sum(finite != np.round(finite)), np.unique(finite))
    if int(fractional):
        raise RegionError(
            f"{source}: region layer {layer.name!r}: {int(fractional)} values are not whole numbers; expected "
            "class codes (a continuous variable cannot define regions)"
        )
    return np.asarray(distinct, dtype=np.int64)


def _index_block(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Position of each cell's code in ``codes`` (int32), -1 where the cell's code is missing or not listed."""
    out = np.full(values.shape, -1, dtype=np.int32)
    known = np.isfinite(values) if np.issubdtype(values.dtype, np.floating) else np.ones(values.shape, bool)
    if codes.size == 0:
        return out
    cell_codes = values[known].astype(np.int64)
    position = np.minimum(np.searchsorted(codes, cell_codes), codes.size - 1)
    out[known] = np.where(codes[position] == cell_codes, position, -1).astype(np.int32)
    return out


def _region_names(layer: xr.DataArray, codes: np.ndarray, source: str) -> list[str]:
    flag_values = layer.attrs.get("flag_values")
    meanings = str(layer.attrs.get("flag_meanings", "")).split()
    if flag_values is None or not meanings:
        return [str(int(c)) for c in codes]
    named = dict(zip((int(v) for v in np.atleast_1d(flag_values)), meanings, strict=False))
    unnamed = [int(c) for c in codes if int(c) not in named]
    if unnamed:
        raise RegionError(f"{source}: region layer {layer.name!r}: codes {unnamed} are not in its flag_values")
    return [named[int(c)] for c in codes]


def _sums_block(values: np.ndarray, index: np.ndarray, n_regions: int) -> np.ndarray:
    """(t, y, x) values [any units] of one chunk summed per time step and region: (t, 1, 1, R)."""
    flat = index.ravel()
    keep = flat >= 0
    flat = flat[keep]
    out = np.zeros((values.shape[0], 1, 1, n_regions), dtype=np.float64)
    for t in range(values.shape[0]):
        out[t, 0, 0] = np.bincount(flat, weights=values[t].ravel()[keep], minlength=n_regions)
    return out


def region_sums(values: xr.DataArray, index: xr.DataArray, n_regions: int) -> xr.DataArray:
    """Sum of ``values`` over each region's cells, per time step.

    Parameters
    ----------
    values : xarray.DataArray
        (time, y, x) field [any units], NaN-free (fill what should not count with 0).
    index : xarray.DataArray
        From :func:`region_index`: region of each cell, -1 for none.
    n_regions : int
        R, the number of regions.

    Returns
    -------
    xarray.DataArray
        (time, region) sums [units of ``values``], float64; lazy when ``values`` is.
    """
    ydim, xdim = spatial_dims(values)
    field = values.transpose("time", ydim, xdim)
    where = index.transpose(ydim, xdim)
    if isinstance(field.data, da.Array):
        _, ychunks, xchunks = field.data.chunks
        cells = where.chunk({ydim: ychunks, xdim: xchunks}).data
        parts = da.blockwise(
            _sums_block,
            "tyxr",
            field.data,
            "tyx",
            cells,
            "yx",
            n_regions=n_regions,
            new_axes={"r": n_regions},
            adjust_chunks={"y": 1, "x": 1},
            dtype=np.float64,
        )
        summed = parts.sum(axis=(1, 2))
    else:
        summed = _sums_block(np.asarray(field.values), np.asarray(where.values), n_regions)[:, 0, 0]
    return xr.DataArray(summed, dims=("time", "region"), coords={"time": field["time"]})
