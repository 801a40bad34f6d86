"""Marginal distribution sampling (MDS; Reichstein et al. 2005), as REddyProc,
ONEFlux and hesseflux do it.

A gap is filled with the mean of the measured values recorded under similar
conditions nearby in time, trying in order (quality flag in brackets):

1. SW_IN, TA and VPD all similar, within ±7 days, then ±14 days      (1)
2. SW_IN similar, within ±7 days                                      (1)
3. the same time of day (±1 h), within ±½ day                         (1)
   and ±1½ days                                                       (2)
4. SW_IN, TA and VPD similar, within ±21 … ±77 days                   (2 up to ±28 d, else 3)
5. SW_IN similar, within ±14 … ±77 days                               (2 at ±14 d, else 3)
6. the same time of day, within ±3½ … ±119½ days                      (3)

"Similar" is |SW_IN − SW_IN_gap| < clamp(SW_IN_gap, 20, 50) W m-2,
|TA − TA_gap| < 2.5 °C and |VPD − VPD_gap| < 5 hPa (strict), with at least two
matches.  A window of ``k`` days spans the ``k·n_per_day − 1`` steps on each
side, clipped at the ends of the series (hesseflux's convention).  Gaps
longer than ``long_gap`` days, leading and trailing ones included, are left
unfilled (hesseflux: 60 days).  This is ``convention="hesseflux"``; REddyProc's
own rules are in :mod:`uflux_xr.site.gapfill.mds_reddyproc`.  Same time of day compares clock
hours of the period middles without wrapping at midnight.  The standard deviation and number of the matches are
kept as the fill's uncertainty.
"""

from __future__ import annotations

import numba
import numpy as np

#: Method codes in the output: which step of the MDS cascade filled a value.
MDS_STEPS = {1: "all drivers", 2: "SW_IN only", 3: "same time of day"}


@numba.njit(nogil=True, cache=True)
def _window_mean(data, usable, lo, hi):
    s = 0.0
    n = 0
    for k in range(lo, hi):
        if usable[k]:
            s += data[k]
            n += 1
    if n < 2:
        return np.nan, np.nan, n
    mean = s / n
    ss = 0.0
    for k in range(lo, hi):
        if usable[k]:
            ss += (data[k] - mean) ** 2
    return mean, np.sqrt(ss / (n - 1)), n


@numba.njit(nogil=True, cache=True)
def _match(j, half, data, good, sw, ta, vpd, met_ok, sw_ok, use_ta_vpd, sw_dev, ta_dev, vpd_dev, buf):
    """Mean, SD, count of good values in [j-half+1, j+half-1] similar to step j.

    Window points need a good value and all three drivers (``met_ok``), as in
    hesseflux, also when only SW_IN is compared."""
    n_data = data.size
    lo = max(j - half + 1, 0)
    hi = min(j + half, n_data)
    tol = max(20.0, min(sw[j], sw_dev))
    for k in range(lo, hi):
        ok = good[k] and met_ok[k] and abs(sw[k] - sw[j]) < tol
        if ok and use_ta_vpd:
            ok = abs(ta[k] - ta[j]) < ta_dev and abs(vpd[k] - vpd[j]) < vpd_dev
        buf[k] = ok
    return _window_mean(data, buf, lo, hi)


@numba.njit(nogil=True, cache=True)
def _same_hour(j, half, data, good, hour, buf):
    n_data = data.size
    lo = max(j - half + 1, 0)
    hi = min(j + half, n_data)
    for k in range(lo, hi):
        buf[k] = good[k] and abs(hour[k] - hour[j]) < 1.1
    return _window_mean(data, buf, lo, hi)


