"""xarray adapter of the gap-filling methods.

Each method is a per-site function ``(site, values, good) -> Fill`` on numpy
arrays; :func:`_fill_sites` runs it over the sites and attaches the outputs
with REddyProc's suffixes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.aggregate import steps_per_day
from uflux_xr.gapfill.mds import long_gap_mask, mds_core
from uflux_xr.gapfill.mdv import mdv_core
from uflux_xr.gapfill.ml import CANDIDATE_DRIVERS, feature_table, ml_fill
from uflux_xr.variables import canonical_units

log = logging.getLogger(__name__)

METHODS = ("mds", "mdv", "ml")
DRIVERS = {"SW_IN": "W m-2", "TA": "degC", "VPD": "hPa"}
#: ``<VAR>_fmeth`` labels; MDS steps 1-3 map to codes 2-4.
FILL_LABELS = np.array(
    ["unfilled", "measured", "mds_all_drivers", "mds_sw_in", "mds_same_hour", "mdv", "ml"], dtype=object
)
UNFILLED, MEASURED, MDV, ML = 0, 1, 5, 6

# What _fqc, _fsd and _fnum mean for each method (long_name texts).
_DESCRIPTIONS = {
    "mds": ("1-3 MDS quality (REddyProc)", "standard deviation of the MDS matches", "number of MDS matches"),
    "mdv": (
        "MDV 1 within the window, 2 up to twice it, 3 wider",
        "standard deviation of the values averaged",
        "number of values averaged",
    ),
    "ml": (
        "1 ML fill (NaN where drivers are missing)",
        "spread (SD) of the ensemble members",
        "number of ensemble members",
    ),
}


@dataclass
class Fill:
    """One site's result: filled values, quality (NaN unfilled), SD, count and label codes."""

    filled: np.ndarray
    quality: np.ndarray
    sd: np.ndarray
    count: np.ndarray
    label: np.ndarray


def _as_sites(site_ds: xr.Dataset) -> xr.Dataset:
    return site_ds.transpose("site", "time", ...) if "site" in site_ds.dims else site_ds.expand_dims(site=["site"])


def _fill_sites(site_ds: xr.Dataset, var: str, method: str, good_qc, fill_one) -> xr.Dataset:
    """Run ``fill_one(site_index, values, good)`` for every site and attach the outputs."""
    ds = _as_sites(site_ds)
    fills = []
    for i, site in enumerate(map(str, ds["site"].values)):
        values = ds[var].isel(site=i).values.astype(np.float64)
        good = np.isfinite(values)
        if good_qc is not None and f"{var}_QC" in ds:
            good &= ds[f"{var}_QC"].isel(site=i).values <= good_qc
        if not good.any():
            raise ValueError(f"{var} is all missing at site {site!r}: nothing to fill from")
        fills.append(fill_one(i, values, good))
    units = ds[var].attrs.get("units", "1")
    quality_text, sd_text, count_text = _DESCRIPTIONS[method]
    out = ds.copy()
    for suffix, field, attrs in (
        ("f", "filled", {"units": units, "long_name": f"{var} gap-filled ({method})"}),
        (
            "fqc",
            "quality",
            {"units": "1", "long_name": f"{var} fill quality: 0 measured, {quality_text}, NaN unfilled"},
        ),
        ("fsd", "sd", {"units": units, "long_name": f"{sd_text} filling {var}"}),
        ("fnum", "count", {"units": "1", "long_name": f"{count_text} filling {var}"}),
    ):
        out[f"{var}_{suffix}"] = (("site", "time"), np.stack([getattr(f, field) for f in fills]), attrs)
    out[f"{var}_fmeth"] = (
        ("site", "time"),
        np.stack([FILL_LABELS[f.label] for f in fills]),
        {"long_name": f"how each {var} value was obtained"},
    )
    log.info(
        "%s filled with %s: %.1f %% of steps have a value",
        var,
        method,
        100 * float(np.isfinite(out[f"{var}_f"]).mean()),
    )
    return out if "site" in site_ds.dims else out.isel(site=0, drop=True)


def gapfill(
    site_ds: xr.Dataset,
    var: str,
    method: str = "mds",
    *,
    fill_drivers: bool = True,
    good_qc: float | None = None,
    long_gap: float = 60.0,
    sw_dev: float = 50.0,
    ta_dev: float = 2.5,
    vpd_dev: float = 5.0,
    mdv_window: int = 7,
    ml_options: dict | None = None,
) -> xr.Dataset:
    """Fill the gaps of ``var`` in a site dataset.

    Parameters
    ----------
    site_ds : xarray.Dataset
        Site dataset (site, time) at a regular step with ``var`` (and, for MDS,
        the drivers SW_IN [W m-2], TA [°C] and VPD [hPa]).
    var : str
        Variable to fill (e.g. ``NEE``, ``LE``, ``H``).
    method : {"mds", "mdv", "ml"}
        Gap-filling method: marginal distribution sampling, mean diurnal
        variation (same time of day within ±``mdv_window`` days; no drivers), or
        a tree ensemble on the site's drivers and time harmonics (any gap length).
    fill_drivers : bool
        MDS: fill gaps of SW_IN, TA and VPD with MDS first and use the filled
        drivers, as REddyProc does; False treats steps with a missing driver as
        having no driver information, as hesseflux does.
    good_qc : float, optional
        With a ``<var>_QC`` variable: values whose flag exceeds this count as gaps.
    long_gap : float
        MDS: gaps longer than this [days] stay unfilled (REddyProc, hesseflux: 60).
    sw_dev, ta_dev, vpd_dev : float
        MDS similarity limits [W m-2, °C, hPa].
    mdv_window : int
        MDV window half-width [days].
    ml_options : dict, optional
        For ``ml``: ``model`` (registered kind, default "lightgbm"), ``members``
        (seeds, default 3), ``train_years`` ("all", "nearest" or a list of
        years), ``n_nearest`` (default 2), ``drivers`` (default: those present
        among :data:`uflux_xr.gapfill.ml.CANDIDATE_DRIVERS`), ``params``.

    Returns
    -------
    xarray.Dataset
        ``site_ds`` with ``<var>_f``, ``<var>_fqc``, ``<var>_fmeth``, ``<var>_fsd``
        and ``<var>_fnum`` added (and the drivers' ``_f`` outputs when MDS filled them).
    """
    if method not in METHODS:
        raise ValueError(f"unknown gap-filling method {method!r}; implemented: {list(METHODS)}")
    if var not in site_ds:
        raise KeyError(f"variable {var!r} not in the site dataset; it has {sorted(site_ds.data_vars)}")
    if method == "mdv":
        return _gapfill_mdv(site_ds, var, mdv_window, good_qc)
    if method == "ml":
        return _gapfill_ml(site_ds, var, good_qc, **(ml_options or {}))
    return _gapfill_mds(site_ds, var, fill_drivers, good_qc, long_gap, sw_dev, ta_dev, vpd_dev)


