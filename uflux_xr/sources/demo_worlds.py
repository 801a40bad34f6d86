"""The demo worlds as run inputs (``data.source: demo`` and ``lazy_demo``, or ``files`` with
``data.fallback: lazy_demo`` when the files are absent)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import dask
import xarray as xr

from uflux_xr.grid.features import ANNUAL_MAXIMA, check_whole_years
from uflux_xr.sources.base import GridOutline, Inputs, InputSource

log = logging.getLogger(__name__)


class _WorldSource(InputSource):
    """A demo world: the grid and period are the configuration's domain; towers are ``data.n_sites``."""

    def outline(self, window: Mapping[str, slice] | None = None) -> GridOutline:
        import dask.array as da

        config = self.config
        domain = config.grid
        ydim, xdim = domain.dims
        full = dict(zip(("time", ydim, xdim), domain.shape, strict=True))
        sizes = {d: len(range(full[d])[(window or {}).get(d, slice(None))]) for d in full}
        chunks = {
            d: da.core.normalize_chunks((config.output.chunks.get(d, sizes[d]),), (sizes[d],))[0]
            for d in ("time", ydim, xdim)
        }
        description = domain.describe()
        if window:
            description += " — window " + ", ".join(f"{d} {w.start}:{w.stop}" for d, w in window.items())
        return GridOutline(sizes, chunks, description, int(config.data.n_sites * sizes["time"]))

    @property
    def planned_towers(self) -> int | None:
        return self.config.data.n_sites


class EagerDemoSource(_WorldSource):
    """The eager demo world (:func:`uflux_xr.sources.demo.eager.make_world`), written to ``out_dir/inputs``
    and read back, so the job runs from a Zarr cube on disk exactly as it would from real inputs."""

    name = "demo"
    land_note = "the demo world's land share"

    def read(self, out_dir: Path, window: Mapping[str, slice] | None = None) -> Inputs:
        from uflux_xr.sources.demo import eager

        config, inputs = self.config, out_dir / "inputs"
        world = eager.make_world(
            config.data.seed,
            lat_range=config.grid.y_range,
            lon_range=config.grid.x_range,
            resolution=config.grid.resolution,
            start=config.grid.start,
            end=config.grid.end,
            n_sites=config.data.n_sites,
        )
        # The world is in this process's memory: written from here, not shipped to a cluster's workers
        # as a graph of its arrays (68 MiB for the demo, which dask.distributed warns of).
        with dask.config.set(scheduler="threads"):
            world.cube.chunk(config.output.chunks).to_zarr(
                inputs / "cube.zarr", mode="w", zarr_format=3, consolidated=False
            )
            world.truth.chunk(config.output.chunks).to_zarr(
                inputs / "truth.zarr", mode="w", zarr_format=3, consolidated=False
            )
        world.sites.to_netcdf(inputs / "sites.nc")
        cube = xr.open_zarr(inputs / "cube.zarr", consolidated=False)
        truth = xr.open_zarr(inputs / "truth.zarr", consolidated=False)
        return Inputs(cube, world.sites, truth, self)

    def land_fraction(self, cube, window=None) -> float:
        from uflux_xr.sources.demo.eager import LAND_SHARE

        return LAND_SHARE


class LazyDemoSource(_WorldSource):
    """The lazy demo world of the domain (:class:`uflux_xr.sources.demo.lazy.LazyWorld`): a dask graph
    evaluated chunk by chunk; only its tower records are written (``out_dir/inputs/sites.nc``)."""

    name = "lazy_demo"
    land_note = "estimated from 20,000 sampled cells"
    makes_chunks = True

    def world(self):
        """The :class:`~uflux_xr.sources.demo.lazy.LazyWorld` of the configuration's domain (made once)."""
        from uflux_xr.sources.demo.lazy import LazyWorld

        if not hasattr(self, "_world"):
            data = self.config.data
            self._world = LazyWorld(self.config.grid, seed=data.seed, n_sites=data.n_sites, climate_km=data.climate_km)
        return self._world

    def read(self, out_dir: Path, window: Mapping[str, slice] | None = None) -> Inputs:
        from uflux_xr.sources.demo.lazy import PREDICTORS

        config = self.config
        if config.data.source != self.name:
            log.warning("%s: inputs not found; running on the lazy demo world of the domain", config.path)
        lazy = self.world()
        check_whole_years(config.ensemble.predictors, window, config.path)
        wanted = {
            *config.ensemble.predictors,
            *(ANNUAL_MAXIMA[p] for p in config.ensemble.predictors if p in ANNUAL_MAXIMA),
        }
        names = [p for p in PREDICTORS if p in wanted]
        sites = lazy.sites()
        sites.to_netcdf(out_dir / "inputs" / "sites.nc")
        part = dict(window) if window else None
        cube, truth = lazy.cube(config.output.chunks, names, part), lazy.truth(config.output.chunks, window=part)
        return Inputs(cube, sites, truth, self)

    def cut_window(self, found: Inputs, window: Mapping[str, slice] | None) -> Inputs:
        return found  # read() made only the window's chunks, and annual maxima need whole years (refused there)

    def training_table(self, inputs: Inputs, features, targets):
        # the predictors evaluated at the tower cells directly: the same values without computing any cube chunk
        from uflux_xr.sources.demo.lazy import site_table

        table = site_table(self.world(), features, targets)
        return table[table["time"].isin(inputs.sites.indexes["time"])].reset_index(drop=True)

    def land_fraction(self, cube, window=None) -> float:
        from uflux_xr.sources.demo.lazy import LazyWorld

        config = self.config
        return LazyWorld(config.grid, seed=config.data.seed, n_sites=3).land_fraction(window)

    def sample_cube(self, outline, needed, window=None):
        from uflux_xr.sources.demo.lazy import site_table

        config = self.config
        check_whole_years(needed, window, config.path)  # the run refuses it in open()
        cube = self.world().cube(config.output.chunks, window=window)
        # Every flux of the run: the upscaler is timed on a member's models of all of them, which share
        # a task's codes (uflux_xr.grid.upscale.predict_models_block) as in the run.
        table = site_table(self.world(), needed, [t for flux in config.fluxes for t in (flux, f"{flux}_QC")])
        if window and "time" in window and config.training.period == "window":  # the run trains so
            table = table[table["time"].isin(cube.indexes["time"])]
        return cube, table

    @property
    def regrid(self) -> str | None:
        return "nearest" if self.config.data.climate_km else None


def calibration_table(features, targets, seed: int = 0):
    """A year of daily tower data from a demo world (2° Europe, 30 towers), to time a model kind on when a
    run's own towers are not at hand (:func:`uflux_xr.workflow.plan.measure_throughput`)."""
    from uflux_xr.core.domain import Domain
    from uflux_xr.sources.demo.lazy import LazyWorld, site_table

    world = LazyWorld(Domain(resolution=2.0), seed=seed, n_sites=30)
    return site_table(world, features, targets)
