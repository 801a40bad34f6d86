"""``uflux-xr prepare``: from the raw downloads a config lists (``data.inputs``) to the
predictor cube and the tower file its run reads (``data.cube``, ``data.sites``).

The cube comes from :func:`uflux_xr.io.cube.build_cube`; the towers are read with
:func:`uflux_xr.io.towers.read_sites` and aggregated to the domain's step
(sub-daily -> daily with FLUXNET's ``_f``/``_QC`` rule, daily -> monthly).
Both files are written atomically (:func:`uflux_xr.io.write_dataset`), so a
failed prepare never leaves a cube that looks finished.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xarray as xr

from uflux_xr.core.domain import Domain
from uflux_xr.io import write_dataset
from uflux_xr.io.cube import build_cube, cube_coverage, format_coverage
from uflux_xr.io.storage import fsspec_defaults
from uflux_xr.io.towers import read_sites
from uflux_xr.site.aggregate import time_step, to_daily, to_monthly
from uflux_xr.workflow.config import ConfigError, RawInputs, RunConfig

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """What ``prepare`` wrote and found."""

    cube_path: Path | str | None
    sites_path: Path | str | None
    coverage: pd.DataFrame
    towers: str

    def format(self) -> str:
        """The summary printed by ``uflux-xr prepare``."""
        lines = []
        if self.cube_path is not None:
            lines += [f"cube  {self.cube_path}", format_coverage(self.coverage)]
        if self.sites_path is not None:
            lines += [f"towers {self.sites_path}", self.towers]
        return "\n".join(lines)


def towers_at_step(sites: xr.Dataset, step: str, *, min_coverage: float = 1.0) -> xr.Dataset:
    """Tower records aggregated to a domain step ("daily" or "monthly").

    Raises
    ------
    ValueError
        For a biannual step (aggregate to monthly and average the half-years yourself)
        or records coarser than the step.
    """
    current = time_step(sites.indexes["time"])
    if step == "biannual":
        raise ValueError("towers for a biannual domain: not built by prepare yet; give daily or monthly towers")
    if current < pd.Timedelta(hours=23):
        sites = to_daily(sites, min_coverage=min_coverage)
        current = pd.Timedelta(days=1)
    if step == "monthly" and current < pd.Timedelta(days=27):
        sites = to_monthly(sites)
    elif step == "daily" and current > pd.Timedelta(days=1):
        raise ValueError(f"tower records at a step of {current} cannot make a daily product's training rows")
    return sites


def prepare(config: RunConfig) -> Prepared:
    """Build and write the cube and the tower file of ``config`` from its ``data.inputs``.

    Raises
    ------
    ConfigError
        When the config has no ``data.inputs`` or no domain.
    """
    inputs = config.data.inputs
    if inputs is None or config.domain is None:
        raise ConfigError(f"{config.path}: prepare needs data.inputs, data.domain and data.period")
    with fsspec_defaults(config.storage_options):
        return _prepare(config, inputs, config.domain)


def _prepare(config: RunConfig, inputs: RawInputs, domain: Domain) -> Prepared:
    """:func:`prepare`'s work."""
    cube_path = sites_path = None
    coverage = pd.DataFrame()
    if inputs.climate or inputs.satellite:
        cube = build_cube(
            domain,
            climate=inputs.climate,
            satellite=inputs.satellite,
            land_mask=inputs.land_mask,
            land_cover=inputs.land_cover,
            elevation=inputs.elevation,
            regrid=inputs.regrid,
        )
        cube = cube.chunk({d: config.output.chunks.get(d, -1) for d in cube.dims})
        for name in cube.variables:
            cube[name].encoding.pop("chunks", None)
            cube[name].encoding.pop("preferred_chunks", None)
        coverage = cube_coverage(cube)
        cube_path = write_dataset(cube, config.data.cube_file, progress=False)
    towers = ""
    if inputs.towers:
        sites = read_sites(
            list(inputs.towers),
            format=inputs.tower_format,
            metadata=inputs.tower_metadata,
            year=inputs.tower_year,
            position_check=inputs.tower_position_check,
        )
        sites = towers_at_step(sites, domain.step, min_coverage=inputs.tower_min_coverage)
        present = [f for f in config.fluxes if f in sites]
        counts = {f: int(sites[f].notnull().sum()) for f in present}
        towers = (
            f"{sites.sizes['site']} site(s), {sites.sizes['time']} {domain.step} steps "
            f"{sites.indexes['time'][0].date()} .. {sites.indexes['time'][-1].date()}; values per flux: {counts}"
        )
        sites_path = write_dataset(sites, config.data.sites_file, progress=False)
    if cube_path is None and sites_path is None:
        raise ConfigError(f"{config.path}: data.inputs lists neither climate/satellite files nor towers")
    return Prepared(cube_path, sites_path, coverage, towers)
