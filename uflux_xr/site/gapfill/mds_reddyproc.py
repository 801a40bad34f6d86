"""Marginal distribution sampling exactly as REddyProc runs it (``convention="reddyproc"``).

Each rule follows REddyProc's ``R/EddyGapfilling.R`` (bgctw/REddyProc, version 1.3):

- Steps, in the order of ``sEddyProc_sMDSGapFill``: look-up table (LUT) on
  Rg, VPD and Tair within ±7 and ±14 days; LUT on Rg alone within ±7 days;
  mean diurnal course (MDC) on the same day and ±1, ±2 days; LUT on all three
  within ±21 … ±70 days (steps of 7); LUT on Rg alone within ±14 … ±70 days;
  MDC within ±7 … ±210 days.  The first step with at least two records wins.
- Which LUT steps run is decided once per variable (``Met.n``): all of them
  when the three drivers exist and have data, the Rg-only ones when only Rg
  has, none otherwise.  A driver that is the variable being filled is dropped
  from the conditions, so Tair is filled on Rg alone.
- LUT window: records ``gap ± WinDays · records-per-day``, both ends
  included, clipped to the series (``sFillLUT``: Start.i, End.i).  A record
  matches when the flux is measured and each condition driver is measured
  and closer than its tolerance (strict ``<``); the Rg tolerance is
  ``max(min(T1, Rg_gap), 20)`` W m-2.  The drivers are read as measured: no
  driver is filled before the flux.
- MDC window: the records ``gap + d · records-per-day + (−2 … 2)`` for
  ``d = −W … W`` (``sFillMDC``): ±1 h at half-hourly steps, ±2 h at hourly.
- Quality (``_fqc``) from the full window length ``fwin``: LUT on three
  drivers 1 for fwin ≤ 14 d, 2 up to 56 d, 3 beyond; LUT on Rg 1 up to 14 d,
  2 up to 28 d, 3 beyond; MDC (fwin = 2W + 1) 1 for 1 d, 2 up to 5 d, 3 beyond.
- With ``fill_all`` (REddyProc's default ``FillAll = TRUE``) measured records
  are run through the same cascade, so their ``_fnum`` counts the record
  itself and ``_fsd`` is the spread of the look-up for that record.
- Statistics: mean, count and sample SD of the matches (Reichstein et al.
  2005, ``calculate_gapstats_Reichstein05``), or the Vekuri et al. (2023)
  variant (``calculate_gapstats_Vekuri23``): the mean of the means of the
  matches with Rg at or below the gap's and above it, except at night
  (Rg < 10 W m-2) or when one side is empty.
"""

from __future__ import annotations

import numba
import numpy as np

#: ``_fmeth`` codes of REddyProc: LUT on three drivers, LUT on Rg, mean diurnal course.
LUT_ALL, LUT_RG, MDC = 1, 2, 3
#: The cascade of ``sEddyProc_sMDSGapFill``: (method, window half-width [days]) in order.
_STEPS = (
    [(LUT_ALL, 7), (LUT_ALL, 14), (LUT_RG, 7), (MDC, 0), (MDC, 1), (MDC, 2)]
    + [(LUT_ALL, d) for d in range(21, 71, 7)]
    + [(LUT_RG, d) for d in range(14, 71, 7)]
    + [(MDC, d) for d in range(7, 211, 7)]
)
STEP_KINDS = np.array([k for k, _ in _STEPS], dtype=np.int64)
STEP_DAYS = np.array([d for _, d in _STEPS], dtype=np.int64)
#: The Rg tolerance never goes below this [W m-2] (sFillLUT: T1red.n).
MIN_RG_TOLERANCE = 20.0
#: Rg below which a record is night for the Vekuri23 statistics [W m-2].
NIGHT_RG = 10.0


@numba.njit(nogil=True, cache=True)
def _stats(data, idx, n, lower, vekuri, night):
    """Mean, count and SD (n − 1) of ``data[idx[:n]]``; Vekuri23 mean where asked."""
    s = 0.0
    for i in range(n):
        s += data[idx[i]]
    mean = s / n
    ss = 0.0
    for i in range(n):
        ss += (data[idx[i]] - mean) ** 2
    sd = np.sqrt(ss / (n - 1))
    if vekuri and not night:
        s_lo = 0.0
        n_lo = 0
        for i in range(n):
            if lower[i]:
                s_lo += data[idx[i]]
                n_lo += 1
        if 0 < n_lo < n:
            mean = 0.5 * (s_lo / n_lo + (s - s_lo) / (n - n_lo))
    return mean, sd


