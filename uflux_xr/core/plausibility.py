"""Physically plausible values at every door where data come in.

Readers (towers, ERA5, rasters), cube building, extraction and upscaling call
:func:`check_plausible` (xarray) or :func:`check_values` (numpy) on what they
hand on.  The ranges live in the ``plausible`` section of the variable registry
(``data/variables.yaml``), each in its own units, for sub-daily records and for
daily or coarser means.  A value outside its range stops the work with a
:class:`PlausibilityError` that names the source, the variable, how many values
are off and how far, and the likely cause (a unit, a scale factor, an
accumulation period, ERA5 read as ERA5-Land).

Sub-daily tower records are the exception (:func:`screen_physical_range`): raw
half-hourly files always hold a few values outside the physical range, which
flux processing removes as bad records and goes on (the physical-range filter of
the FLUXNET2015 processing, Pastorello et al. 2020).  Up to
:data:`OUT_OF_RANGE_LIMIT` of a variable's values are set missing, flagged as
``<VAR>_RANGE`` and counted; more points to a unit or format error and stops
the read as above.

An expert who knows better turns the error into a logged warning with
``uflux_xr.set_options(range_check="warn")`` (also a context manager), the
environment variable ``UFLUX_RANGE_CHECK=warn``, or widens one range with
``set_options(ranges={"PA": (30, 110)})`` (in the range's units).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping

import dask
import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.constants import KELVIN
from uflux_xr.core.domain import time_step
from uflux_xr.core.variables import UnitsError, can_convert, canonical_units, convert_values, registry

log = logging.getLogger(__name__)

RANGE_CHECK_POLICIES = ("raise", "warn")
_options: dict = {"range_check": None, "ranges": {}}

# Stored fill values that a file forgot to declare (int16/uint16 extremes, FLUXNET's -9999 ...).
_FILL_VALUES = (-9999.0, 9999.0, -32768.0, 32767.0, 65535.0, -999.0, 1e20, 9.96921e36)
# Factors tried when the registry names no hint: a units prefix or a stored scale.
_GENERIC_FACTORS = (10.0, 100.0, 1000.0, 1e4, 0.1, 0.01, 1e-3, 1e-4)


class PlausibilityError(ValueError):
    """Values of a variable lie outside their physically plausible range."""


def range_check_policy() -> str:
    """The policy in force: ``set_options`` first, then ``UFLUX_RANGE_CHECK``, else ``"raise"``."""
    policy = _options["range_check"] or os.environ.get("UFLUX_RANGE_CHECK", "raise").strip().lower()
    if policy not in RANGE_CHECK_POLICIES:
        raise ValueError(f"range_check must be one of {RANGE_CHECK_POLICIES}, got {policy!r}")
    return policy


@contextlib.contextmanager
def _restore(saved: dict) -> Iterator[None]:
    try:
        yield
    finally:
        _options.update(saved)


def set_options(*, range_check: str | None = None, ranges: Mapping[str, tuple[float, float]] | None = None):
    """Set how plausibility checks behave; usable as a context manager.

    Parameters
    ----------
    range_check : {"raise", "warn"}, optional
        ``raise`` (default) stops with :class:`PlausibilityError`; ``warn`` logs
        the same message as a warning and goes on.
    ranges : mapping of str to (float, float), optional
        Replacement ranges per variable, in the units of the registry's entry
        (e.g. ``{"PA": (30, 110)}`` [kPa]); they apply at every time step.

    Examples
    --------
    >>> with set_options(range_check="warn"):  # doctest: +SKIP
    ...     cube = read_era5(paths)
    """
    if range_check is not None and range_check not in RANGE_CHECK_POLICIES:
        raise ValueError(f"range_check must be one of {RANGE_CHECK_POLICIES}, got {range_check!r}")
    saved = {"range_check": _options["range_check"], "ranges": dict(_options["ranges"])}
    if range_check is not None:
        _options["range_check"] = range_check
    if ranges is not None:
        _options["ranges"] = {**_options["ranges"], **{k: (float(a), float(b)) for k, (a, b) in ranges.items()}}
    return _restore(saved)


def resolution_of(step) -> str | None:
    """``"subdaily"`` for steps shorter than a day, ``"daily"`` for a day or longer, None when unknown."""
    if step is None:
        return None
    return "subdaily" if pd.Timedelta(step) < pd.Timedelta(hours=23) else "daily"


# Suffixes of tower columns that hold a variant of a canonical variable (REddyProc's
# measured `_orig` and filled `_f`, FLUXNET's day-time partitioning `_DT`).
_VARIANT_SUFFIXES = ("_REF_f", "_orig", "_f", "_DT", "_NT")


def registry_name(name: str) -> str | None:
    """The registry entry whose range applies to ``name`` (``TA_orig`` -> ``TA``), or None."""
    table = registry().get("plausible", {})
    if name in table:
        return name
    for suffix in _VARIANT_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in table:
            return name[: -len(suffix)]
    return None


def plausible_range(name: str, resolution: str | None = None) -> tuple[float, float, str] | None:
    """(low, high, units) of a variable at a time resolution, or None when the registry has none.

    Parameters
    ----------
    name : str
        Canonical variable name.
    resolution : {"subdaily", "daily", None}
        None (static or unknown step) takes the widest of the ranges.
    """
    known = registry_name(name)
    if known is None:
        return None
    name = known
    entry = registry()["plausible"][name]
    spans = [entry[k] for k in ("any", "subdaily", "daily") if k in entry]
    chosen = entry.get("any") or (entry.get(resolution) if resolution else None)
    if chosen is None and resolution is not None:
        return None  # e.g. ET has a daily range only
    if chosen is None:  # unknown step: the widest range in the first entry's units
        units = spans[0]["units"]
        same = [s for s in spans if can_convert(s["units"], units)]
        lo = min(float(convert_values(s["range"][0], s["units"], units)) for s in same)
        hi = max(float(convert_values(s["range"][1], s["units"], units)) for s in same)
    else:
        units = chosen["units"]
        lo, hi = (float(v) for v in chosen["range"])
    if name in _options["ranges"]:  # name is the registry's here
        lo, hi = _options["ranges"][name]
    return lo, hi, units


def _to_range_units(values, units: str | None, range_units: str, step, *, name: str, source: str):
    """Values in the range's units; amounts per step ("mm") become rates ("mm d-1") by the step."""
    if units is None or canonical_units(units) == canonical_units(range_units):
        return values
    if canonical_units(units) == "mm" and canonical_units(range_units) == "mm d-1" and step is not None:
        return values * (pd.Timedelta(days=1) / pd.Timedelta(step))
    try:
        return convert_values(values, units, range_units)
    except UnitsError:
        raise UnitsError(
            f"{source}: variable {name!r} is in {units!r}, which cannot be converted to {range_units!r}"
        ) from None


