"""Resumable Zarr products: written region by region with a record of the
regions done, so a killed run restarted with the same command continues where
it stopped.

Layout while a run is in progress (nothing at the destination yet)::

    product.zarr.partial/
        store.zarr/          the Zarr v3 store, metadata written first
        plan.json            fingerprint of the product and its list of regions
        done/<region id>     one empty file per region whose data are on disk

A region's record is created only after its data are written, so a region
interrupted by SIGKILL is written again on restart.  When every region is
recorded the store is stamped ``uflux_complete = "true"`` (with the job's
fingerprint) and renamed to the destination: a product at the destination is
always complete, and running the same job again leaves it as it is.  A restart whose
product differs (variables, shapes, chunks, coordinates) from the recorded
plan refuses to mix the two and says so.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from uflux_xr.io.product import _progress, _replace, _zarr_ready, add_cf_metadata, consolidate

log = logging.getLogger(__name__)

COMPLETE_ATTR = "uflux_complete"
FINGERPRINT_ATTR = "uflux_job_fingerprint"


def partial_path(path: Path) -> Path:
    """Where an unfinished product lives (a name no reader takes for a product)."""
    return path.with_name(path.name + ".partial")


def is_complete(path: str | os.PathLike) -> bool:
    """True when ``path`` is a Zarr product stamped complete by :func:`write_resumable`."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        return zarr.open_group(path, mode="r").attrs.get(COMPLETE_ATTR) == "true"
    except (FileNotFoundError, ValueError, KeyError):
        return False


def _chunk_edges(ds: xr.Dataset, dim: str) -> list[int]:
    chunks = ds.chunks.get(dim) if ds.chunks else None
    sizes = chunks if chunks else (ds.sizes[dim],)
    return [0, *itertools.accumulate(sizes)]


def plan_regions(ds: xr.Dataset, region_chunks: dict[str, int] | None = None) -> list[dict[str, tuple[int, int]]]:
    """Regions of ``ds`` as {dim: (start, stop)}, each a block of whole dask chunks.

    Only the dims of dask-backed variables count (the others are written
    with the template).

    Parameters
    ----------
    ds : xarray.Dataset
        Chunked dataset.
    region_chunks : dict, optional
        Dask chunks per region along each dim (default: 1 along ``time``, all
        along the others); regions are aligned with the chunks so that no two
        regions share a Zarr chunk.
    """
    region_chunks = {"time": 1, **(region_chunks or {})} if "time" in ds.dims else dict(region_chunks or {})
    lazy = [v for v in ds.data_vars.values() if v.chunks is not None]
    dims = [str(d) for d in ds.dims if any(d in v.dims for v in lazy)]
    per_dim = []
    for dim in dims:
        edges = _chunk_edges(ds, dim)
        step = region_chunks.get(dim, len(edges))
        per_dim.append([(edges[i], edges[min(i + step, len(edges) - 1)]) for i in range(0, len(edges) - 1, step)])
    return [dict(zip(dims, combo, strict=True)) for combo in itertools.product(*per_dim)]


def _fingerprint(ds: xr.Dataset, identity: str) -> str:
    """Hash of what makes two products the same job: variables, dims, chunks, coordinate values, attrs."""
    h = hashlib.sha256(identity.encode())
    for name in sorted(map(str, ds.variables)):
        var = ds[name]
        h.update(f"{name}{var.dims}{var.shape}{var.dtype}{var.chunks}".encode())
        if name in ds.coords and var.size < 10_000_000:
            values = np.asarray(var.values)
            # String arrays' bytes are pointers (StringDType) or padding: hash their text.
            text = values.dtype.kind in "OUT"
            h.update("\x00".join(map(str, values.ravel())).encode() if text else values.tobytes())
    stamped = ("id", "date_created", "date_modified", "history")  # differ between a run and its restart
    h.update(json.dumps({k: str(v) for k, v in sorted(ds.attrs.items()) if k not in stamped}).encode())
    return h.hexdigest()


def _region_id(region: dict[str, tuple[int, int]]) -> str:
    return "_".join(f"{dim}-{a}-{b}" for dim, (a, b) in region.items())


def write_resumable(
    product: xr.Dataset,
    path: str | os.PathLike,
    *,
    attrs: dict | None = None,
    history: str | None = None,
    region_chunks: dict[str, int] | None = None,
    identity: str = "",
    progress: bool = True,
) -> Path:
    """Write a product to Zarr v3 region by region; resume an interrupted write.

    Parameters
    ----------
    product : xarray.Dataset
        Lazy (dask-backed) product.
    path : str or path-like
        Destination ``.zarr``.  Nothing appears there until every region is written.
    attrs, history
        As for :func:`uflux_xr.io.write_product` (CF/ACDD metadata are added).
    region_chunks : dict, optional
        Dask chunks per region along each dim (see :func:`plan_regions`).
    identity : str
        What else defines the job (e.g. a hash of the models): part of the
        fingerprint, so a restart with other models never resumes or keeps a
        product of the old ones.
    progress : bool
        Show dask's progress bar for each region.

    Returns
    -------
    pathlib.Path
        The complete product.
    """
    path = Path(path)
    product = add_cf_metadata(product, attrs=attrs, history=history)
    # date_created and history would differ between the first run and a restart.
    product.attrs.pop(COMPLETE_ATTR, None)
    work = partial_path(path)
    store, done = work / "store.zarr", work / "done"
    regions = plan_regions(product, region_chunks)
    fingerprint = _fingerprint(product, identity)
    if is_complete(path) and zarr.open_group(path, mode="r").attrs.get(FINGERPRINT_ATTR) == fingerprint:
        log.info("%s is complete for this job already; nothing to write", path)
        return path
    plan_file = work / "plan.json"
    if plan_file.exists():
        recorded = json.loads(plan_file.read_text())
        if recorded["fingerprint"] != fingerprint:
            raise ValueError(
                f"{work} holds an unfinished write of a different product (variables, shapes, chunks or "
                f"coordinates changed); remove it to start again, or rerun the original command to finish it"
            )
    else:
        shutil.rmtree(work, ignore_errors=True)
        done.mkdir(parents=True)
        template = _zarr_ready(product)
        template.to_zarr(store, mode="w", compute=False, zarr_format=3, consolidated=False)
        plan_file.write_text(json.dumps({"fingerprint": fingerprint, "regions": [_region_id(r) for r in regions]}))
    todo = [r for r in regions if not (done / _region_id(r)).exists()]
    log.info("%s: %d of %d regions to write", path, len(todo), len(regions))
    # Only dask-backed variables are deferred by the template write; the rest are on disk already.
    data_vars = [n for n, v in product.data_vars.items() if v.chunks is not None]
    for k, region in enumerate(todo, 1):
        window = {dim: slice(a, b) for dim, (a, b) in region.items()}
        part = _zarr_ready(product[data_vars].isel(window))
        part = part.drop_vars(list(part.coords))
        with _progress(progress):
            part.to_zarr(
                store,
                region=window,
                mode="r+",
                zarr_format=3,
                consolidated=False,
            )
        (done / _region_id(region)).touch()
        log.info("region %d/%d written (%s)", len(regions) - len(todo) + k, len(regions), _region_id(region))
    group = zarr.open_group(store, mode="r+")
    group.attrs.update({FINGERPRINT_ATTR: fingerprint, COMPLETE_ATTR: "true"})
    consolidate(store)
    _replace(store, path)
    shutil.rmtree(work, ignore_errors=True)
    log.info("wrote %s (complete)", path)
    return path