@numba.njit(nogil=True, cache=True)
def mds_core(data, good, sw, ta, vpd, sw_ok, met_ok, hour, n_per_day, skip, sw_dev, ta_dev, vpd_dev):
    """Numpy/numba core of MDS on one series.

    Parameters
    ----------
    data : float64 array
        The flux; values where ``good`` is False are gaps.
    good : bool array
        Usable measured values.
    sw, ta, vpd : float64 arrays
        Drivers [W m-2, °C, hPa].
    sw_ok, met_ok : bool arrays
        SW_IN usable; all three drivers usable.
    hour : float64 array
        Time of day [h].
    n_per_day : int
        Steps per day.
    skip : bool array
        Gaps not to fill (long gaps).
    sw_dev, ta_dev, vpd_dev : float
        Similarity limits [W m-2, °C, hPa].

    Returns
    -------
    filled, quality (0 measured, 1-3, -1 unfilled), sd, count, step (MDS_STEPS code, 0 measured)
    """
    n_data = data.size
    week = 7 * n_per_day
    filled = data.copy()
    quality = np.zeros(n_data, np.int8)
    sd = np.full(n_data, np.nan)
    count = np.zeros(n_data, np.int32)
    step = np.zeros(n_data, np.int8)
    buf = np.zeros(n_data, np.bool_)
    for j in range(n_data):
        if good[j]:
            continue
        filled[j] = np.nan
        quality[j] = -1
        if skip[j]:
            continue
        done = False
        # 1: all drivers, 1 and 2 weeks
        if met_ok[j]:
            for weeks in (1, 2):
                m, s, n = _match(
                    j, weeks * week, data, good, sw, ta, vpd, met_ok, sw_ok, True, sw_dev, ta_dev, vpd_dev, buf
                )
                if n >= 2:
                    filled[j], sd[j], count[j], quality[j], step[j] = m, s, n, 1, 1
                    done = True
                    break
        # 2: SW_IN only, 1 week
        if not done and sw_ok[j]:
            m, s, n = _match(j, week, data, good, sw, ta, vpd, met_ok, sw_ok, False, sw_dev, ta_dev, vpd_dev, buf)
            if n >= 2:
                filled[j], sd[j], count[j], quality[j], step[j] = m, s, n, 1, 2
                done = True
        # 3: same time of day, half a day and 1.5 days
        if not done:
            for i in range(2):
                m, s, n = _same_hour(j, (n_per_day * (2 * i + 1)) // 2, data, good, hour, buf)
                if n >= 2:
                    filled[j], sd[j], count[j], quality[j], step[j] = m, s, n, 1 + i, 3
                    done = True
                    break
        # 4: all drivers, 3-11 weeks
        if not done and met_ok[j]:
            for weeks in range(3, 12):
                m, s, n = _match(
                    j, weeks * week, data, good, sw, ta, vpd, met_ok, sw_ok, True, sw_dev, ta_dev, vpd_dev, buf
                )
                if n >= 2:
                    filled[j], sd[j], count[j], step[j] = m, s, n, 1
                    quality[j] = 3 if weeks > 4 else 2
                    done = True
                    break
        # 5: SW_IN only, 2-11 weeks
        if not done and sw_ok[j]:
            for weeks in range(2, 12):
                m, s, n = _match(
                    j, weeks * week, data, good, sw, ta, vpd, met_ok, sw_ok, False, sw_dev, ta_dev, vpd_dev, buf
                )
                if n >= 2:
                    filled[j], sd[j], count[j], step[j] = m, s, n, 2
                    quality[j] = 2 if weeks <= 2 else 3
                    done = True
                    break
        # 6: same time of day, 3.5-119.5 days
        if not done:
            for i in range(3, 120):
                m, s, n = _same_hour(j, (n_per_day * (2 * i + 1)) // 2, data, good, hour, buf)
                if n >= 2:
                    filled[j], sd[j], count[j], quality[j], step[j] = m, s, n, 3, 3
                    break
    return filled, quality, sd, count, step


def long_gap_mask(good: np.ndarray, n_per_day: int, long_gap_days: float, fill_near_edges: bool = False) -> np.ndarray:
    """Steps MDS leaves unfilled: every gap longer than ``long_gap_days``.

    A gap longer than ``n_per_day · long_gap_days`` steps is left whole,
    leading and trailing gaps included (REddyProc ``sFillInit``: gap length
    > DTS · 60; hesseflux ``longgap``).  With ``fill_near_edges`` the steps
    of a leading or trailing gap closer than that to the first or last
    measurement are filled, as the MPI-BGC online tool did.
    """
    n = good.size
    limit = int(n_per_day * long_gap_days)
    skip = np.zeros(n, dtype=bool)
    valid = np.flatnonzero(good)
    if valid.size == 0:
        skip[:] = True
        return skip
    edges = np.diff(np.concatenate([[0], (~good).astype(np.int8), [0]]))
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if end - start > limit:
            skip[start:end] = True
    if fill_near_edges:
        first, last = valid[0], valid[-1]
        skip[max(first - limit + 1, 0) : first] = False
        skip[last + 1 : last + limit] = False
    return skip