@numba.njit(nogil=True, cache=True)
def _lut(j, half, data, rg, ta, vpd, three, rg_tol, ta_tol, vpd_tol, vekuri, idx, lower):
    """Count of look-up matches of record ``j`` in ``[j − half, j + half]``, and their statistics."""
    rg_j = rg[j]
    if np.isnan(rg_j) or (three and (np.isnan(ta[j]) or np.isnan(vpd[j]))):
        return 0, np.nan, np.nan
    tol = max(min(rg_tol, rg_j), MIN_RG_TOLERANCE)
    lo = max(j - half, 0)
    hi = min(j + half, data.size - 1)
    n = 0
    for k in range(lo, hi + 1):
        if np.isnan(data[k]) or not abs(rg[k] - rg_j) < tol:
            continue  # a NaN driver fails the comparison, as R's subset drops NA
        if three and not (abs(ta[k] - ta[j]) < ta_tol and abs(vpd[k] - vpd[j]) < vpd_tol):
            continue
        idx[n] = k
        lower[n] = rg[k] <= rg_j
        n += 1
    if n < 2:
        return n, np.nan, np.nan
    mean, sd = _stats(data, idx, n, lower, vekuri, rg_j < NIGHT_RG)
    return n, mean, sd


@numba.njit(nogil=True, cache=True)
def _mdc(j, win_days, n_per_day, data, idx, lower):
    """Count and statistics of measured records within ±2 records of the gap's time on days ±``win_days``."""
    n = 0
    for d in range(-win_days, win_days + 1):
        centre = j + d * n_per_day
        for k in range(centre - 2, centre + 3):
            if 0 <= k < data.size and not np.isnan(data[k]):
                idx[n] = k
                n += 1
    if n < 2:
        return n, np.nan, np.nan
    mean, sd = _stats(data, idx, n, lower, False, True)
    return n, mean, sd


@numba.njit(nogil=True, cache=True)
def _lut_quality(three, win_days):
    fwin = 2 * win_days
    if fwin <= 14:
        return 1
    if fwin <= (56 if three else 28):
        return 2
    return 3


@numba.njit(nogil=True, cache=True)
def _mdc_quality(win_days):
    fwin = 2 * win_days + 1
    if fwin <= 1:
        return 1
    if fwin <= 5:
        return 2
    return 3


@numba.njit(nogil=True, cache=True)
def mds_reddyproc_core(data, rg, ta, vpd, n_per_day, met, targets, rg_tol, ta_tol, vpd_tol, vekuri):
    """REddyProc's MDS cascade on one series.

    Parameters
    ----------
    data : float64 array
        The flux, NaN where not measured (or rejected).
    rg, ta, vpd : float64 arrays
        Measured drivers [W m-2, °C, hPa], NaN where missing.
    n_per_day : int
        Records per day.
    met : int
        3: LUT on all three drivers and on Rg; 1: LUT on Rg only; 0: MDC only.
    targets : bool array
        Records to run the cascade for (every gap, plus measured records with
        ``FillAll``; never those of a long gap).
    rg_tol, ta_tol, vpd_tol : float
        Tolerances [W m-2, °C, hPa].
    vekuri : bool
        Vekuri et al. (2023) statistics instead of Reichstein et al. (2005).

    Returns
    -------
    value, count, sd, method (1 LUT all, 2 LUT Rg, 3 MDC, 0 none), window [days], quality (1-3, 0 none)
    """
    n_data = data.size
    value = np.full(n_data, np.nan)
    sd = np.full(n_data, np.nan)
    count = np.zeros(n_data, np.int32)
    method = np.zeros(n_data, np.int8)
    window = np.zeros(n_data, np.int16)
    quality = np.zeros(n_data, np.int8)
    idx = np.empty(n_data, np.int64)
    lower = np.empty(n_data, np.bool_)
    for j in range(n_data):
        if not targets[j]:
            continue
        for step in range(STEP_KINDS.size):
            kind, days = STEP_KINDS[step], STEP_DAYS[step]
            if (kind == LUT_ALL and met < 3) or (kind == LUT_RG and met < 1):
                continue
            if kind == MDC:
                n, m, s = _mdc(j, days, n_per_day, data, idx, lower)
                q = _mdc_quality(days)
            else:
                three = kind == LUT_ALL
                n, m, s = _lut(
                    j, days * n_per_day, data, rg, ta, vpd, three, rg_tol, ta_tol, vpd_tol, vekuri, idx, lower
                )
                q = _lut_quality(three, days)
            if n >= 2:
                value[j], count[j], sd[j], method[j], quality[j] = m, n, s, kind, q
                window[j] = 2 * days + 1 if kind == MDC else 2 * days
                break
    return value, count, sd, method, window, quality


def lookup_drivers(var: str, have: dict[str, bool]) -> int:
    """REddyProc's ``Met.n``: 3 (all of Rg, VPD, Tair), 1 (Rg only) or 0 (MDC only).

    Parameters
    ----------
    var : str
        The variable being filled (canonical name); a driver equal to it is dropped.
    have : dict
        For SW_IN, VPD and TA: whether the driver exists with at least one value.
    """
    usable = {name: ok and name != var for name, ok in have.items()}
    if usable["SW_IN"] and usable["VPD"] and usable["TA"]:
        return 3
    return 1 if usable["SW_IN"] else 0