def _gapfill_mds(site_ds, var, fill_drivers, good_qc, long_gap, sw_dev, ta_dev, vpd_dev) -> xr.Dataset:
    for name, units in DRIVERS.items():
        if name not in site_ds:
            raise KeyError(f"MDS needs the driver {name!r} [{units}] in the site dataset")
        have = canonical_units(site_ds[name].attrs.get("units"))
        if have is not None and have != units:
            raise ValueError(f"driver {name!r} is in {site_ds[name].attrs.get('units')!r}; MDS expects {units!r}")
    ds = _as_sites(site_ds)
    for i, site in enumerate(map(str, ds["site"].values)):
        if not bool(ds[var].isel(site=i).notnull().any()):
            raise ValueError(f"{var} is all missing at site {site!r}: nothing to fill from")
        if all(not bool(ds[d].isel(site=i).notnull().any()) for d in DRIVERS):
            raise ValueError(f"the drivers SW_IN, TA and VPD are all missing at site {site!r}; MDS needs them")
    if fill_drivers:
        for name in DRIVERS:
            if bool(ds[name].isnull().any()):
                ds = _gapfill_mds(ds, name, False, None, long_gap, sw_dev, ta_dev, vpd_dev)
    time = ds.indexes["time"]
    n_per_day = steps_per_day(time)
    hour = (time.hour + time.minute / 60.0).to_numpy(dtype=np.float64)

    def fill_one(i, values, good):
        sw, ta, vpd = (
            ds[f"{d}_f" if fill_drivers and f"{d}_f" in ds else d].isel(site=i).values.astype(np.float64)
            for d in DRIVERS
        )
        sw_ok = np.isfinite(sw)
        met_ok = sw_ok & np.isfinite(ta) & np.isfinite(vpd)
        filled, quality, sd, count, step = mds_core(
            np.where(good, values, np.nan),
            good,
            np.nan_to_num(sw),
            np.nan_to_num(ta),
            np.nan_to_num(vpd),
            sw_ok,
            met_ok,
            hour,
            n_per_day,
            long_gap_mask(good, n_per_day, long_gap),
            float(sw_dev),
            float(ta_dev),
            float(vpd_dev),
        )
        label = np.where(good, MEASURED, np.where(quality < 0, UNFILLED, step.astype(int) + 1))
        return Fill(filled, np.where(quality < 0, np.nan, quality.astype(float)), sd, count.astype(float), label)

    result = _fill_sites(ds, var, "mds", good_qc, fill_one)
    return result if "site" in site_ds.dims else result.isel(site=0, drop=True)


def _gapfill_mdv(site_ds, var, window_days, good_qc) -> xr.Dataset:
    n_per_day = steps_per_day(site_ds.indexes["time"])

    def fill_one(i, values, good):
        filled, quality, sd, count = mdv_core(
            np.where(good, values, np.nan), good, n_per_day, int(window_days), int(4 * window_days), 2
        )
        label = np.where(good, MEASURED, np.where(quality < 0, UNFILLED, MDV))
        return Fill(filled, np.where(quality < 0, np.nan, quality.astype(float)), sd, count.astype(float), label)

    return _fill_sites(site_ds, var, "mdv", good_qc, fill_one)


def _gapfill_ml(site_ds, var, good_qc, drivers=None, **options) -> xr.Dataset:
    ds = _as_sites(site_ds)
    names = [d for d in (drivers or CANDIDATE_DRIVERS) if d in ds and d != var]
    if drivers is not None and len(names) != len(drivers):
        raise KeyError(f"drivers {sorted(set(drivers) - set(names))} not in the site dataset")
    time = ds.indexes["time"]
    members = float(options.get("members", 3))

    def fill_one(i, values, good):
        one = ds.isel(site=i)
        columns = {d: one[f"{d}_f"].values if f"{d}_f" in one else one[d].values for d in names}
        filled, spread = ml_fill(values, good, feature_table(pd.DataFrame(columns), time, names), **options)
        done = ~good & np.isfinite(filled)
        quality = np.where(good, 0.0, np.where(done, 1.0, np.nan))
        label = np.where(good, MEASURED, np.where(done, ML, UNFILLED))
        return Fill(filled, quality, spread, np.where(done, members, 0.0), label)

    result = _fill_sites(ds, var, "ml", good_qc, fill_one)
    return result if "site" in site_ds.dims else result.isel(site=0, drop=True)