def _fits(vmin: float, vmax: float, lo: float, hi: float, factor: float = 1.0, offset: float = 0.0) -> bool:
    """Do the values fit after ``value * factor + offset`` without collapsing to a tiny part of the range?"""
    a, b = vmin * factor + offset, vmax * factor + offset
    span = hi - lo
    return lo - 1e-9 <= a and b <= hi + 1e-9 and (b - lo) >= 0.05 * span


def likely_cause(name: str, vmin: float, vmax: float, lo: float, hi: float, units: str) -> str:
    """A short guess at why values in [vmin, vmax] miss the range [lo, hi] of ``name``."""
    entry = registry().get("plausible", {}).get(registry_name(name) or name, {})
    for fill in _FILL_VALUES:
        if np.isclose(vmin, fill) or np.isclose(vmax, fill):
            return f"a fill value ({fill:g}) not marked as missing (_FillValue / missing_value)"
    if "offset_hint" in entry and _fits(vmin, vmax, lo, hi, offset=-KELVIN):
        return entry["offset_hint"]
    for factor, text in entry.get("scale_hints", {}).items():
        if _fits(vmin, vmax, lo, hi, float(factor)):
            return text
    for factor in _GENERIC_FACTORS:
        if _fits(vmin, vmax, lo, hi, factor):
            return (
                f"the values fit after multiplying by {factor:g}: a wrong 'units' attribute "
                f"(values are not in {units}) or a missing scale_factor"
            )
    return f"not in {units} or not {name} at all: check the units attribute, the variable chosen and the fill value"


