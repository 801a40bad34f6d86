"""FAO-56 Penman-Monteith gap filling of evapotranspiration: ET = Kc × ET0.

Reference evapotranspiration ET0 follows Allen et al. (1998), FAO Irrigation
and Drainage Paper 56: eq. 6 for daily steps (Cn = 900, Cd = 0.34, G = 0) and
eq. 53 for sub-daily steps (Cn = 37, G = 0.1 Rn by day and 0.5 Rn by night,
eqs. 45-46) with the ASCE-EWRI (2005) standardised Cd = 0.24 by day and 0.96
by night; FAO-56 itself used Cd = 0.34 in eq. 53 (``hourly_cd=(0.34, 0.34)``
reproduces its example 19).  ET0 is expressed as the
latent heat flux it carries (``LE0`` [W m-2]) so it compares with LE directly.

The crop coefficient is the ratio of the observed flux to LE0 on each day
(sums over the measured steps where LE0 > 0), limited to 0.05–2 as the issue
and FAO-56's range for vegetated surfaces suggest, then smoothed by a centred
moving mean over ±``window_days``; days without a coefficient in reach take
the linear interpolation in time of their neighbours.

Quality code (``<VAR>_fqc``): 1 when the smoothed Kc had measured days within
the window, 2 when it was interpolated across a longer stretch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uflux_xr.core import physics
from uflux_xr.core.physics import saturation_vapour_pressure, slope_saturation_vapour_pressure
from uflux_xr.core.variables import latent_heat_of_vaporization

#: Albedo of the FAO-56 grass reference surface.
REFERENCE_ALBEDO = 0.23
#: FAO-56's advice when no wind is measured: u2 = 2 m s-1 (Allen et al. 1998, ch. 3).
DEFAULT_WIND = 2.0
KC_LIMITS = (0.05, 2.0)


def net_radiation(sw_in, lw_in, ta, albedo: float = REFERENCE_ALBEDO, emissivity: float = 0.98):
    """Net radiation Rn [W m-2] of the reference surface from incoming radiation.

    Rn = (1 − albedo) SW_IN + ε (LW_IN − σ T⁴), T the air temperature in kelvin: the outgoing long
    wave is that of a surface at air temperature, as FAO-56 assumes.

    Parameters
    ----------
    sw_in, lw_in : array-like
        Incoming short- and long-wave radiation [W m-2].
    ta : array-like
        Air temperature [°C].
    albedo : float
        Surface albedo [1]; 0.23 for the FAO-56 reference grass.
    emissivity : float
        Surface emissivity [1].
    """
    # Kirchhoff: a grey surface absorbs the share of the incoming long wave it emits
    return physics.net_radiation(
        sw_in, lw_in, np.asarray(ta), albedo, emissivity=emissivity, lw_absorptivity=emissivity
    )


def reference_latent_heat(rn, ta, vpd, pa, wind, seconds: float, hourly_cd=(0.24, 0.96)):
    """FAO-56 reference evapotranspiration as a latent heat flux LE0 [W m-2].

    Parameters
    ----------
    rn : array-like
        Net radiation [W m-2], mean over the step.
    ta : array-like
        Air temperature [°C].
    vpd : array-like
        Vapour pressure deficit [hPa].
    pa : array-like
        Air pressure [kPa] (for the psychrometric constant γ = 0.665e-3 P, eq. 8).
    wind : array-like
        Wind speed at 2 m [m s-1].
    seconds : float
        Length of the step [s]: 86400 selects the daily form (eq. 6), shorter
        steps the hourly form (eq. 53) applied to the step's mean rates.
    hourly_cd : tuple of float
        Denominator coefficient Cd [s m-1] of the hourly form by day (Rn > 0)
        and by night.

    Returns
    -------
    numpy.ndarray
        LE0 [W m-2]: ET0 × λ(TA) per second.
    """
    rn, ta, vpd, pa, wind = (np.asarray(a, dtype=np.float64) for a in (rn, ta, vpd, pa, wind))
    es = saturation_vapour_pressure(ta)
    delta = slope_saturation_vapour_pressure(ta, es)  # kPa K-1, eq. 13
    gamma = 0.665e-3 * pa  # kPa K-1, eq. 8
    if seconds >= 86400:
        period, cn = 86400.0, 900.0
        cd = np.full_like(rn, 0.34)
        g = np.zeros_like(rn)
    else:
        period, cn = 3600.0, 37.0
        day = rn > 0
        cd = np.where(day, *hourly_cd)
        g = np.where(day, 0.1, 0.5) * rn
    energy = (rn - g) * period * 1e-6  # MJ m-2 per period
    et0 = (0.408 * delta * energy + gamma * cn / (ta + 273.0) * wind * vpd / 10.0) / (delta + gamma * (1 + cd * wind))
    return et0 / period * latent_heat_of_vaporization(ta)  # mm = kg m-2 per period -> W m-2


def crop_coefficient(observed, le0, good, day, window_days: int):
    """Smoothed crop coefficient per step and whether it came from the window.

    Parameters
    ----------
    observed : numpy.ndarray
        Observed flux [W m-2] (LE, or ET converted to its latent heat).
    le0 : numpy.ndarray
        Reference latent heat flux [W m-2] at the same steps.
    good : numpy.ndarray of bool
        Measured steps.
    day : numpy.ndarray of int
        Day number of each step (consecutive integers from the first day).
    window_days : int
        Half-width of the centred smoothing window [days].

    Returns
    -------
    kc : numpy.ndarray
        Crop coefficient [1] per step (NaN where no day has one).
    in_window : numpy.ndarray of bool
        True where measured days lay within ±``window_days``.
    """
    use = good & np.isfinite(le0) & (le0 > 0)
    n_days = int(day.max()) + 1
    obs_sum = np.bincount(day[use], weights=observed[use], minlength=n_days)
    ref_sum = np.bincount(day[use], weights=le0[use], minlength=n_days)
    daily = pd.Series(np.where(ref_sum > 0, obs_sum / np.where(ref_sum > 0, ref_sum, 1.0), np.nan))
    daily = daily.clip(*KC_LIMITS)
    smooth = daily.rolling(2 * window_days + 1, center=True, min_periods=1).mean()
    in_window = smooth.notna().to_numpy()
    filled = smooth.interpolate(limit_direction="both").to_numpy()
    return filled[day], in_window[day]


def residual_sd(observed, fitted, good, day, window_days: int):
    """Root-mean-square difference [flux units] of fit and measurement over ±``window_days`` of each step's day."""
    use = good & np.isfinite(fitted)
    n_days = int(day.max()) + 1
    squares = np.bincount(day[use], weights=(observed[use] - fitted[use]) ** 2, minlength=n_days)
    counts = np.bincount(day[use], minlength=n_days).astype(float)
    width = 2 * window_days + 1
    sums = pd.Series(squares).rolling(width, center=True, min_periods=1).sum().to_numpy()
    numbers = pd.Series(counts).rolling(width, center=True, min_periods=1).sum().to_numpy()
    sd = np.sqrt(sums / np.where(numbers > 1, numbers - 1, np.nan))
    return sd[day], numbers[day]
