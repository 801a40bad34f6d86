"""Derived predictors: vapour pressure deficit, vegetation indices, day-of-year
harmonics and top-of-atmosphere radiation.

Pure functions on numpy arrays or xarray objects (they broadcast either way).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

#: Solar constant [W m-2].
SOLAR_CONSTANT = 1361.0

#: Names of the day-of-year harmonic features added by :func:`doy_harmonics`.
HARMONIC_NAMES = ("DOY_SIN", "DOY_COS")


def saturation_vapour_pressure(t):
    """Saturation vapour pressure es [kPa] over water at temperature ``t`` [°C].

    FAO-56 (Allen et al. 1998) eq. 11: es = 0.6108 exp(17.27 T / (T + 237.3)).
    """
    return 0.6108 * np.exp(17.27 * t / (t + 237.3))


def vpd_from_dewpoint(ta, td):
    """Vapour pressure deficit [hPa] from air temperature ``ta`` and dew point ``td`` [°C].

    VPD = es(TA) − es(Td) (FAO-56 eqs. 11 and 14), × 10 hPa kPa-1.
    """
    return 10.0 * (saturation_vapour_pressure(ta) - saturation_vapour_pressure(td))


def nirv(ndvi, nir):
    """Near-infrared reflectance of vegetation [-], NDVI × NIR (Badgley et al. 2017)."""
    return ndvi * nir


def evi2(nir, red):
    """Two-band enhanced vegetation index [-], 2.5 (NIR − Red) / (NIR + 2.4 Red + 1) (Jiang et al. 2008)."""
    return 2.5 * (nir - red) / (nir + 2.4 * red + 1.0)


def day_of_year_fraction(time) -> xr.DataArray:
    """Phase of the year [rad] for each timestamp: 2π (doy − 1 + fraction of day) / days in year."""
    t = xr.DataArray(np.asarray(time), dims="time") if not isinstance(time, xr.DataArray) else time
    doy = t.dt.dayofyear - 1 + (t.dt.hour * 3600 + t.dt.minute * 60) / 86400.0
    ndays = xr.where(t.dt.is_leap_year, 366.0, 365.0)
    return 2.0 * np.pi * doy / ndays


def doy_harmonics(time: xr.DataArray) -> dict[str, xr.DataArray]:
    """First annual harmonics of the day of year, ``DOY_SIN`` and ``DOY_COS`` [-].

    Parameters
    ----------
    time : xarray.DataArray
        A datetime64 coordinate (dimension ``time``).
    """
    phase = day_of_year_fraction(time)
    sin, cos = xr.apply_ufunc(np.sin, phase), xr.apply_ufunc(np.cos, phase)
    return {
        "DOY_SIN": sin.astype("float32").assign_attrs(units="1", long_name="sine of annual phase"),
        "DOY_COS": cos.astype("float32").assign_attrs(units="1", long_name="cosine of annual phase"),
    }


def toa_daily_radiation(lat, doy):
    """Daily mean top-of-atmosphere shortwave radiation [W m-2].

    FAO-56 eqs. 21–25 (extraterrestrial radiation Ra), converted from a daily
    total to a mean flux.

    Parameters
    ----------
    lat : array-like
        Latitude [degrees north].
    doy : array-like
        Day of year [1–366].
    """
    phi = np.deg2rad(lat)
    dr = 1.0 + 0.033 * np.cos(2.0 * np.pi * doy / 365.0)
    decl = 0.409 * np.sin(2.0 * np.pi * doy / 365.0 - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(decl), -1.0, 1.0))
    return SOLAR_CONSTANT / np.pi * dr * (ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws))


def resolve_features(cube: xr.Dataset, names) -> dict[str, xr.DataArray]:
    """The predictor arrays named in ``names``, taken from ``cube`` or derived from it.

    Day-of-year harmonics (:data:`HARMONIC_NAMES`) are computed from the cube's
    ``time`` coordinate; every other name must be a cube variable.  Training
    tables and the upscaler both call this, so a model sees identical features
    in both.

    Raises
    ------
    KeyError
        Naming the missing variables and the cube's variables.
    """
    missing = [n for n in names if n not in cube.data_vars and n not in HARMONIC_NAMES]
    if missing:
        raise KeyError(
            f"predictor(s) {missing} not found in the cube; it has {sorted(map(str, cube.data_vars))}"
            f" (derived predictors available: {list(HARMONIC_NAMES)})"
        )
    out = {}
    harmonics = doy_harmonics(cube["time"]) if any(n in HARMONIC_NAMES for n in names) else {}
    for n in names:
        out[n] = harmonics[n] if n in HARMONIC_NAMES else cube[n]
    return out