def check_values(
    values,
    name: str,
    units: str | None,
    *,
    source: str,
    resolution: str | None = None,
    step=None,
) -> int:
    """Check finite ``values`` of ``name`` in ``units`` against the registry's plausible range.

    Parameters
    ----------
    values : array-like
        Values (NaN ignored).
    name : str
        Canonical variable name; names without a registry range pass.
    units : str or None
        Units of ``values``; converted to the range's units before the test.
    source : str
        File or step the values come from, for the message.
    resolution : {"subdaily", "daily", None}
        Time resolution of the values (None: static or unknown).
    step : timedelta-like, optional
        Time step, to compare amounts per step [mm] with a daily range [mm d-1].

    Returns
    -------
    int
        Number of values outside the range (0, or more under ``range_check="warn"``).

    Raises
    ------
    PlausibilityError
        Under the default policy, when any value lies outside the range.
    UnitsError
        When ``units`` cannot be converted to the range's units.
    """
    spec = plausible_range(name, resolution)
    if spec is None:
        return 0
    lo, hi, range_units = spec
    raw = np.asarray(values)
    if raw.size == 0:
        return 0
    # The registry's conversions are increasing and affine, so the extremes convert to the extremes:
    # test those first (this runs on every chunk the upscaler predicts) and only look at every value,
    # in float64 and in the range's units, when one of them is out.
    extremes = np.array([np.fmin.reduce(raw, axis=None), np.fmax.reduce(raw, axis=None)], dtype=np.float64)
    if np.isnan(extremes).any():
        return 0  # all NaN
    low, high = _to_range_units(extremes, units, range_units, step, name=name, source=source)
    if lo <= low and high <= hi:
        return 0
    arr = np.asarray(_to_range_units(raw.astype(np.float64), units, range_units, step, name=name, source=source))
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return 0
    below, above = int((finite < lo).sum()), int((finite > hi).sum())
    return _report(name, source, resolution, lo, hi, range_units, finite.size, below, above, finite.min(), finite.max())


def _report(name, source, resolution, lo, hi, units, n, below, above, vmin, vmax, note: str = "") -> int:
    bad = below + above
    if bad == 0:
        return 0
    period = {"subdaily": " for sub-daily values", "daily": " for daily or coarser means"}.get(resolution, "")
    cause = likely_cause(name, float(vmin), float(vmax), lo, hi, units)
    shown_units = "(dimensionless)" if units == "1" else units
    message = (
        f"{source}: {name} has {bad:,} of {n:,} values ({100.0 * bad / n:.3g} %) outside the plausible range "
        f"[{lo:g}, {hi:g}] {shown_units}{period} ({below:,} below, {above:,} above; "
        f"min {vmin:.6g}, max {vmax:.6g}){note}; likely cause: {cause}. If the values are right, set "
        "uflux_xr.set_options(range_check='warn') or UFLUX_RANGE_CHECK=warn, or widen the range with "
        "set_options(ranges=...)"
    )
    if range_check_policy() == "raise":
        raise PlausibilityError(message)
    log.warning("%s", message)
    return bad


def check_plausible(obj, *, source: str, step=None, names=None, max_time_steps: int | None = None):
    """Check every registered variable of a Dataset (or one DataArray) against its plausible range.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Values with ``units`` attributes; a DataArray is checked under its name.
    source : str
        File or step the data come from, for the message.
    step : timedelta-like, optional
        Time step of the values (default: from the ``time`` coordinate; static
        layers use the widest range).
    names : iterable of str, optional
        Variables to check (default: all data variables with a registry range).
    max_time_steps : int, optional
        Check at most this many evenly spaced time steps of a lazy, large input
        (the rest is checked chunk by chunk where it is used).

    Returns
    -------
    The input, unchanged, so the call can wrap a return value.

    Raises
    ------
    PlausibilityError
        See :func:`check_values`.
    """
    ds = obj.to_dataset(name=obj.name) if isinstance(obj, xr.DataArray) else obj
    if max_time_steps is not None and "time" in ds.dims and ds.sizes["time"] > max_time_steps:
        ds = ds.isel(time=np.unique(np.linspace(0, ds.sizes["time"] - 1, max_time_steps).round().astype(int)))
    if step is None and "time" in obj.dims and obj.sizes["time"] > 1:
        step = time_step(obj.indexes["time"])
    resolution = resolution_of(step)
    wanted = list(ds.data_vars) if names is None else [n for n in names if n in ds.data_vars]
    checked = [n for n in wanted if plausible_range(n) is not None and np.issubdtype(ds[n].dtype, np.number)]
    if not checked:
        return obj
    stats = {}
    for n in checked:
        spec = plausible_range(n, resolution if "time" in ds[n].dims else None)
        if spec is None:  # a daily-only range on a sub-daily variable (ET)
            continue
        lo, hi, range_units = spec
        da = _to_range_units(
            ds[n].astype(np.float64), ds[n].attrs.get("units"), range_units, step, name=n, source=source
        )
        stats[n] = (
            spec,
            "time" in ds[n].dims,
            da.count(),
            (da < lo).sum(),
            (da > hi).sum(),
            da.min(),
            da.max(),
        )
    (computed,) = dask.compute(stats)
    for n, (spec, timed, count, below, above, vmin, vmax) in computed.items():
        lo, hi, units = spec
        count, below, above = int(count), int(below), int(above)
        if count:
            _report(n, source, resolution if timed else None, lo, hi, units, count, below, above, vmin, vmax)
    return obj


