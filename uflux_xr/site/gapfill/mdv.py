"""Mean diurnal variation (MDV; Falge et al. 2001): a gap takes the mean of the
measured values at the same time of day on the days within ±``window_days``.

Quality code (``<VAR>_fqc``): 1 when at least ``min_values`` values were
averaged within the window, else the window is widened day by day up to
``max_days`` and the code is 2 (up to twice the window) or 3 (wider).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def mdv_core(data, good, n_per_day, window_days, max_days, min_values, every_step=False):
    """Fill gaps of ``data`` (``good`` False) with the same-time-of-day mean.

    With ``every_step`` the mean of the other days is computed at measured
    steps too (the Kalman filter's system input needs it everywhere).

    Returns filled values, quality (0 measured, 1–3, -1 unfilled), SD and count.
    """
    n = data.size
    filled = data.copy()
    quality = np.zeros(n, np.int8)
    sd = np.full(n, np.nan)
    count = np.zeros(n, np.int32)
    for j in range(n):
        if good[j] and not every_step:
            continue
        filled[j] = np.nan
        quality[j] = -1
        for days in range(window_days, max_days + 1):
            s = 0.0
            ss = 0.0
            m = 0
            for d in range(-days, days + 1):
                k = j + d * n_per_day
                if d != 0 and 0 <= k < n and good[k]:
                    s += data[k]
                    ss += data[k] * data[k]
                    m += 1
            if m >= min_values:
                mean = s / m
                filled[j] = mean
                sd[j] = np.sqrt(max(ss / m - mean * mean, 0.0) * m / (m - 1)) if m > 1 else np.nan
                count[j] = m
                quality[j] = 1 if days == window_days else (2 if days <= 2 * window_days else 3)
                break
    return filled, quality, sd, count
