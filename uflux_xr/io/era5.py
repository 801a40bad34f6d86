"""ERA5 and ERA5-Land NetCDF files from the Copernicus CDS into a predictor cube.

Both CDS layouts are read: the older one (``time``, ``latitude``,
``longitude``, sometimes an ``expver`` dimension mixing ERA5 and ERA5T) and
the current one (``valid_time``, with ``expver`` and ``number`` as
coordinates).  Longitudes 0–360 become −180–180 and latitudes ascend.

Conversions, by the ``units`` attribute of each CDS variable:

========  ==========  ===================================================
CDS name  canonical   conversion
========  ==========  ===================================================
t2m       TA          K -> °C
d2m       (VPD)       VPD = es(TA) − es(Td) [hPa] (FAO-56 eq. 11)
stl1      TS          K -> °C
ssrd      SW_IN       J m-2 accumulated over the step -> W m-2
strd      LW_IN       J m-2 accumulated over the step -> W m-2
tp        P           m per step -> mm per step (mm d-1 when daily)
sp        PA          Pa -> kPa
u10, v10  WS          wind speed sqrt(u² + v²) [m s-1]
swvl1     SWC         m3 m-3 -> %
lsm       land_frac.  land-sea mask fraction [0-1] (static)
========  ==========  ===================================================

Mean rates (``msdwswrf``/``avg_sdswrf``, ``msdwlwrf``/``avg_sdlwrf`` in W m-2,
``mtpr``/``avg_tprate`` in kg m-2 s-1) are read as SW_IN, LW_IN and P.

What a file is comes from the file, not from its attributes:

- **Accumulation convention.** ERA5 hourly accumulations cover the hour ending
  at the time label.  ERA5-Land accumulations run from 00 UTC and the 00 UTC
  value holds the previous day's total, so they are de-accumulated by
  differencing within each day.  The convention is read from the values
  (within a day, ERA5-Land accumulations never decrease; ERA5's hourly
  amounts do), else from the grid (0.1° ERA5-Land, 0.25° ERA5), else from
  the attributes; ``land=`` that contradicts the values is an error.
- **Time step.** ERA5 hourly amounts sampled every few hours hold only the
  sampled hours' amounts (a 6-hourly file holds a sixth of the rain): refused.
  ERA5-Land accumulations sampled every few hours are differenced over the
  real step, which is exact, and said so in the log.  Monthly means (the CDS
  monthly layout with a ``date`` dimension, or any monthly step) hold mean
  daily accumulations: divided by 86400 s, P in mm d-1.
- **Grids.** Files on different grids (ERA5 0.25° and ERA5-Land 0.1°) are not
  combined here (that would leave an irregular grid full of holes): read each
  product on its own and combine them with :func:`uflux_xr.io.cube.build_cube`,
  which regrids to a domain.
- **Whole days.** Daily and monthly means keep only complete days (and months);
  partial first and last days are dropped and logged.
- GRIB files are read through cfgrib when it is installed (``pip install
  cfgrib``); NetCDF is the tested path.

**Analysis-ready Zarr (ARCO-ERA5).** A Zarr store, local or at an fsspec URL
(``gs://gcp-public-data-arco-era5/ar/...``, ``s3://bucket/era5.zarr``), is read
lazily with the same conversions.  Its variables carry the long names of the
CDS API (``2m_temperature``, ``surface_solar_radiation_downwards``,
``mean_total_precipitation_rate``...: :data:`ARCO_NAMES`), its latitudes run
north to south and its longitudes 0-360, and its accumulations are ERA5's
hourly amounts.  Of a store of hundreds of variables only the known ones are
opened, and ``period`` and ``bounds`` cut the time steps and cells before any
chunk is read, so a month of a multi-decade store reads that month's chunks.

Every output variable is checked against its plausible range
(:mod:`uflux_xr.core.plausibility`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.constants import KELVIN, SECONDS_PER_DAY
from uflux_xr.core.domain import COORDINATE_ATTRS, month_middles, time_step
from uflux_xr.core.physics import vpd_from_dewpoint
from uflux_xr.core.plausibility import check_plausible
from uflux_xr.core.variables import variable_attrs
from uflux_xr.io.storage import is_url, local_copy, redact, zarr_store

log = logging.getLogger(__name__)

#: CDS variable -> units the file must state (any of these spellings): the source's own units, which the
#: reader converts to the registry's (uflux_xr.core.variables), not a second table of ours.
EXPECTED_UNITS = {
    "t2m": {"K"},
    "d2m": {"K"},
    "stl1": {"K"},
    "ssrd": {"J m**-2", "J m-2"},
    "strd": {"J m**-2", "J m-2"},
    "tp": {"m"},
    "sp": {"Pa"},
    "u10": {"m s**-1", "m s-1"},
    "v10": {"m s**-1", "m s-1"},
    "swvl1": {"m**3 m**-3", "m3 m-3"},
    "msdwswrf": {"W m**-2", "W m-2"},
    "msdwlwrf": {"W m**-2", "W m-2"},
    "mtpr": {"kg m**-2 s**-1", "kg m-2 s-1"},
    "lsm": {"(0 - 1)", "1", "0-1", "~"},
}
ACCUMULATED = ("ssrd", "strd", "tp")
#: Mean rates over the hour ending at the label: current CDS names -> the older ones.
MEAN_RATE_NAMES = {"avg_sdswrf": "msdwswrf", "avg_sdlwrf": "msdwlwrf", "avg_tprate": "mtpr"}
MEAN_RATES = ("msdwswrf", "msdwlwrf", "mtpr")
#: Grid spacing [degrees] of each product on its native grid.
NATIVE_SPACING = {"ERA5": 0.25, "ERA5-Land": 0.1}
GRIB_SUFFIXES = (".grib", ".grb", ".grib2", ".grb2")
#: Variable names of analysis-ready ERA5 stores (the CDS API's long names) -> the CDS files' short names.
ARCO_NAMES = {
    "2m_temperature": "t2m",
    "2m_dewpoint_temperature": "d2m",
    "soil_temperature_level_1": "stl1",
    "surface_solar_radiation_downwards": "ssrd",
    "surface_thermal_radiation_downwards": "strd",
    "total_precipitation": "tp",
    "surface_pressure": "sp",
    "10m_u_component_of_wind": "u10",
    "10m_v_component_of_wind": "v10",
    "volumetric_soil_water_layer_1": "swvl1",
    "land_sea_mask": "lsm",
    "mean_surface_downward_short_wave_radiation_flux": "msdwswrf",
    "mean_surface_downward_long_wave_radiation_flux": "msdwlwrf",
    "mean_total_precipitation_rate": "mtpr",
}


class ERA5Error(ValueError):
    """An ERA5 file cannot be converted to the predictor cube."""


def _open(path: Path, chunks) -> xr.Dataset:
    """Open a NetCDF or (through cfgrib) GRIB file."""
    if path.suffix.lower() in GRIB_SUFFIXES:
        try:
            import cfgrib  # noqa: F401
        except ImportError:
            raise ERA5Error(
                f"{path.name}: GRIB needs the optional package cfgrib (pip install cfgrib), "
                "or download NetCDF from the CDS"
            ) from None
        ds = xr.open_dataset(path, engine="cfgrib", chunks=chunks)
        if "step" in ds.dims:  # accumulations as (time, step): one valid time per value
            ds = ds.stack(vt=("time", "step")).swap_dims(vt="valid_time").drop_vars(["vt", "time", "step"])
            ds = ds.rename(valid_time="time")
        return ds
    try:
        return xr.open_dataset(path, chunks=chunks)
    except (OSError, ValueError) as err:
        raise ERA5Error(f"{path.name}: cannot be opened as NetCDF ({err})") from None


def is_zarr_store(path: str | os.PathLike) -> bool:
    """True for a Zarr store: a name ending in ``.zarr``, or a local folder holding Zarr metadata."""
    text = os.fspath(path).rstrip("/")
    if text.endswith(".zarr"):
        return True
    return not is_url(text) and any((Path(text) / name).exists() for name in ("zarr.json", ".zgroup", ".zmetadata"))


def _open_store(path: str | os.PathLike, storage_options: Mapping[str, Any] | None) -> xr.Dataset:
    """The ERA5 variables of a Zarr store (ARCO-ERA5's long names or the CDS short names), lazily."""
    source = redact(path)
    try:
        with warnings.catch_warnings():
            # a store without consolidated metadata opens a little slower: a hint for its writer, not for us
            warnings.filterwarnings("ignore", message="Failed to open Zarr store with consolidated metadata")
            ds = xr.open_zarr(zarr_store(path, storage_options, read_only=True), chunks={}, consolidated=None)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise ERA5Error(f"{source}: cannot be opened as a Zarr store ({err})") from None
    known = [str(v) for v in ds.data_vars if v in ARCO_NAMES or v in EXPECTED_UNITS or v in MEAN_RATE_NAMES]
    if not known:
        raise ERA5Error(
            f"{source}: none of the ERA5 variables this reader knows (e.g. {sorted(ARCO_NAMES)[:4]} or "
            f"{sorted(EXPECTED_UNITS)[:4]}); the store has {sorted(map(str, ds.data_vars))[:12]}"
        )
    ds = ds[known]
    return ds.rename({k: v for k, v in ARCO_NAMES.items() if k in known})


def _index(keep: np.ndarray) -> slice | np.ndarray:
    """The positions where ``keep`` holds: a slice where they are contiguous (a cheap cut for dask)."""
    where = np.flatnonzero(keep)
    if where.size and where[-1] - where[0] + 1 == where.size:
        return slice(int(where[0]), int(where[-1]) + 1)
    return where


def _cut(
    ds: xr.Dataset,
    period: tuple | None,
    bounds: tuple[float, float, float, float] | None,
    source: str,
) -> xr.Dataset:
    """``ds`` cut to ``period`` (plus the next day's 00 UTC, which closes the last day's accumulations) and to
    the cells within ``bounds`` and one grid spacing around them, in the source's own coordinates, before
    anything is read."""
    cuts: dict[str, slice | np.ndarray] = {}
    if period is not None and pd.Timestamp(period[0]) > pd.Timestamp(period[1]):
        raise ERA5Error(f"{source}: period={period}: the first day comes after the last")
    if bounds is not None and not (len(bounds) == 4 and -90.0 <= bounds[1] <= bounds[3] <= 90.0):
        raise ERA5Error(
            f"{source}: bounds={bounds}: expected (west, south, east, north) in degrees, south <= north within ±90"
        )
    time_dim = next((d for d in ("time", "valid_time", "date") if d in ds.dims), None)
    if period is not None and time_dim is not None and time_dim != "date":
        start, end = (pd.Timestamp(t).normalize() for t in period)
        time = ds.indexes[time_dim]
        inside = np.asarray((time >= start) & (time <= end + pd.Timedelta(days=1)))
        if not inside.any():
            raise ERA5Error(
                f"{source}: no time step inside the period {start:%Y-%m-%d}..{end:%Y-%m-%d} "
                f"(the file covers {time.min():%Y-%m-%d %H:%M}..{time.max():%Y-%m-%d %H:%M})"
            )
        cuts[time_dim] = _index(inside)
    if bounds is not None:
        west, south, east, north = bounds
        lat_dim = next((d for d in ("latitude", "lat") if d in ds.dims), None)
        lon_dim = next((d for d in ("longitude", "lon") if d in ds.dims), None)
        if lat_dim is None or lon_dim is None:
            raise ERA5Error(f"{source}: expected latitude/longitude dimensions, got {tuple(ds.dims)}")
        lat = ds[lat_dim].values
        lon = ((ds[lon_dim].values + 180.0) % 360.0) - 180.0
        margin = grid_spacing(ds.rename({lat_dim: "lat", lon_dim: "lon"})) or 0.0
        near_lat = (lat >= south - margin) & (lat <= north + margin)
        if west <= east:
            near_lon = (lon >= west - margin) & (lon <= east + margin)
        else:  # across the antimeridian
            near_lon = (lon >= west - margin) | (lon <= east + margin)
        cuts[lat_dim], cuts[lon_dim] = _index(near_lat), _index(near_lon)
    if not cuts:
        return ds
    cut = ds.isel(cuts)
    empty = [d for d in cuts if cut.sizes[d] == 0]
    if empty:
        raise ERA5Error(f"{source}: nothing within period={period} bounds={bounds} (no {', '.join(empty)} left)")
    return cut


def _normalise_layout(ds: xr.Dataset, source: str) -> xr.Dataset:
    if "valid_time" in ds.dims:
        ds = ds.rename({"valid_time": "time"})
    if "date" in ds.dims and "time" not in ds.dims:  # current CDS monthly layout: date = YYYYMMDD
        stamps = pd.to_datetime(ds["date"].values.astype("int64").astype(str), format="%Y%m%d")
        ds = ds.assign_coords(date=stamps).rename({"date": "time"})
    if "time" not in ds.dims:
        raise ERA5Error(f"{source}: no 'time', 'valid_time' or 'date' dimension; dims are {tuple(ds.dims)}")
    if "expver" in ds.dims:  # old layout mixing final ERA5 and ERA5T: first valid value wins
        parts = [ds.isel(expver=i, drop=True) for i in range(ds.sizes["expver"])]
        merged = parts[0]
        for part in parts[1:]:
            merged = merged.combine_first(part)
        ds = merged
    ds = ds.drop_vars([c for c in ("expver", "number", "step", "surface") if c in ds.variables and c not in ds.dims])
    ds = ds.rename({k: v for k, v in MEAN_RATE_NAMES.items() if k in ds})
    renames = {k: v for k, v in (("latitude", "lat"), ("longitude", "lon")) if k in ds.dims}
    ds = ds.rename(renames)
    if "lat" not in ds.dims or "lon" not in ds.dims:
        raise ERA5Error(f"{source}: expected latitude/longitude dimensions, got {tuple(ds.dims)}")
    lon = ((ds["lon"] + 180.0) % 360.0) - 180.0
    ds = ds.assign_coords(lon=lon).sortby("lon").sortby("lat")
    ds["lat"].attrs = dict(COORDINATE_ATTRS["lat"])
    ds["lon"].attrs = dict(COORDINATE_ATTRS["lon"])
    return ds


def _check_units(ds: xr.Dataset, source: str) -> None:
    for name, allowed in EXPECTED_UNITS.items():
        if name not in ds:
            continue
        units = ds[name].attrs.get("units")
        if units is None:
            raise ERA5Error(f"{source}: variable {name!r} has no 'units' attribute; expected {sorted(allowed)[0]!r}")
        if units not in allowed:
            raise ERA5Error(f"{source}: variable {name!r} is in {units!r}; expected {sorted(allowed)[0]!r}")


def grid_spacing(ds: xr.Dataset) -> float | None:
    """Median spacing [degrees] of a (lat, lon) grid, or None for a single cell."""
    steps = [np.abs(np.diff(ds[d].values)) for d in ("lat", "lon") if ds.sizes[d] > 1]
    return float(np.median(np.concatenate(steps))) if steps else None


def product_from_grid(spacing: float | None) -> str | None:
    """``"ERA5"`` (0.25°), ``"ERA5-Land"`` (0.1°) or None (single cell or another grid)."""
    for product, native in NATIVE_SPACING.items():
        if spacing is not None and abs(spacing - native) < 1e-3:
            return product
    return None


def _mentions_land(ds: xr.Dataset) -> bool:
    text = " ".join(str(v) for v in ds.attrs.values()).lower()
    return "era5-land" in text or "reanalysis-era5-land" in text


def accumulation_from_values(acc: xr.DataArray, step: pd.Timedelta) -> bool | None:
    """Whether accumulations run since 00 UTC (ERA5-Land: True) or cover one step (ERA5: False).

    Within a day, accumulations since 00 UTC never decrease, while ERA5's hourly
    amounts rise and fall with the sun and the rain.  Pairs of consecutive steps
    that cross the 00 UTC restart are left out.  None when the values cannot tell
    (fewer than 3 changing pairs: night, no rain, constant test fields).
    """
    sample = acc.isel(time=slice(0, 96))
    if sample.sizes["lat"] * sample.sizes["lon"] > 400:  # a spread of cells is enough
        sample = sample.isel(
            lat=np.unique(np.linspace(0, sample.sizes["lat"] - 1, 20).astype(int)),
            lon=np.unique(np.linspace(0, sample.sizes["lon"] - 1, 20).astype(int)),
        )
    values = np.asarray(sample.transpose("time", ...).values, dtype=np.float64)
    if values.shape[0] < 2:
        return None
    time = sample.indexes["time"]
    same_period = np.asarray((time[1:] - time[:-1]) == step) & np.asarray(time[1:].hour * 3600 != step.total_seconds())
    diffs = np.diff(values, axis=0)[same_period].ravel()
    scale = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 0.0
    changing = diffs[np.isfinite(diffs) & (np.abs(diffs) > 1e-6 * max(scale, 1e-30))]
    if changing.size < 3:
        return None
    falling = float((changing < 0).mean())
    if falling < 0.01:
        return True
    if falling > 0.05:
        return False
    return None


def _deaccumulate_since_midnight(acc: xr.DataArray, step: pd.Timedelta) -> xr.DataArray:
    """Amounts per step from accumulations that restart at 00 UTC (ERA5-Land).

    The first step after 00 UTC holds its own amount; later steps are
    differences with the step before (exact for any step that divides a day:
    the accumulation is a running total), and 00 UTC (the previous day's total)
    minus the last step before it gives the day's last amount.
    """
    previous = acc.shift(time=1)
    gap = acc["time"].diff("time") != np.timedelta64(step)
    amounts = acc - previous
    amounts = amounts.where(~gap.reindex(time=acc["time"], fill_value=True))
    first_step = acc["time"].dt.hour * 3600 + acc["time"].dt.minute * 60 == step.total_seconds()
    return xr.where(first_step, acc, amounts)


def _convert(ds: xr.Dataset, land: bool, step: pd.Timedelta, monthly: bool) -> xr.Dataset:
    """Canonical variables from CDS ones.  Accumulations become amounts per step
    (per day for monthly means), then W m-2 or mm per step (mm d-1)."""
    step_s = SECONDS_PER_DAY if monthly else step.total_seconds()
    out = xr.Dataset(coords={c: ds[c] for c in ("time", "lat", "lon")})
    if "t2m" in ds:
        out["TA"] = ds["t2m"] - KELVIN
    if "t2m" in ds and "d2m" in ds:
        out["VPD"] = np.maximum(vpd_from_dewpoint(ds["t2m"] - KELVIN, ds["d2m"] - KELVIN), 0.0)
    if "stl1" in ds:
        out["TS"] = ds["stl1"] - KELVIN
    for cds, name, factor in (("ssrd", "SW_IN", 1.0 / step_s), ("strd", "LW_IN", 1.0 / step_s), ("tp", "P", 1000.0)):
        if cds in ds:
            amount = _deaccumulate_since_midnight(ds[cds], step) if land and not monthly else ds[cds]
            out[name] = np.maximum(amount * factor, 0.0)  # clip the tiny negative values of GRIB packing
    for cds, name, factor in (("msdwswrf", "SW_IN", 1.0), ("msdwlwrf", "LW_IN", 1.0), ("mtpr", "P", step_s)):
        if cds in ds:
            if name in out:
                raise ERA5Error(f"both an accumulation and the mean rate {cds!r} give {name}; pass one of them")
            out[name] = np.maximum(ds[cds] * factor, 0.0)  # kg m-2 s-1 x s = mm per step
    if "sp" in ds:
        out["PA"] = ds["sp"] / 1000.0
    if "u10" in ds and "v10" in ds:
        out["WS"] = np.hypot(ds["u10"], ds["v10"])
    if "swvl1" in ds:
        out["SWC"] = ds["swvl1"] * 100.0
    if "lsm" in ds:  # invariant: the first step is the field
        out["land_fraction"] = ds["lsm"].isel(time=0, drop=True)
    if not out.data_vars:
        raise ERA5Error(f"no known ERA5 variables; expected some of {sorted(EXPECTED_UNITS)}")
    for name in map(str, out.data_vars):
        attrs = {k: v for k, v in variable_attrs(name).items() if k in ("long_name", "units", "standard_name")}
        out[name].attrs = attrs
    if "P" in out:
        out["P"].attrs["units"] = "mm d-1" if monthly else "mm"  # per time step
    return out


def _complete_periods(counts: xr.DataArray, expected) -> xr.DataArray:
    """Periods whose count of values (at any cell) reaches ``expected``."""
    return counts.max([d for d in counts.dims if d != "time"]) >= expected


def _daily(hourly: xr.Dataset, step: pd.Timedelta, source: str) -> xr.Dataset:
    """Daily means (sums for P), labelled at 12:00, complete days only.

    Accumulated fluxes cover the step ending at their label, so they are
    assigned to the day of the step's middle; a day needs all its steps.  A
    regular series is reduced by ``coarsen`` over whole days (one dask task per
    chunk, not per day).
    """
    per_day = int(round(pd.Timedelta(days=1) / step))
    time = hourly.indexes["time"]
    regular = bool((np.diff(time.values) == np.timedelta64(step)).all())
    parts = []
    for name, var in hourly.data_vars.items():
        accumulated = name in ("SW_IN", "LW_IN", "P")
        middle = time - step / 2 if accumulated else time
        if regular:
            # whole days only: skip a partial first day, trim a partial last one
            day_of = middle.floor("D")
            first = int(np.flatnonzero(day_of != day_of[0])[0]) if (day_of == day_of[0]).sum() < per_day else 0
            n_days = (len(time) - first) // per_day
            trimmed = var.isel(time=slice(first, first + n_days * per_day))
            labels = day_of[first : first + n_days * per_day : per_day]
            trimmed = trimmed.assign_coords(time=np.arange(trimmed.sizes["time"]))
            coarse = trimmed.coarsen(time=per_day)
            daily = coarse.sum() if name == "P" else coarse.mean()
            daily = daily.assign_coords(time=labels)
        else:
            shifted = var.assign_coords(time=middle)
            resampled = shifted.resample(time="1D")
            daily = resampled.sum(min_count=1) if name == "P" else resampled.mean()
            complete = np.asarray(_complete_periods(resampled.count(), per_day).values)  # small: one per day
            daily = daily.isel(time=np.flatnonzero(complete))
        daily.attrs = dict(var.attrs)
        if name == "P":
            daily.attrs["units"] = "mm d-1"
        parts.append(daily.rename(name))
    out = xr.merge(parts, join="inner")
    days = pd.date_range(time[0].floor("D"), time[-1].floor("D"), freq="D")
    dropped = [str(d.date()) for d in days if d not in out.indexes["time"]]
    if dropped:
        log.info("%s: dropped %d incomplete day(s) of %d-step days: %s", source, len(dropped), per_day, dropped[:5])
    if out.sizes["time"] == 0:
        raise ERA5Error(f"{source}: no complete day (each day needs {per_day} steps of {step})")
    return out.assign_coords(time=out.indexes["time"] + pd.Timedelta(hours=12))


def _monthly(daily: xr.Dataset, source: str) -> xr.Dataset:
    """Monthly means of complete months, labelled mid-month."""
    resampled = daily.resample(time="1MS")
    out = resampled.mean()
    days_in_month = out.indexes["time"].days_in_month.to_numpy()
    counts = resampled.count()
    complete = _complete_periods(next(iter(counts.data_vars.values())), xr.DataArray(days_in_month, dims="time"))
    complete = complete.compute()
    if not bool(complete.any()):
        raise ERA5Error(f"{source}: no complete month for monthly means")
    dropped = [str(t)[:7] for t, ok in zip(out.indexes["time"], complete.values, strict=True) if not ok]
    if dropped:
        log.info("%s: dropped %d incomplete month(s): %s", source, len(dropped), dropped)
    out = out.isel(time=np.flatnonzero(complete.values))
    for name in out.data_vars:
        out[name].attrs = dict(daily[name].attrs)
    start = out.indexes["time"]
    return out.assign_coords(time=month_middles(start))


def _decide_land(ds: xr.Dataset, land: bool | None, step: pd.Timedelta, spacing: float | None, source: str) -> bool:
    """The accumulation convention (True: since 00 UTC, ERA5-Land), from the values first."""
    accumulated = [v for v in ACCUMULATED if v in ds]
    from_values = None
    for name in accumulated:
        from_values = accumulation_from_values(ds[name], step)
        if from_values is not None:
            break
    if land is not None and from_values is not None and land != from_values:
        kind = "run since 00 UTC (ERA5-Land)" if from_values else "are amounts per step (ERA5)"
        raise ERA5Error(f"{source}: land={land} was passed, but the accumulations in the file {kind}")
    if land is not None:
        return land
    if from_values is not None:
        return from_values
    by_grid = product_from_grid(spacing)
    if by_grid is not None:
        return by_grid == "ERA5-Land"
    if accumulated and not _mentions_land(ds):
        log.info("%s: accumulation convention not decidable from values or grid; reading as ERA5", source)
    return _mentions_land(ds)


def read_era5(
    paths,
    freq: str | None = None,
    *,
    land: bool | None = None,
    chunks: dict | None = None,
    period: tuple | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Read ERA5 / ERA5-Land NetCDF (or GRIB) files into a predictor cube (time, lat, lon).

    Parameters
    ----------
    paths : path, URL or list of them
        CDS files of one product (either layout, files split by variable or by
        ``stepType``; several files are combined by coordinates), or a Zarr
        store such as ARCO-ERA5's (local or at an fsspec URL; see the module
        docstring).
    freq : {None, "D", "MS"}
        Keep the file's step (None), or aggregate to daily (labels at 12:00) or
        monthly means (labels mid-month) of complete days and months;
        precipitation is summed per day [mm d-1].
    land : bool, optional
        Accumulations since 00 UTC (ERA5-Land).  Read from the values, the
        grid or the attributes when None; a value that contradicts the file's
        values is an error.
    chunks : dict, optional
        dask chunks for opening (default: one chunk per file variable; a store's own chunks).
    period : (start, end), optional
        First and last day [UTC dates] to keep; cut before anything is read (the
        day after ``end`` is read up to 00 UTC, which closes ``end``'s
        accumulations).
    bounds : (west, south, east, north), optional
        Degrees [-180..180, -90..90]: keep the cells within them and one grid
        spacing around them (neighbours for regridding); cut before anything is read.
    storage_options : mapping, optional
        fsspec options for URLs (``{"anon": True}`` for a public bucket; see
        :mod:`uflux_xr.io.storage`).

    Returns
    -------
    xarray.Dataset
        TA, TS [°C], VPD [hPa], SW_IN, LW_IN [W m-2], P [mm per step or mm d-1],
        PA [kPa], WS [m s-1], SWC [%], as far as the inputs allow; lazy.
        ``attrs["product"]`` is ERA5 or ERA5-Land.

    Raises
    ------
    ERA5Error
        Unknown layout or units, files on different grids, sub-sampled ERA5
        accumulations, no complete day or month.
    uflux_xr.core.plausibility.PlausibilityError
        Converted values outside their plausible range.
    """
    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    names, opened = [], []
    for p in given:
        if is_zarr_store(p):
            name = redact(p).rstrip("/").rsplit("/", 1)[-1]
            raw = _open_store(p, storage_options)
            if chunks:
                raw = raw.chunk(chunks)
        else:
            path = Path(local_copy(p, storage_options))
            if not path.exists():
                raise FileNotFoundError(f"{path}: ERA5 file not found")
            name = path.name
            raw = _open(path, chunks if chunks is not None else {})
        raw = _cut(raw, period, bounds, name)
        names.append(name)
        opened.append(_normalise_layout(raw, name))
    source = ", ".join(names)
    for name, ds in zip(names, opened, strict=True):
        _check_units(ds, name)
    spacings = {name: grid_spacing(ds) for name, ds in zip(names, opened, strict=True)}
    distinct = {round(v, 4) for v in spacings.values() if v is not None}
    if len(distinct) > 1:
        listing = ", ".join(f"{name} {v:g}°" for name, v in spacings.items() if v is not None)
        raise ERA5Error(
            f"files on different grids ({listing}): read each product (ERA5 0.25°, ERA5-Land 0.1°) on its own "
            "and combine them on one grid with uflux_xr.build_cube"
        )
    # Datasets in, a Dataset out (combine_by_coords is typed for DataArrays too)
    ds = (
        cast(xr.Dataset, xr.combine_by_coords(opened, combine_attrs="drop_conflicts")) if len(opened) > 1 else opened[0]
    )
    spacing = grid_spacing(ds)
    for dim in ("lat", "lon"):
        steps = np.diff(ds[dim].values)
        if steps.size and not np.allclose(steps, steps[0], rtol=1e-3):
            raise ERA5Error(f"{source}: the combined {dim} axis is irregular (files cover different cells)")
    time = ds.indexes["time"]
    if time.has_duplicates:
        raise ERA5Error(f"{source}: duplicate time steps")
    if len(time) < 2:
        raise ERA5Error(f"{source}: need at least two time steps")
    step = time_step(time)
    monthly = step >= pd.Timedelta(days=27)
    if not monthly and (pd.Timedelta(days=1) % step != pd.Timedelta(0)):
        raise ERA5Error(f"{source}: the time step {step} does not divide a day")
    is_land = False if monthly else _decide_land(ds, land, step, spacing, source)
    per_step = [v for v in (*ACCUMULATED, *MEAN_RATES) if v in ds]
    if per_step and step > pd.Timedelta(hours=1) and not monthly:
        if not is_land or any(v in ds for v in MEAN_RATES):
            raise ERA5Error(
                f"{source}: {', '.join(per_step)} cover the hour ending at each time stamp, and the file is "
                f"sampled every {step}: it holds only the sampled hours (a 6-hourly file holds a sixth of the "
                "rain). Download every hour, or ERA5-Land accumulations (which run since 00 UTC)"
            )
        log.info("%s: ERA5-Land accumulations sampled every %s, de-accumulated over that step", source, step)
    try:
        cube = _convert(ds, is_land, step, monthly)
    except ERA5Error as err:
        raise ERA5Error(f"{source}: {err}") from None
    static = cube[[n for n in cube.data_vars if "time" not in cube[n].dims]]
    cube = cube[[n for n in cube.data_vars if "time" in cube[n].dims]]
    if monthly:
        start = cube.indexes["time"].to_period("M").to_timestamp()
        cube = cube.assign_coords(time=month_middles(start))
        if freq in ("D",):
            raise ERA5Error(f"{source}: monthly means cannot be made daily")
    elif freq in ("D", "MS", "M"):
        cube = _daily(cube, step, source)
        if freq in ("MS", "M"):
            cube = _monthly(cube, source)
    elif freq is not None:
        raise ValueError(f"freq must be None, 'D' or 'MS', got {freq!r}")
    if period is not None:  # the next day's 00 UTC was read only to close the last day
        start, end = (pd.Timestamp(t).normalize() for t in period)
        cube = cube.sel(time=slice(start, end + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")))
        if cube.sizes["time"] == 0:
            raise ERA5Error(f"{source}: no time step within period={period}")
    cube = xr.merge([cube, static.drop_vars("time", errors="ignore")]) if static.data_vars else cube
    product = "ERA5-Land" if is_land or product_from_grid(spacing) == "ERA5-Land" else "ERA5"
    cube.attrs = {"source": f"{product} from {source}", "product": product, "Conventions": "CF-1.10"}
    out_step = step if freq is None and not monthly else pd.Timedelta(days=1)  # daily or coarser means
    check_plausible(cube, source=source, step=out_step, max_time_steps=366)
    log.info("%s cube %s, variables %s", product, dict(cube.sizes), sorted(map(str, cube.data_vars)))
    return cube