#: Largest share of a sub-daily tower variable's values outside the physical range that
#: :func:`screen_physical_range` removes as bad records.  Isolated spikes of raw EddyPro output stay far
#: below it (2 of 132 LE values, 1 of 49 NEE values in two real files); a wrong unit or scale puts most
#: values out of range.
OUT_OF_RANGE_LIMIT = 0.05

#: Suffix of the flag of values :func:`screen_physical_range` removed (1 removed, 0 kept).
RANGE_FLAG_SUFFIX = "_RANGE"


def screen_physical_range(ds: xr.Dataset, *, source: str, names=None, limit: float = OUT_OF_RANGE_LIMIT) -> xr.Dataset:
    """Remove a sub-daily tower record's few values outside the physical range; refuse many.

    Parameters
    ----------
    ds : xarray.Dataset
        A tower record in memory with a ``time`` coordinate and ``units`` attributes.
    source : str
        File or step the record comes from, for the messages.
    names : iterable of str, optional
        Variables to screen (default: every variable with a registry range).
    limit : float
        Largest share [0-1] of a variable's values that may be removed (default
        :data:`OUT_OF_RANGE_LIMIT`).

    Returns
    -------
    xarray.Dataset
        The record with those values set missing, a flag ``<VAR>_RANGE`` (int8, 1 where a value was
        removed) for each variable that lost some, the count in the variable's
        ``n_outside_physical_range`` attribute, and one warning naming the source and the counts.
        Daily or coarser records are checked strictly by :func:`check_plausible` instead.

    Raises
    ------
    PlausibilityError
        When more than ``limit`` of a variable's values lie outside the range (a unit or format error),
        under the default policy; with ``range_check="warn"`` those values are kept and logged.
    """
    step = time_step(ds.indexes["time"]) if ds.sizes.get("time", 0) > 1 else None
    if resolution_of(step) != "subdaily":
        return check_plausible(ds, source=source, step=step, names=names)
    out = ds.copy()
    removed = []
    wanted = list(ds.data_vars) if names is None else [n for n in names if n in ds.data_vars]
    for name in map(str, wanted):
        spec = plausible_range(name, "subdaily")
        if spec is None or not np.issubdtype(ds[name].dtype, np.number) or "time" not in ds[name].dims:
            continue
        lo, hi, range_units = spec
        values = np.asarray(
            _to_range_units(
                ds[name].values.astype(np.float64),
                ds[name].attrs.get("units"),
                range_units,
                step,
                name=name,
                source=source,
            )
        )
        below, above = values < lo, values > hi  # NaN compares False
        bad = below | above
        n_bad, n = int(bad.sum()), int(np.isfinite(values).sum())
        if n_bad == 0:
            continue
        if n_bad > limit * n:
            note = f": more than {100 * limit:g} % of the values, so not the few bad records a raw file holds"
            finite = values[np.isfinite(values)]
            _report(
                name,
                source,
                "subdaily",
                lo,
                hi,
                range_units,
                n,
                int(below.sum()),
                int(above.sum()),
                finite.min(),
                finite.max(),
                note,
            )
            continue
        out[name] = ds[name].where(~bad).assign_attrs(n_outside_physical_range=n_bad)
        out[f"{name}{RANGE_FLAG_SUFFIX}"] = (
            ds[name].dims,
            bad.astype(np.int8),
            {
                "long_name": f"{name} outside its physical range [{lo:g}, {hi:g}] {range_units}, set missing",
                "units": "1",
                "flag_values": np.array([0, 1], dtype=np.int8),
                "flag_meanings": "kept removed",
            },
        )
        removed.append(f"{name} {n_bad:,} of {n:,} ({100.0 * n_bad / n:.2g} %) outside [{lo:g}, {hi:g}] {range_units}")
    if removed:
        log.warning(
            "%s: set missing as outside the physical range (flagged as <VAR>%s): %s",
            source,
            RANGE_FLAG_SUFFIX,
            "; ".join(removed),
        )
        out.attrs["physical_range_removed"] = "; ".join(removed)
    return out
