"""Sun position and potential (top-of-atmosphere, horizontal) radiation.

The formulas are REddyProc's (``R/GeoFunctions.R``: ``fCalcSunPosition``,
``fCalcExtRadiation``, ``fCalcPotRadiation``; the same as the ``solartime``
R package REddyProc now calls), so that the night/day split of the
partitioning selects the same records as REddyProc: fractional year
2π(DoY − 1)/365.24, Cescatti's equation of time and declination series, the
clock hour moved to solar time by longitude/15 − UTC offset plus the equation
of time, and a solar constant of 1366.1 W m-2 with Lanini's eccentricity
correction.  Potential radiation is 0 when the sun is at or below the horizon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SOLAR_CONSTANT = 1366.1  # [W m-2], fCalcExtRadiation


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
    return SOLAR_CONSTANT * (
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
