"""Aggregation of site datasets in time: half-hourly -> daily -> monthly.

Carbon fluxes go from µmol CO2 m-2 s-1 to g C m-2 d-1 (× 1.0377), energy
fluxes and states are averaged, precipitation is summed per day, and ET is
added from LE with the temperature-dependent latent heat.  Each ``<VAR>_QC``
becomes the fraction (0–1) of records in the period that are present and of
good quality (flag ≤ ``good_qc``: FLUXNET's 0 measured and 1 good gap-fill),
as in FLUXNET's daily files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.variables import SECONDS_PER_DAY, canonical_units, convert_values, latent_heat_of_vaporization

#: Variables summed over the period (amounts per time step); everything else is averaged.
SUMMED = {"P"}


def time_step(time: pd.DatetimeIndex) -> pd.Timedelta:
    """The regular time step of a series (median difference of its timestamps).

    Raises
    ------
    ValueError
        With fewer than two time steps.
    """
    if len(time) < 2:
        raise ValueError("need at least two time steps to infer the time step")
    return pd.Timedelta(np.median(np.diff(time.values)))


def steps_per_day(time: pd.DatetimeIndex) -> int:
    """Number of time steps in a day; the step must divide a day."""
    per_day = pd.Timedelta(days=1) / time_step(time)
    if abs(per_day - round(per_day)) > 1e-6:
        raise ValueError(f"the time step ({time_step(time)}) does not divide a day")
    return int(round(per_day))


def _group(ds_var: xr.DataArray, keys: pd.DatetimeIndex) -> pd.core.groupby.DataFrameGroupBy:
    """pandas groupby of a (site, time) variable over time keys; columns are sites."""
    values = ds_var.transpose(..., "time").values.reshape(-1, ds_var.sizes["time"])
    return pd.DataFrame(values.T, index=keys).groupby(level=0, sort=True)


def _as_site_time(frame: pd.DataFrame, template: xr.DataArray, name: str, attrs: dict) -> xr.DataArray:
    """(period, site) frame back to a (site, time) DataArray named ``name``."""
    dims = [d for d in template.dims if d != "time"]
    coords = {d: template[d] for d in dims}
    data = frame.to_numpy().T.reshape([template.sizes[d] for d in dims] + [len(frame)])
    return xr.DataArray(data, dims=[*dims, "time"], coords={**coords, "time": frame.index}, name=name, attrs=attrs)


def to_daily(ds: xr.Dataset, *, min_coverage: float = 1.0, good_qc: float = 1.0) -> xr.Dataset:
    """Daily values of a sub-daily site dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        Site dataset (site, time) at a sub-daily step, time at interval middles.
    min_coverage : float
        Fraction [0–1] of the day's records a variable needs for a daily value;
        below it the day is NaN.  The default 1.0 keeps only complete days,
        because a mean of the measured records alone is biased towards the
        hours that were measured; use gap-filled inputs or lower it knowingly.
    good_qc : float
        Largest quality flag that counts as good for the ``_QC`` fractions.

    Returns
    -------
    xarray.Dataset
        Daily dataset, time at 12:00 of each day; carbon fluxes in g C m-2 d-1,
        ``P`` in mm d-1, ``ET`` [kg m-2 d-1] when ``LE`` and ``TA`` are present.
    """
    time = ds.indexes["time"]
    step = time_step(time).total_seconds()
    per_day = SECONDS_PER_DAY / step
    day = time.floor("D")
    out = {}
    for name, var in ds.data_vars.items():
        if name.endswith("_QC"):
            continue
        units = canonical_units(var.attrs.get("units"))
        grouped = _group(var, day)
        coverage = grouped.count() / per_day
        if name in SUMMED:
            values, units = grouped.sum(min_count=1), "mm d-1" if units == "mm" else units
        else:
            values = grouped.mean()
            if units == "umol m-2 s-1":
                values, units = convert_values(values, units, "g m-2 d-1"), "g m-2 d-1"
        out[name] = _as_site_time(values.where(coverage >= min_coverage - 1e-9), var, name, {"units": units})
        if f"{name}_QC" in ds:
            good = (var.notnull() & (ds[f"{name}_QC"] <= good_qc)).astype(float)
            out[f"{name}_QC"] = _as_site_time(
                _group(good, day).sum() / per_day,
                var,
                f"{name}_QC",
                {"units": "1", "long_name": f"fraction of good-quality records of {name} in the day"},
            )
    if "LE" in ds and "TA" in ds:
        et_step = ds["LE"] * step / latent_heat_of_vaporization(ds["TA"])
        grouped = _group(et_step, day)
        et = grouped.sum(min_count=1).where(grouped.count() / per_day >= min_coverage - 1e-9)
        out["ET"] = _as_site_time(et, ds["LE"], "ET", {"units": "kg m-2 d-1"})
    daily = xr.Dataset(out)
    daily = daily.assign_coords(time=daily.indexes["time"] + pd.Timedelta(hours=12))
    return daily.assign_coords({c: ds.coords[c] for c in ds.coords if "time" not in ds.coords[c].dims})


def to_monthly(daily: xr.Dataset, *, min_coverage: float = 1.0) -> xr.Dataset:
    """Monthly means of a daily site dataset (rates stay per day), QC fractions averaged.

    Parameters
    ----------
    daily : xarray.Dataset
        Output of :func:`to_daily`.
    min_coverage : float
        Fraction [0–1] of the month's days a variable needs for a monthly value.
    """
    month = daily.indexes["time"].to_period("M").to_timestamp()
    n_days = pd.Series(month.days_in_month, index=month).groupby(level=0).first().to_numpy()[:, None]
    out = {}
    for name, var in daily.data_vars.items():
        grouped = _group(var, month)
        values = grouped.mean()
        if not name.endswith("_QC"):
            values = values.where(grouped.count() / n_days >= min_coverage - 1e-9)
        out[name] = _as_site_time(values, var, name, dict(var.attrs))
    monthly = xr.Dataset(out)
    start = monthly.indexes["time"]
    monthly = monthly.assign_coords(time=start + (start + pd.offsets.MonthBegin(1) - start) / 2)
    return monthly.assign_coords({c: daily.coords[c] for c in daily.coords if "time" not in daily.coords[c].dims})


def uflux_training_mask(
    ds: xr.Dataset,
    *,
    qc_threshold: float | None = None,
    nt_dt_tolerance: float | None = 3.0,
    nonnegative: bool = True,
) -> xr.DataArray:
    """UFLUX's filters for training rows, as a boolean mask over (site, time).

    Parameters
    ----------
    ds : xarray.Dataset
        Daily or monthly site dataset with GPP and RECO in g C m-2 d-1 (and
        ``GPP_DT``/``RECO_DT`` for the agreement test, ``<VAR>_QC`` fractions).
    qc_threshold : float, optional
        Keep rows where every present flux ``_QC`` fraction is at least this.
    nt_dt_tolerance : float or None
        Keep rows where night-time and daytime GPP, and RECO, differ by at most
        this [g C m-2 d-1] (UFLUX: 3); None skips the test.
    nonnegative : bool
        Keep rows with GPP ≥ 0 and RECO ≥ 0.
    """
    keep = xr.ones_like(ds["GPP"] if "GPP" in ds else next(iter(ds.data_vars.values())), dtype=bool)
    for name in ("GPP", "RECO", "GPP_DT", "RECO_DT"):
        if name in ds and canonical_units(ds[name].attrs.get("units")) != "g m-2 d-1":
            raise ValueError(
                f"{name} must be in g m-2 d-1 for the UFLUX filters (aggregate with to_daily first), "
                f"got {ds[name].attrs.get('units')!r}"
            )
    if qc_threshold is not None:
        for name in ("NEE", "GPP", "RECO", "LE", "H"):
            if f"{name}_QC" in ds:
                keep &= ds[f"{name}_QC"].fillna(0) >= qc_threshold
    if nonnegative:
        for name in ("GPP", "RECO"):
            if name in ds:
                keep &= ds[name].fillna(-1) >= 0
    if nt_dt_tolerance is not None:
        for nt, dt in (("GPP", "GPP_DT"), ("RECO", "RECO_DT")):
            if nt in ds and dt in ds:
                keep &= np.abs(ds[nt] - ds[dt]).fillna(np.inf) <= nt_dt_tolerance
    return keep
