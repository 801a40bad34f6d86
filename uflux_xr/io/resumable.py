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

On object storage (an fsspec URL such as ``s3://bucket/run/product.zarr``)
nothing can be renamed, so the store is written in place and its root
metadata (``zarr.json``, which makes the prefix open as a Zarr group) is held
back under ``product.zarr.partial/``, beside ``plan.json`` and ``done/``,
until every region is written::

    product.zarr/            the arrays' metadata and chunks; no root zarr.json yet
    product.zarr.partial/
        zarr.json            the root metadata while the write is unfinished
        plan.json, done/     as above

A half-written store does not open at all (there is no group at the
destination), and :func:`is_complete` says False.  At the end the root
metadata, stamped complete and consolidated, is copied to the destination in
one request: the product appears whole.  A different product already at the
destination is removed when a new write starts (a local write replaces it only
at the end).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from uflux_xr.io.product import _progress, _replace, _zarr_ready, add_cf_metadata, consolidate
from uflux_xr.io.storage import filesystem, held_root_store, is_url, publish_held_root, redact, zarr_store

log = logging.getLogger(__name__)

COMPLETE_ATTR = "uflux_complete"
FINGERPRINT_ATTR = "uflux_job_fingerprint"


def partial_path(path: Path) -> Path:
    """Where an unfinished product lives (a name no reader takes for a product)."""
    return path.with_name(path.name + ".partial")


def is_complete(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when ``path`` (a local path or a URL) is a Zarr product stamped complete by :func:`write_resumable`."""
    return _complete_attrs(path, storage_options) is not None


def _complete_attrs(path: str | os.PathLike, storage_options: Mapping[str, Any] | None) -> dict | None:
    """The root attributes of the complete product at ``path`` (one read), None where there is none."""
    if not is_url(path) and not Path(path).exists():
        return None
    try:
        attrs = dict(zarr.open_group(zarr_store(path, storage_options, read_only=True), mode="r").attrs)
    except (FileNotFoundError, ValueError, KeyError):  # no group there (yet): zarr's not-found errors are these
        return None
    return attrs if attrs.get(COMPLETE_ATTR) == "true" else None


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
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write a product to Zarr v3 region by region; resume an interrupted write.

    Parameters
    ----------
    product : xarray.Dataset
        Lazy (dask-backed) product.
    path : str or path-like
        Destination ``.zarr``: a local path, or an fsspec URL (``s3://bucket/run/product.zarr``).
        Nothing opens there until every region is written (see the module docstring).
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
    storage_options : mapping, optional
        fsspec options for a URL (``endpoint_url``...); credentials are best left to the
        environment (:mod:`uflux_xr.io.storage`).

    Returns
    -------
    pathlib.Path or str
        The complete product (a URL stays a string).
    """
    product = add_cf_metadata(product, attrs=attrs, history=history)
    # date_created and history would differ between the first run and a restart.
    product.attrs.pop(COMPLETE_ATTR, None)
    regions = plan_regions(product, region_chunks)
    fingerprint = _fingerprint(product, identity)
    shown = redact(path)
    if (_complete_attrs(path, storage_options) or {}).get(FINGERPRINT_ATTR) == fingerprint:
        log.info("%s is complete for this job already; nothing to write", shown)
        return os.fspath(path) if is_url(path) else Path(path)
    if is_url(path):
        return _write_to_object_store(product, str(path), regions, fingerprint, progress, storage_options)
    path = Path(path)
    work = partial_path(path)
    store, done = work / "store.zarr", work / "done"
    plan_file = work / "plan.json"
    if plan_file.exists():
        _check_plan(plan_file.read_text(), fingerprint, str(work))
    else:
        shutil.rmtree(work, ignore_errors=True)
        done.mkdir(parents=True)
        _zarr_ready(product).to_zarr(store, mode="w", compute=False, zarr_format=3, consolidated=False)
        plan_file.write_text(_plan_text(fingerprint, regions))
    written = {p.name for p in done.iterdir()}
    _write_regions(product, str(store), regions, written, lambda rid: (done / rid).touch(), progress, shown)
    _stamp_complete(store, fingerprint)
    _replace(store, path)
    shutil.rmtree(work, ignore_errors=True)
    log.info("wrote %s (complete)", path)
    return path


def _plan_text(fingerprint: str, regions: list[dict[str, tuple[int, int]]]) -> str:
    return json.dumps({"fingerprint": fingerprint, "regions": [_region_id(r) for r in regions]})


def _check_plan(text: str, fingerprint: str, work: str) -> None:
    if json.loads(text)["fingerprint"] != fingerprint:
        raise ValueError(
            f"{work} holds an unfinished write of a different product (variables, shapes, chunks or "
            f"coordinates changed); remove it to start again, or rerun the original command to finish it"
        )


def _write_regions(product: xr.Dataset, store, regions, done: set[str], record, progress: bool, shown: str) -> None:
    """Write the regions not in ``done`` into the template at ``store``, calling ``record(region id)`` after each."""
    todo = [r for r in regions if _region_id(r) not in done]
    log.info("%s: %d of %d regions to write", shown, len(todo), len(regions))
    # Only dask-backed variables are deferred by the template write; the rest are written already.
    data_vars = [n for n, v in product.data_vars.items() if v.chunks is not None]
    for k, region in enumerate(todo, 1):
        window = {dim: slice(a, b) for dim, (a, b) in region.items()}
        part = _zarr_ready(product[data_vars].isel(window))
        part = part.drop_vars(list(part.coords))
        with _progress(progress):
            part.to_zarr(store, region=window, mode="r+", zarr_format=3, consolidated=False)
        record(_region_id(region))
        log.info("region %d/%d written (%s)", len(regions) - len(todo) + k, len(regions), _region_id(region))


def _stamp_complete(store, fingerprint: str) -> None:
    group = zarr.open_group(store, mode="r+")
    group.attrs.update({FINGERPRINT_ATTR: fingerprint, COMPLETE_ATTR: "true"})
    consolidate(store)


def _write_to_object_store(
    product: xr.Dataset,
    url: str,
    regions: list[dict[str, tuple[int, int]]],
    fingerprint: str,
    progress: bool,
    storage_options: Mapping[str, Any] | None,
) -> str:
    """:func:`write_resumable` where nothing can be renamed: the root metadata is held back until the end."""
    fs, root = filesystem(url, storage_options)
    work = root.rstrip("/") + ".partial"
    store = held_root_store(url, storage_options)
    plan_file = f"{work}/plan.json"
    fs.invalidate_cache()
    if fs.exists(plan_file):
        _check_plan(fs.cat_file(plan_file).decode(), fingerprint, redact(url) + ".partial")
    else:
        for old in (root, work):
            if fs.exists(old):
                log.info("%s: removing what is there (not this job's product) before writing", redact(old))
                fs.rm(old, recursive=True)
        _zarr_ready(product).to_zarr(store, mode="w", compute=False, zarr_format=3, consolidated=False)
        fs.pipe_file(plan_file, _plan_text(fingerprint, regions).encode())
    fs.invalidate_cache()
    done = {p.rsplit("/", 1)[-1] for p in fs.ls(f"{work}/done", detail=False)} if fs.exists(f"{work}/done") else set()
    _write_regions(
        product, store, regions, done, lambda rid: fs.pipe_file(f"{work}/done/{rid}", b""), progress, redact(url)
    )
    _stamp_complete(store, fingerprint)
    publish_held_root(url, storage_options)  # the product appears: its root metadata, stamped and consolidated
    log.info("wrote %s (complete)", redact(url))
    return url
