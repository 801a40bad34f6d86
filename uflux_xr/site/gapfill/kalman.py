"""Kalman-filter gap filling (after Alavi et al. 2006, Agric. For. Meteorol. 141).

System model: the flux is the system input ``u`` (the mean of the FAO-PM and
MDV estimates at each step, or whichever exists) plus an anomaly that
follows an AR(1) process, d_t = φ d_{t-1} + w_t, w ~ N(0, Q); the
measurement is y_t = u_t + d_t + v_t, v ~ N(0, R).  A forward Kalman filter
and a Rauch-Tung-Striebel smoother give the anomaly at every step from the
measurements before and after a gap: short gaps follow their neighbours, and
inside long gaps the anomaly decays to zero and the fill to the input.

φ, Q and R are estimated from the data by the method of moments on the
measured anomalies y − u: with autocovariances c0, c1, c2 at lags 0–2, an
AR(1) signal plus white noise has φ = c2 / c1, signal variance s = c1 / φ,
R = c0 − s and Q = s (1 − φ²).
"""

from __future__ import annotations

import numba
import numpy as np


def _lag_covariance(d: np.ndarray, lag: int) -> float:
    a, b = d[: d.size - lag] if lag else d, d[lag:]
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.mean(a[both] * b[both])) if both.sum() > 10 else np.nan


def ar1_noise_parameters(anomaly: np.ndarray) -> tuple[float, float, float]:
    """(φ, Q, R) of an AR(1) signal plus white noise from its measured values (NaN gaps).

    Parameters
    ----------
    anomaly : numpy.ndarray
        Measured minus system input, NaN where not measured [flux units].

    Returns
    -------
    tuple of float
        AR coefficient φ [1] (limited to 0.01–0.999), system noise variance Q
        and measurement noise variance R [flux units²].
    """
    d = anomaly - np.nanmean(anomaly)
    c0, c1, c2 = (_lag_covariance(d, lag) for lag in (0, 1, 2))
    if not np.isfinite(c0) or c0 <= 0:
        raise ValueError("too few consecutive measured values to estimate the Kalman noise variances")
    if not (np.isfinite(c1) and np.isfinite(c2)) or c1 <= 0 or c2 <= 0:
        # No persistence detectable: the anomaly is measurement noise around the input.
        return 0.01, 1e-6 * c0, c0
    phi = float(np.clip(c2 / c1, 0.01, 0.999))
    signal = min(c1 / phi, c0)
    measurement = max(c0 - signal, 1e-6 * c0)
    return phi, max(signal * (1 - phi**2), 1e-9 * c0), measurement


@numba.njit(nogil=True, cache=True)
def smooth_anomaly(y, good, phi, q, r):
    """Kalman filter and RTS smoother of an AR(1) state observed with noise at ``good`` steps.

    Returns the smoothed state mean and variance at every step.
    """
    n = y.size
    xf = np.zeros(n)
    pf = np.zeros(n)
    xp = np.zeros(n)
    pp = np.zeros(n)
    x = 0.0
    p = q / (1.0 - phi * phi)  # stationary variance
    for t in range(n):
        if t > 0:
            x = phi * x
            p = phi * phi * p + q
        xp[t] = x
        pp[t] = p
        if good[t]:
            k = p / (p + r)
            x = x + k * (y[t] - x)
            p = (1.0 - k) * p
        xf[t] = x
        pf[t] = p
    xs = xf.copy()
    ps = pf.copy()
    for t in range(n - 2, -1, -1):
        gain = pf[t] * phi / pp[t + 1]
        xs[t] = xf[t] + gain * (xs[t + 1] - xp[t + 1])
        ps[t] = pf[t] + gain * gain * (ps[t + 1] - pp[t + 1])
    return xs, ps


def kalman_fill(values, good, system_input):
    """Fill the gaps of one series with the Kalman-smoothed anomaly around the system input.

    Parameters
    ----------
    values : numpy.ndarray
        Series with gaps [flux units].
    good : numpy.ndarray of bool
        Measured steps.
    system_input : numpy.ndarray
        Input estimate at every step (NaN where none) [flux units].

    Returns
    -------
    filled, sd : numpy.ndarray
        Measured values kept, gaps = input + smoothed anomaly (NaN where no
        input); sd is the smoothed state's standard deviation at the gaps.
    """
    anomaly = np.where(good & np.isfinite(system_input), values - system_input, np.nan)
    phi, q, r = ar1_noise_parameters(anomaly)
    observed = np.isfinite(anomaly)
    state, variance = smooth_anomaly(np.nan_to_num(anomaly), observed, phi, q, r)
    filled = np.where(good, values, system_input + state)
    sd = np.where(good | ~np.isfinite(system_input), np.nan, np.sqrt(variance))
    return filled, sd
