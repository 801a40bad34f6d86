"""Artificial-gap benchmark: inject reproducible gaps into measured periods,
fill them with each method, and score the fills against the removed values.

Each gap is injected and filled on its own (one gap per run), so methods see
the record as it was plus that one hole.  Gap starts are drawn with a seeded
generator among positions whose window holds at least ``min_measured`` of
measured values; only the values that were measured inside the gap are scored.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.metrics import all_metrics
from uflux_xr.site.aggregate import steps_per_day
from uflux_xr.site.gapfill.api import gapfill
from uflux_xr.site.random_error import PAIRED_LIMITS, paired_random_error

log = logging.getLogger(__name__)


def gap_starts(measured: np.ndarray, length: int, n_gaps: int, min_measured: float, seed: int) -> list[int]:
    """Reproducible start indices of gaps of ``length`` steps over well-measured windows."""
    n = measured.size
    if length >= n:
        raise ValueError(f"a gap of {length} steps does not fit in a record of {n} steps")
    cumulative = np.concatenate([[0], np.cumsum(measured)])
    share = (cumulative[length:] - cumulative[:-length]) / length
    candidates = np.flatnonzero(share[: n - length + 1] >= min_measured)
    if candidates.size == 0:
        raise ValueError(f"no window of {length} steps has {min_measured:.0%} measured values")
    rng = np.random.default_rng(seed)
    return sorted(int(s) for s in rng.choice(candidates, size=min(n_gaps, candidates.size), replace=False))


def artificial_gap_benchmark(
    site_ds: xr.Dataset,
    var: str,
    *,
    gap_days=(1, 7, 30, 365),
    methods=("mds", "mdv", "ml"),
    n_gaps: int = 5,
    min_measured: float = 0.5,
    seed: int = 0,
    method_options: dict | None = None,
) -> pd.DataFrame:
    """Score gap-filling methods on artificial gaps of several lengths.

    Parameters
    ----------
    site_ds : xarray.Dataset
        One site (a ``site`` dim of length 1 or none) at a regular step.
    var : str
        Variable to remove and refill.
    gap_days : sequence of float
        Gap lengths [days].
    methods : sequence of str
        Methods of :func:`uflux_xr.site.gapfill.gapfill`.
    n_gaps : int
        Gaps per length (fewer when the record has fewer candidate windows).
    min_measured : float
        Fraction of measured values a gap window needs.
    seed : int
        Seed of the gap positions: the same seed gives the same gaps.
    method_options : dict, optional
        ``{method: {keyword: value}}`` passed to ``gapfill``.

    Returns
    -------
    pandas.DataFrame
        One row per (gap length, method): n scored values, bias, RMSE, R, R²
        (squared Pearson and NSE), slope and IOA, pooled over the gaps, the
        share of removed values the method filled, and the random error of the
        measured records in the gaps (``noise_sd`` [units of ``var``] from
        ``noise_pairs`` pairs 24 h apart, :func:`uflux_xr.site.random_error.paired_random_error`):
        an RMSE against measured records does not go below it.
    """
    one = site_ds.isel(site=0) if "site" in site_ds.dims else site_ds
    values = one[var].values.astype(float)
    measured = np.isfinite(values)
    per_day = steps_per_day(one.indexes["time"])
    drivers = {d: one[d].values for d in PAIRED_LIMITS if d in one}
    rows = []
    for days in gap_days:
        length = int(round(days * per_day))
        starts = gap_starts(measured, length, n_gaps, min_measured, seed + int(days * 1000))
        in_gaps = np.zeros(values.size, dtype=bool)
        for start in starts:
            in_gaps[start : start + length] = True
        # The scores are against measured records: their own random error is the floor under any RMSE.
        noise_sd, noise_pairs = paired_random_error(values, per_day, drivers, where=in_gaps)
        for method in methods:
            pred, obs = [], []
            for start in starts:
                holed = one.copy()
                holed[var] = holed[var].copy()
                holed[var][start : start + length] = np.nan
                filled = gapfill(holed, var, method=method, **(method_options or {}).get(method, {}))
                inside = slice(start, start + length)
                scored = measured[inside]
                pred.append(filled[f"{var}_f"].values[inside][scored])
                obs.append(values[inside][scored])
            p, o = np.concatenate(pred), np.concatenate(obs)
            metrics = all_metrics(p, o)
            rows.append(
                {
                    "gap_days": days,
                    "method": method,
                    "gaps": len(starts),
                    "filled_share": float(np.isfinite(p).mean()) if p.size else np.nan,
                    **metrics,
                    "noise_sd": noise_sd,
                    "noise_pairs": noise_pairs,
                }
            )
            log.info("gap %s d, %s: RMSE %.3f, n %d", days, method, metrics["rmse"], metrics["n"])
    return pd.DataFrame(rows)
