"""Derived predictors: vapour pressure deficit, vegetation indices, day-of-year
harmonics, a location's peak greenness and top-of-atmosphere radiation.

Pure functions on numpy arrays or xarray objects (they broadcast either way).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

#: Solar constant [W m-2].
SOLAR_CONSTANT = 1361.0

#: Names of the day-of-year harmonic features added by :func:`doy_harmonics`.
HARMONIC_NAMES = ("DOY_SIN", "DOY_COS")
#: Annual-maximum features :func:`resolve_features` derives where the cube lacks them, and their source.
ANNUAL_MAXIMA = {"NIRv_MAX": "NIRv"}
#: Every predictor name :func:`resolve_features` can derive from a cube.
DERIVED_NAMES = (*HARMONIC_NAMES, *ANNUAL_MAXIMA)


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


def annual_maximum(da: xr.DataArray) -> xr.DataArray:
    """Each location's maximum of ``da`` over the calendar year of each time step [units of ``da``].

    A year's peak greenness (``NIRv_MAX``) scales a site's basal respiration
    the way the maximum LAI of the site-year does in Migliavacca et al.
    (2011, Glob. Change Biol. 17, 390-409): the respiring biomass and litter
    follow the productivity of the year, not the phenology of the day.  The
    maximum of a year the data cover only in part is that part's maximum.
    Lazy with dask input: one reduction per year and location.

    Parameters
    ----------
    da : xarray.DataArray
        A series with a ``time`` dimension (cube cells or towers).
    """
    years = da["time"].dt.year.values
    parts = []
    for year in np.unique(years):
        in_year = da.isel(time=years == year)
        # Missing steps as -inf, so the plain maximum needs no NaN handling; a cell without any data (sea)
        # is NaN again below.  dask's nanmax hides its "All-NaN slice" RuntimeWarning with
        # warnings.catch_warnings, which is not thread-safe under the threaded scheduler (one such
        # warning reached the output of benchmarks/aoa_error.py --hybrid).
        peak = in_year.fillna(-np.inf).max("time", skipna=False)
        # the year's maximum, repeated over its steps (broadcast, not copied: lazy with dask)
        parts.append(peak.where(peak > -np.inf).broadcast_like(in_year))
    out = xr.concat(parts, dim="time") if len(parts) > 1 else parts[0]
    if da.chunks:  # the source's chunks, so the feature lines up with the other predictors' blocks
        out = out.chunk(dict(zip(da.dims, da.chunks, strict=True)))
    return out.transpose(*da.dims).assign_attrs(da.attrs)


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
    ``time`` coordinate and annual maxima (:data:`ANNUAL_MAXIMA`, e.g.
    ``NIRv_MAX``) from their source variable over the cube's whole time axis,
    unless the cube holds them already (:func:`with_annual_maxima` adds them
    before a cube is cut into time windows); every other name must be a cube
    variable.  Training tables and the upscaler both call this, so a model
    sees identical features in both.

    Raises
    ------
    KeyError
        Naming the missing variables and the cube's variables.
    """
    derivable = [*HARMONIC_NAMES, *(n for n, source in ANNUAL_MAXIMA.items() if source in cube.data_vars)]
    missing = [n for n in names if n not in cube.data_vars and n not in derivable]
    if missing:
        raise KeyError(
            f"predictor(s) {missing} not found in the cube; it has {sorted(map(str, cube.data_vars))}"
            f" (derived predictors: {list(HARMONIC_NAMES)}, and {ANNUAL_MAXIMA} from their source)"
        )
    out = {}
    harmonics = doy_harmonics(cube["time"]) if any(n in HARMONIC_NAMES for n in names) else {}
    for n in names:
        if n in cube.data_vars:
            out[n] = cube[n]
        elif n in HARMONIC_NAMES:
            out[n] = harmonics[n]
        else:
            out[n] = _annual_maximum_feature(cube, n)
    return out


def _annual_maximum_feature(cube: xr.Dataset, name: str) -> xr.DataArray:
    source = cube[ANNUAL_MAXIMA[name]]
    return annual_maximum(source).assign_attrs(
        units=source.attrs.get("units", "1"), long_name=f"annual maximum of {ANNUAL_MAXIMA[name]}"
    )


def check_whole_years(names, window, source) -> None:
    """Refuse a time window of a cube made on the fly (the lazy demo world) when ``names`` hold annual maxima.

    Such a world makes only the window's days, so a window's own maximum would
    stand in for the year's; ``source`` names the config in the message.

    Raises
    ------
    ValueError
        Naming the annual-maximum predictors.
    """
    maxima = [n for n in names if n in ANNUAL_MAXIMA]
    if maxima and window and "time" in window:
        raise ValueError(
            f"{source}: predictors {maxima} are annual maxima, which a time window of the lazy demo "
            "world cannot give (it makes only the window's days); run without a time window"
        )


def with_annual_maxima(cube: xr.Dataset, names) -> xr.Dataset:
    """``cube`` with the annual-maximum features among ``names`` added as variables (lazy).

    Call it on the whole cube before cutting it into time windows: a window's
    own maximum would differ from the one the models were trained with.
    """
    wanted = [n for n in names if n in ANNUAL_MAXIMA and n not in cube.data_vars and ANNUAL_MAXIMA[n] in cube]
    return cube.assign({n: _annual_maximum_feature(cube, n) for n in wanted}) if wanted else cube
