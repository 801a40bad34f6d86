"""Sun position and potential (top-of-atmosphere, horizontal) radiation.

The formulas are REddyProc's (``R/GeoFunctions.R``: ``fCalcSunPosition``,
``fCalcExtRadiation``, ``fCalcPotRadiation``; the same as the ``solartime``
R package REddyProc now calls), so that the night/day split of the
partitioning selects the same records as REddyProc: fractional year
2π(DoY − 1)/365.24, Cescatti's equation of time and declination series, the
clock hour moved to solar time by longitude/15 − UTC offset plus the equation
of time, and REddyProc's solar constant (``SOLAR_CONSTANT_REDDYPROC``) with Lanini's eccentricity
correction.  Potential radiation is 0 when the sun is at or below the horizon.

Daily grids use the closed form of the same quantity averaged over a day,
:func:`toa_daily_radiation` (FAO-56 eqs. 21–25 with the measured solar constant
of Kopp & Lean 2011): it has no clock, longitude or time zone to resolve, and
the demo worlds and predictor cubes were built with it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.constants import SOLAR_CONSTANT, SOLAR_CONSTANT_REDDYPROC


def _fractional_year(doy: np.ndarray) -> np.ndarray:
    return 2.0 * np.pi * (doy - 1.0) / 365.24


def solar_elevation(doy, hour, lat: float, lon: float, utc_offset: float, *, solar_time: bool = True) -> np.ndarray:
    """Solar elevation angle above the horizon [rad].

    Parameters
    ----------
    doy : array_like
        Day of year [1-366].
    hour : array_like
        Clock hour of local standard time [h], e.g. 13.25 for 13:15.
    lat, lon : float
        Site latitude and longitude [degrees north, degrees east].
    utc_offset : float
        Hours the local standard time is ahead of UTC [h] (1 for central Europe).
    solar_time : bool
        Correct the clock hour to solar time (REddyProc's default
        ``useSolartime = TRUE``); False uses the clock hour as it is.
    """
    frac = _fractional_year(np.asarray(doy, dtype=float))
    hour = np.asarray(hour, dtype=float)
    if solar_time:
        eq_time = (
            0.0072 * np.cos(frac)
            - 0.0528 * np.cos(2 * frac)
            - 0.0012 * np.cos(3 * frac)
            - 0.1229 * np.sin(frac)
            - 0.1565 * np.sin(2 * frac)
            - 0.0041 * np.sin(3 * frac)
        )
        hour = hour + (lon / 15.0 - utc_offset) + eq_time
    hour_angle = (hour - 12.0) * np.pi / 12.0
    declination = (
        (
            0.33281
            - 22.984 * np.cos(frac)
            - 0.34990 * np.cos(2 * frac)
            - 0.13980 * np.cos(3 * frac)
            + 3.7872 * np.sin(frac)
            + 0.03205 * np.sin(2 * frac)
            + 0.07187 * np.sin(3 * frac)
        )
        / 180.0
        * np.pi
    )
    lat_rad = np.deg2rad(lat)
    return np.arcsin(np.sin(declination) * np.sin(lat_rad) + np.cos(declination) * np.cos(lat_rad) * np.cos(hour_angle))


def extraterrestrial_radiation(doy) -> np.ndarray:
    """Solar irradiance at the top of the atmosphere, normal to the beam [W m-2]."""
    frac = _fractional_year(np.asarray(doy, dtype=float))
    return SOLAR_CONSTANT_REDDYPROC * (
        1.00011
        + 0.034221 * np.cos(frac)
        + 0.00128 * np.sin(frac)
        + 0.000719 * np.cos(2 * frac)
        + 0.000077 * np.sin(2 * frac)
    )


def potential_radiation(time, lat: float, lon: float, utc_offset: float, *, solar_time: bool = True) -> np.ndarray:
    """Potential radiation on a horizontal surface at the top of the atmosphere [W m-2].

    Parameters
    ----------
    time : array_like of datetime64
        Time stamps in local standard time (the middle of each averaging
        period, as site datasets carry them).  Seconds are ignored, as
        REddyProc reads only hour and minute.
    lat, lon : float
        Site latitude and longitude [degrees north, degrees east].
    utc_offset : float
        Hours local standard time is ahead of UTC [h].
    solar_time : bool
        See :func:`solar_elevation`.

    Returns
    -------
    numpy.ndarray
        Potential radiation [W m-2], 0 where the sun is at or below the horizon.
    """
    if not (np.isfinite(lat) and -90 <= lat <= 90 and np.isfinite(lon) and -180 <= lon <= 180):
        raise ValueError(f"potential radiation needs a site position; got lat={lat}, lon={lon} [degrees]")
    if not (np.isfinite(utc_offset) and -12 <= utc_offset <= 14):
        raise ValueError(f"potential radiation needs the UTC offset of the time stamps [h]; got {utc_offset}")
    index = pd.DatetimeIndex(time)
    doy = index.day_of_year.to_numpy(dtype=float)
    hour = index.hour.to_numpy(dtype=float) + index.minute.to_numpy(dtype=float) / 60.0
    elevation = solar_elevation(doy, hour, lat, lon, utc_offset, solar_time=solar_time)
    return np.where(elevation <= 0, 0.0, extraterrestrial_radiation(doy) * np.sin(elevation))


def site_position(ds, i: int, lat=None, lon=None, utc_offset=None) -> dict[str, float]:
    """Latitude, longitude [degrees] and UTC offset [h] of site ``i`` of a (site, time) dataset.

    Each comes from its argument when given (a number, or one value per site),
    else from the site coordinate of that name; NaN when neither has it.
    """
    position = {}
    for name, given in (("lat", lat), ("lon", lon), ("utc_offset", utc_offset)):
        if given is not None:
            value = np.ravel(given)[i] if np.ndim(given) else given
        elif name in ds.coords:
            values = np.ravel(ds[name].values)
            value = values[i if values.size > 1 else 0]
        else:
            value = np.nan
        position[name] = float(value)
    return position


def day_of_year_fraction(time) -> xr.DataArray:
    """Phase of the year [rad] for each timestamp: 2π (doy − 1 + fraction of day) / days in year."""
    t = xr.DataArray(np.asarray(time), dims="time") if not isinstance(time, xr.DataArray) else time
    doy = t.dt.dayofyear - 1 + (t.dt.hour * 3600 + t.dt.minute * 60) / 86400.0
    ndays = xr.where(t.dt.is_leap_year, 366.0, 365.0)
    return 2.0 * np.pi * doy / ndays


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
