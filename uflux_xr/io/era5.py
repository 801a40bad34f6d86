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
========  ==========  ===================================================

ERA5 hourly accumulations cover the hour ending at the time label.  ERA5-Land
hourly accumulations run from 00 UTC and the 00 UTC value holds the previous
day's total, so they are de-accumulated by differencing within each day first
(``land=True``, detected from the file's attributes when not given).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.features import vpd_from_dewpoint
from uflux_xr.variables import variable_attrs

log = logging.getLogger(__name__)

#: CDS variable -> units the file must state (any of these spellings).
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
}
ACCUMULATED = ("ssrd", "strd", "tp")


class ERA5Error(ValueError):
    """An ERA5 file cannot be converted to the predictor cube."""


def _normalise_layout(ds: xr.Dataset, source: str) -> xr.Dataset:
    if "valid_time" in ds.dims:
        ds = ds.rename({"valid_time": "time"})
    if "time" not in ds.dims:
        raise ERA5Error(f"{source}: no 'time' or 'valid_time' dimension; dims are {tuple(ds.dims)}")
    if "expver" in ds.dims:  # old layout mixing final ERA5 and ERA5T: first valid value wins
        parts = [ds.isel(expver=i, drop=True) for i in range(ds.sizes["expver"])]
        merged = parts[0]
        for part in parts[1:]:
            merged = merged.combine_first(part)
        ds = merged
    ds = ds.drop_vars([c for c in ("expver", "number", "step", "surface") if c in ds.variables and c not in ds.dims])
    renames = {k: v for k, v in (("latitude", "lat"), ("longitude", "lon")) if k in ds.dims}
    ds = ds.rename(renames)
    if "lat" not in ds.dims or "lon" not in ds.dims:
        raise ERA5Error(f"{source}: expected latitude/longitude dimensions, got {tuple(ds.dims)}")
    lon = ((ds["lon"] + 180.0) % 360.0) - 180.0
    ds = ds.assign_coords(lon=lon).sortby("lon").sortby("lat")
    ds["lat"].attrs = {"units": "degrees_north", "standard_name": "latitude"}
    ds["lon"].attrs = {"units": "degrees_east", "standard_name": "longitude"}
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


def _deaccumulate_land(acc: xr.DataArray) -> xr.DataArray:
    """Hourly amounts from ERA5-Land accumulations that restart at 00 UTC.

    The 01 UTC value is the first hour's amount; later hours are differences,
    and 00 UTC (the previous day's total) minus 23 UTC gives the last hour.
    """
    hourly = acc - acc.shift(time=1)
    first_hour = acc["time"].dt.hour == 1
    return xr.where(first_hour, acc, hourly)


def _is_land(ds: xr.Dataset) -> bool:
    text = " ".join(str(v) for v in ds.attrs.values()).lower()
    return "era5-land" in text or "reanalysis-era5-land" in text


def _convert(ds: xr.Dataset, land: bool, step_s: float) -> xr.Dataset:
    out = xr.Dataset(coords={c: ds[c] for c in ("time", "lat", "lon")})
    if "t2m" in ds:
        out["TA"] = ds["t2m"] - 273.15
    if "t2m" in ds and "d2m" in ds:
        out["VPD"] = np.maximum(vpd_from_dewpoint(ds["t2m"] - 273.15, ds["d2m"] - 273.15), 0.0)
    if "stl1" in ds:
        out["TS"] = ds["stl1"] - 273.15
    for cds, name, factor in (("ssrd", "SW_IN", 1.0 / step_s), ("strd", "LW_IN", 1.0 / step_s), ("tp", "P", 1000.0)):
        if cds in ds:
            amount = _deaccumulate_land(ds[cds]) if land else ds[cds]
            out[name] = np.maximum(amount * factor, 0.0)  # clip the tiny negative values of GRIB packing
    if "sp" in ds:
        out["PA"] = ds["sp"] / 1000.0
    if "u10" in ds and "v10" in ds:
        out["WS"] = np.hypot(ds["u10"], ds["v10"])
    if "swvl1" in ds:
        out["SWC"] = ds["swvl1"] * 100.0
    if not out.data_vars:
        raise ERA5Error(f"no known ERA5 variables; expected some of {sorted(EXPECTED_UNITS)}")
    for name in out.data_vars:
        attrs = {k: v for k, v in variable_attrs(name).items() if k in ("long_name", "units", "standard_name")}
        out[name].attrs = attrs
    if "P" in out:
        out["P"].attrs["units"] = "mm"  # per time step
    return out


