"""Inputs read from files: a predictor cube (NetCDF or Zarr) and a tower dataset (``data.source: files``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import xarray as xr

from uflux_xr.core.domain import check_grid, spatial_dims
from uflux_xr.core.plausibility import check_plausible
from uflux_xr.grid.extract import tower_overlap
from uflux_xr.io import open_any
from uflux_xr.sources.base import GridOutline, Inputs, InputSource


class FileSource(InputSource):
    """``data.cube`` and ``data.sites`` as written by ``uflux-xr prepare`` (or any cube with a land mask)."""

    name = "files"
    land_note = "the cube's land_mask"

    def _cube(self) -> xr.Dataset:
        """The cube, lazily, every variable in the same chunks: the run's ``output.chunks`` where they name a
        dim, else the stored chunks of its first 3-D variable.  (A cube written by a plain ``to_zarr()``
        may store its 2-D layers in other chunks than its 3-D ones.)"""
        config = self.config
        cube = open_any(config.data.cube_file, chunks={})
        three_d = [v for v in cube.data_vars.values() if v.ndim == 3]
        chunks = {str(d): c[0] for d, c in three_d[0].chunksizes.items()} if three_d else {}
        chunks.update({d: n for d, n in config.output.chunks.items() if d in cube.dims})
        return cube.chunk({d: n for d, n in chunks.items() if d in cube.dims})

    def read(self, out_dir: Path, window: Mapping[str, slice] | None = None) -> Inputs:
        config = self.config
        cube = self._cube()
        if config.domain is not None:
            check_grid(cube, config.domain, config.data.cube_file)
        short = [d for d in spatial_dims(cube) if cube.sizes[d] < 2]
        if short:
            raise ValueError(
                f"{config.data.cube_path}: one cell along {short}: cell sizes (and so the area-weighted totals) are "
                "undefined; build a cube of at least 2 x 2 cells (uflux-xr prepare regrids a point file to a domain)"
            )
        if "land_mask" not in cube:
            raise ValueError(
                f"{config.data.cube_path}: no 'land_mask' variable (1 land, 0 water); build the cube with "
                "uflux_xr.build_cube / uflux-xr prepare, which makes it from ERA5 'lsm' or a land-cover raster"
            )
        # A sample of time steps here; every chunk is checked again when it is predicted.
        check_plausible(cube, source=str(config.data.cube_path), max_time_steps=12)
        sites = open_any(config.data.sites_file).load()
        check_plausible(sites, source=str(config.data.sites_path))
        return Inputs(cube, sites, None, self)

    def outline(self, window: Mapping[str, slice] | None = None) -> GridOutline:
        # the cube's metadata and the towers' records; no predictor value is read
        config = self.config
        cube = self._cube()
        ydim, xdim = spatial_dims(cube)
        if window:
            cube = cube.isel({d: w for d, w in window.items() if d in cube.dims})
        sizes = {"time": cube.sizes["time"], ydim: cube.sizes[ydim], xdim: cube.sizes[xdim]}
        var = next(v for v in cube.data_vars.values() if v.ndim == 3)
        arr = var.transpose("time", ydim, xdim)
        chunks = dict(zip(("time", ydim, xdim), arr.chunks or tuple((n,) for n in arr.shape), strict=True))
        description = f"{sizes[xdim]} x {sizes[ydim]} cells, {sizes['time']} steps from {config.data.cube_path}"
        sites = open_any(config.data.sites_file)
        if config.training.drivers == "towers":
            present = [f for f in config.fluxes if f in sites]
            rows = int(sites[present].to_array("flux").notnull().any("flux").sum())
            overlap = [f"trained on the towers' own drivers (training.drivers: towers): {rows:,} site-steps"]
        else:
            rows, overlap = tower_overlap(cube, sites, config.fluxes)
        return GridOutline(sizes, chunks, description, rows, overlap, cube, sites)
