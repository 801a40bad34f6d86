"""Derived predictors of the upscaling: day-of-year harmonics and a location's peak greenness, and the
resolution of a model's feature names against a cube.

The formulas behind other derived inputs (vapour pressure deficit, vegetation indices, top-of-atmosphere
radiation) are in :mod:`uflux_xr.core.physics` and :mod:`uflux_xr.core.solar`: the tower wing uses them too.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from uflux_xr.core.solar import day_of_year_fraction
from uflux_xr.core.variables import MissingVariableError

#: Names of the day-of-year harmonic features added by :func:`doy_harmonics`.
HARMONIC_NAMES = ("DOY_SIN", "DOY_COS")
#: Annual-maximum features :func:`resolve_features` derives where the cube lacks them, and their source.
ANNUAL_MAXIMA = {"NIRv_MAX": "NIRv"}
#: Every predictor name :func:`resolve_features` can derive from a cube.
DERIVED_NAMES = (*HARMONIC_NAMES, *ANNUAL_MAXIMA)


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
        raise MissingVariableError(
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
