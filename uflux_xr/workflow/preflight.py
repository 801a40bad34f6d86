"""What a run checks before its first prediction, written once for the run and its dry run.

:func:`tower_targets` (the towers hold every flux to map, with enough values to train on) and
:func:`check_predictor_coverage` (every predictor has values on land) stop a run before any model is
trained; the dry run (:func:`uflux_xr.workflow.plan.plan_run`) calls the same functions on the same
inputs, so a plan never promises what the run will refuse.
"""

from __future__ import annotations

import logging
import math

import dask
import numpy as np
import xarray as xr

from uflux_xr.core.domain import spatial_dims
from uflux_xr.core.variables import MissingVariableError
from uflux_xr.grid.features import resolve_features
from uflux_xr.workflow.config import RunConfig

log = logging.getLogger(__name__)

#: Fewest tower values of a flux to train its models on (:func:`uflux_xr.models.train` needs 10 rows).
MIN_TOWER_VALUES = 10


def run_features(config: RunConfig) -> list[str]:
    """Every predictor some member of ``config``'s ensemble reads."""
    return sorted({f for m in config.ensemble.member_specs for f in m.predictors})


def tower_targets(config: RunConfig, sites: xr.Dataset) -> list[str]:
    """The tower variables the run trains on: the fluxes to map and their ``_QC`` where present.

    Raises
    ------
    MissingVariableError
        When the towers lack a flux of the configuration, or hold fewer than :data:`MIN_TOWER_VALUES`
        values of it; the message names the flux, what the towers have and the ``fluxes`` key.
    """
    missing = [f for f in config.fluxes if f not in sites.data_vars]
    counts = {f: int(sites[f].count()) for f in config.fluxes if f not in missing}
    empty = [f for f, n in counts.items() if n < MIN_TOWER_VALUES]
    if missing or empty:
        what = []
        if missing:
            what.append(f"lack flux(es) {missing}")
        if empty:
            what.append(f"have fewer than {MIN_TOWER_VALUES} values of { ({f: counts[f] for f in empty}) }")
        raise MissingVariableError(
            f"{config.path}: the towers {' and '.join(what)}; they have {sorted(map(str, sites.data_vars))}. "
            "Drop those fluxes from 'fluxes' or add towers that measure them"
        )
    qc = [f"{f}_QC" for f in config.fluxes if f"{f}_QC" in sites.data_vars]
    return list(config.fluxes) + qc


def _coverage_steps(cube: xr.Dataset, n_steps: int) -> np.ndarray:
    """``n_steps`` time steps spread over the middle time chunk of a dask cube (its inputs are read
    or made a chunk at a time: steps from ``n_steps`` chunks would cost that many chunks' inputs
    again before the run reads them), or over the whole period of an in-memory cube."""
    start, stop = 0, cube.sizes["time"]
    chunked = [v.chunksizes["time"] for v in cube.data_vars.values() if "time" in v.dims and v.chunks]
    if chunked:
        edges = np.cumsum((0, *chunked[0]))
        middle = (len(edges) - 1) // 2
        start, stop = int(edges[middle]), int(edges[middle + 1])
    return np.unique(np.linspace(start, stop - 1, n_steps).round().astype(int))


def check_predictor_coverage(cube: xr.Dataset, features, *, mask: str = "land_mask", n_steps: int = 3) -> dict:
    """Share of land cells where each predictor is finite, on a few time steps (of one time chunk,
    :func:`_coverage_steps`); refuses a cube whose product would be all NaN.

    Returns
    -------
    dict
        {feature: fraction [0-1] of land cells with a finite value}, and ``"all"``
        for the cells where every feature is.

    Raises
    ------
    ValueError
        When a feature, or every feature together, is finite on no land cell.
    """
    if mask not in cube:
        return {}
    steps = _coverage_steps(cube, n_steps)
    ydim, xdim = spatial_dims(cube)
    # at most ~1e6 cells per step: a strided subset of a big grid is enough to find an empty layer
    stride = max(1, math.ceil(math.sqrt(cube.sizes[ydim] * cube.sizes[xdim] / 1e6)))
    sample = cube.isel({"time": steps, ydim: slice(None, None, stride), xdim: slice(None, None, stride)})
    land = sample[mask] == 1
    if "time" not in land.dims:
        land = land.expand_dims(time=sample["time"])
    arrays = resolve_features(sample, list(features))
    # static layers (IGBP, elevation) broadcast over the sampled steps, so every share is of the same cells
    finite = {name: (da.notnull() & land) for name, da in arrays.items()}
    n_land = land.sum()
    every = land
    for da in finite.values():
        every = every & da
    computed = dask.compute(*[f.sum() / n_land for f in finite.values()], every.sum() / n_land)
    shares = {k: float(v) for k, v in zip([*finite, "all"], computed, strict=True)}
    log.info("predictor coverage of land cells: %s", ", ".join(f"{k} {100 * v:.1f} %" for k, v in shares.items()))
    source = cube.attrs.get("source", "predictor cube")
    empty = [k for k, v in shares.items() if k != "all" and v == 0.0]
    if empty or shares.get("all", 1.0) == 0.0:
        raise ValueError(
            f"{source}: no land cell has {'predictor(s) ' + str(empty) if empty else 'every predictor'} "
            f"on the sampled time steps (coverage {shares}); the product would be all NaN. Check that the "
            "layers share the grid and the land mask"
        )
    return shares
