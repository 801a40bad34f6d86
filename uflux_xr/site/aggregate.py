"""Aggregation of site datasets in time: half-hourly -> daily -> monthly.

Carbon fluxes (by name, not by units) go from µmol CO2 m-2 s-1 to g C m-2 d-1 (× 1.0377), energy
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

from uflux_xr.core.constants import SECONDS_PER_DAY
from uflux_xr.core.domain import month_middles, time_step
from uflux_xr.core.plausibility import check_plausible, registry_name
from uflux_xr.core.qc import flag_kept, fraction_kept
from uflux_xr.core.variables import (
    CARBON_FLUXES,
    UnitsError,
    canonical_units,
    convert_values,
    latent_heat_of_vaporization,
)

#: Variables summed over the period (amounts per time step); everything else is averaged.
SUMMED = {"P"}


def _named_vars(ds: xr.Dataset) -> list[tuple[str, xr.DataArray]]:
    """(name, variable) pairs with the names as str (xarray types them Hashable)."""
    return [(str(name), var) for name, var in ds.data_vars.items()]


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


#: Carbon fluxes: converted from µmol CO2 m-2 s-1 to g C m-2 d-1.  Other photon or
#: molar fluxes in µmol m-2 s-1 (PPFD_IN) stay as they are.
# Gap-filling outputs that have no daily meaning as means (counts, method labels).
_NOT_AVERAGED = ("_fqc", "_fnum", "_fsd", "_fmeth", "_fall", "_fwin")


def _is_carbon(name: str) -> bool:
    return registry_name(name) in CARBON_FLUXES


def to_daily(ds: xr.Dataset, *, min_coverage: float = 1.0, good_qc: float = 1.0) -> xr.Dataset:
    """Daily values of a sub-daily site dataset.

    Gap-filled records (``<VAR>_f`` with ``<VAR>_fqc`` from :func:`uflux_xr.site.gapfill`
    or REddyProc) follow FLUXNET's daily convention: the daily ``<VAR>`` is the
    mean of ``<VAR>_f`` over the whole day, and ``<VAR>_QC`` the fraction of the
    day's records that were measured or filled with good quality (``_fqc`` ≤
    ``good_qc``); train on days whose fraction passes a threshold
    (``training.qc_threshold`` in a config, 0.8 a common choice).

    Parameters
    ----------
    ds : xarray.Dataset
        Site dataset (site, time) at a sub-daily step, time at interval middles.
    min_coverage : float
        Fraction [0–1] of the day's records a measured-only variable needs for
        a daily value; below it the day is NaN.  The default 1.0 keeps only
        complete days, because a mean of the measured records alone is biased
        towards the hours that were measured; gap-filled variables are complete.
    good_qc : float
        Largest quality flag that counts as good for the ``_QC`` fractions
        (FLUXNET: 0 measured, 1 good fill).

    Returns
    -------
    xarray.Dataset
        Daily dataset, time at 12:00 of each day; carbon fluxes (NEE, GPP, RECO
        and their variants) in g C m-2 d-1, ``P`` in mm d-1, other variables in
        their own units (PPFD_IN stays µmol m-2 s-1), ``ET`` [kg m-2 d-1] when
        ``LE`` and ``TA`` are present.  Text variables (``_fmeth``) and
        ``_fnum``, ``_fsd``, ``_fall`` and ``_fwin`` are left out.
    """
    time = ds.indexes["time"]
    step = time_step(time).total_seconds()
    if step >= SECONDS_PER_DAY:
        raise ValueError(f"to_daily needs sub-daily records; the time step is {time_step(time)}")
    per_day = SECONDS_PER_DAY / step
    day = time.floor("D")
    filled = {name[: -len("_f")] for name in map(str, ds.data_vars) if name.endswith("_f") and f"{name}qc" in ds}
    out = {}
    for name, var in _named_vars(ds):
        if name.endswith(("_QC", *_NOT_AVERAGED)) or not np.issubdtype(var.dtype, np.number):
            continue
        if name in filled:  # the measured-only series: the daily value comes from <name>_f
            continue
        target = name[:-2] if name.endswith("_f") and name[:-2] in filled else name
        units = canonical_units(var.attrs.get("units"))
        if units is None:
            raise UnitsError(f"site dataset: variable {name!r} has no or unknown units {var.attrs.get('units')!r}")
        grouped = _group(var, day)
        coverage = grouped.count() / per_day
        if name in SUMMED:
            values, units = grouped.sum(min_count=1), "mm d-1" if units == "mm" else units
        else:
            values = grouped.mean()
            if units == "umol m-2 s-1" and _is_carbon(name):
                values, units = convert_values(values, units, "g m-2 d-1"), "g m-2 d-1"
        out[target] = _as_site_time(values.where(coverage >= min_coverage - 1e-9), var, target, {"units": units})
        flags = f"{name}qc" if target != name else f"{name}_QC"
        if flags in ds:
            good = (var.notnull() & flag_kept(ds[flags], good_qc)).astype(float)
            out[f"{target}_QC"] = _as_site_time(
                _group(good, day).sum() / per_day,
                var,
                f"{target}_QC",
                {"units": "1", "long_name": f"fraction of measured or good-quality records of {target} in the day"},
            )
    le = "LE_f" if "LE" in filled else "LE"
    if le in ds and "TA" in ds:
        et_step = ds[le] * step / latent_heat_of_vaporization(ds["TA"])
        grouped = _group(et_step, day)
        et = grouped.sum(min_count=1).where(grouped.count() / per_day >= min_coverage - 1e-9)
        out["ET"] = _as_site_time(et, ds[le], "ET", {"units": "kg m-2 d-1"})
    daily = xr.Dataset(out)
    daily = daily.assign_coords(time=daily.indexes["time"] + pd.Timedelta(hours=12))
    daily = daily.assign_coords({c: ds.coords[c] for c in ds.coords if "time" not in ds.coords[c].dims})
    return check_plausible(daily, source="daily means", step=pd.Timedelta(days=1))


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
    for name, var in _named_vars(daily):
        grouped = _group(var, month)
        values = grouped.mean()
        if not name.endswith("_QC"):
            values = values.where(grouped.count() / n_days >= min_coverage - 1e-9)
        out[name] = _as_site_time(values, var, name, dict(var.attrs))
    monthly = xr.Dataset(out)
    start = monthly.indexes["time"]
    monthly = monthly.assign_coords(time=month_middles(start))
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
                keep &= fraction_kept(ds[f"{name}_QC"], qc_threshold)
    if nonnegative:
        for name in ("GPP", "RECO"):
            if name in ds:
                keep &= ds[name].fillna(-1) >= 0
    if nt_dt_tolerance is not None:
        for nt, dt in (("GPP", "GPP_DT"), ("RECO", "RECO_DT")):
            if nt in ds and dt in ds:
                keep &= abs(ds[nt] - ds[dt]).fillna(np.inf) <= nt_dt_tolerance
    return keep