def _daily(hourly: xr.Dataset) -> xr.Dataset:
    """Daily means (sums for P), labelled at 12:00.  Accumulated fluxes cover the hour
    ending at their label, so they are assigned to the day of the hour's middle."""
    parts = []
    for name, var in hourly.data_vars.items():
        accumulated = name in ("SW_IN", "LW_IN", "P")
        shifted = var.assign_coords(time=var["time"] - pd.Timedelta(minutes=30)) if accumulated else var
        resampled = shifted.resample(time="1D")
        daily = resampled.sum(min_count=1) if name == "P" else resampled.mean()
        daily.attrs = dict(var.attrs)
        if name == "P":
            daily.attrs["units"] = "mm d-1"
        parts.append(daily.rename(name))
    out = xr.merge(parts, join="inner")
    return out.assign_coords(time=out.indexes["time"] + pd.Timedelta(hours=12))


def _monthly(daily: xr.Dataset) -> xr.Dataset:
    out = daily.resample(time="1MS").mean()
    for name in out.data_vars:
        out[name].attrs = dict(daily[name].attrs)
    start = out.indexes["time"]
    return out.assign_coords(time=start + (start + pd.offsets.MonthBegin(1) - start) / 2)


def read_era5(paths, freq: str | None = None, *, land: bool | None = None, chunks: dict | None = None) -> xr.Dataset:
    """Read ERA5 / ERA5-Land NetCDF files into a predictor cube (time, lat, lon).

    Parameters
    ----------
    paths : path or list of paths
        CDS NetCDF files (either layout); several files are combined by coordinates.
    freq : {None, "D", "MS"}
        Keep the file's step (None), or aggregate to daily (labels at 12:00) or
        monthly means (labels mid-month); precipitation is summed per day [mm d-1].
    land : bool, optional
        ERA5-Land accumulations (restart at 00 UTC); detected from the file's
        attributes when None.
    chunks : dict, optional
        dask chunks for opening (default: one chunk per file variable).

    Returns
    -------
    xarray.Dataset
        TA, TS [°C], VPD [hPa], SW_IN, LW_IN [W m-2], P [mm per step or mm d-1],
        PA [kPa], WS [m s-1], SWC [%], as far as the inputs allow; lazy.
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: ERA5 file not found")
    source = ", ".join(p.name for p in paths)
    opened = [_normalise_layout(xr.open_dataset(p, chunks=chunks if chunks is not None else {}), p.name) for p in paths]
    for p, ds in zip(paths, opened, strict=True):
        _check_units(ds, p.name)
    ds = xr.combine_by_coords(opened, combine_attrs="drop_conflicts") if len(opened) > 1 else opened[0]
    time = ds.indexes["time"]
    if time.has_duplicates:
        raise ERA5Error(f"{source}: duplicate time steps")
    if len(time) < 2:
        raise ERA5Error(f"{source}: need at least two time steps")
    step_s = float(np.median(np.diff(time.values)) / np.timedelta64(1, "s"))
    land = _is_land(ds) if land is None else land
    try:
        cube = _convert(ds, land, step_s)
    except ERA5Error as err:
        raise ERA5Error(f"{source}: {err}") from None
    if freq in ("D", "MS", "M"):
        cube = _daily(cube)
        if freq in ("MS", "M"):
            cube = _monthly(cube)
    elif freq is not None:
        raise ValueError(f"freq must be None, 'D' or 'MS', got {freq!r}")
    cube.attrs = {"source": f"ERA5{'-Land' if land else ''} from {source}", "Conventions": "CF-1.10"}
    log.info("ERA5 cube %s, variables %s", dict(cube.sizes), sorted(cube.data_vars))
    return cube
