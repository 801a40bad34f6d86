"""xarray adapter of the gap-filling methods."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.gapfill.mds import long_gap_mask, mds_core
from uflux_xr.gapfill.mdv import mdv_core
from uflux_xr.gapfill.ml import CANDIDATE_DRIVERS, feature_table, ml_fill
from uflux_xr.variables import canonical_units

log = logging.getLogger(__name__)

METHODS = ("mds", "mdv", "ml")
DRIVERS = {"SW_IN": "W m-2", "TA": "degC", "VPD": "hPa"}
_STEP_LABELS = np.array(
    ["unfilled", "measured", "mds_all_drivers", "mds_sw_in", "mds_same_hour", "mdv", "ml"], dtype=object
)
MDV_LABEL = 5
ML_LABEL = 6


def _steps_per_day(time) -> int:
    step = np.median(np.diff(time.values)) / np.timedelta64(1, "s")
    per_day = 86400.0 / step
    if abs(per_day - round(per_day)) > 1e-6:
        raise ValueError(f"the time step ({step} s) does not divide a day")
    return int(round(per_day))


def _mds_series(values, good, drivers, hour, n_per_day, long_gap, sw_dev, ta_dev, vpd_dev):
    sw, ta, vpd = drivers["SW_IN"], drivers["TA"], drivers["VPD"]
    sw_ok = np.isfinite(sw)
    met_ok = sw_ok & np.isfinite(ta) & np.isfinite(vpd)
    skip = long_gap_mask(good, n_per_day, long_gap)
    return mds_core(
        np.where(good, values, np.nan),
        good,
        np.nan_to_num(sw),
        np.nan_to_num(ta),
        np.nan_to_num(vpd),
        sw_ok,
        met_ok,
        hour,
        n_per_day,
        skip,
        float(sw_dev),
        float(ta_dev),
        float(vpd_dev),
    )


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
        Site dataset (site, time) at a regular sub-daily step with ``var`` and the
        drivers SW_IN [W m-2], TA [°C] and VPD [hPa].
    var : str
        Variable to fill (e.g. ``NEE``, ``LE``, ``H``).
    method : {"mds", "mdv", "ml"}
        Gap-filling method: marginal distribution sampling, mean diurnal
        variation (same time of day within ±``mdv_window`` days; no drivers), or
        a tree ensemble on the site's drivers and time harmonics (any gap length).
    fill_drivers : bool
        Fill gaps of SW_IN, TA and VPD with MDS first and use the filled drivers,
        as REddyProc does; False treats steps with a missing driver as having
        no driver information, as hesseflux does.
    good_qc : float, optional
        With a ``<var>_QC`` variable: values whose flag exceeds this count as gaps.
    long_gap : float
        Gaps longer than this [days] stay unfilled (REddyProc, hesseflux: 60).
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
        and ``<var>_fnum`` added (and ``<driver>_f``... when drivers were filled).
    """
    if method not in METHODS:
        raise ValueError(f"unknown gap-filling method {method!r}; implemented: {list(METHODS)}")
    if var not in site_ds:
        raise KeyError(f"variable {var!r} not in the site dataset; it has {sorted(site_ds.data_vars)}")
    if method == "mdv":
        return _gapfill_mdv(site_ds, var, window_days=mdv_window, good_qc=good_qc)
    if method == "ml":
        return _gapfill_ml(site_ds, var, good_qc=good_qc, **(ml_options or {}))
    for name, units in DRIVERS.items():
        if name not in site_ds:
            raise KeyError(f"MDS needs the driver {name!r} [{units}] in the site dataset")
        have = canonical_units(site_ds[name].attrs.get("units"))
        if have is not None and have != units:
            raise ValueError(f"driver {name!r} is in {site_ds[name].attrs.get('units')!r}; MDS expects {units!r}")
    ds = site_ds.transpose("site", "time", ...) if "site" in site_ds.dims else site_ds.expand_dims(site=["site"])
    time = ds.indexes["time"]
    n_per_day = _steps_per_day(time)
    hour = (time.hour + time.minute / 60.0).to_numpy(dtype=np.float64)
    for i, site in enumerate(map(str, ds["site"].values)):
        if not bool(ds[var].isel(site=i).notnull().any()):
            raise ValueError(f"{var} is all missing at site {site!r}: nothing to fill from")
        if all(not bool(ds[d].isel(site=i).notnull().any()) for d in DRIVERS):
            raise ValueError(f"the drivers SW_IN, TA and VPD are all missing at site {site!r}; MDS needs them")
    if fill_drivers:
        for name in DRIVERS:
            if bool(ds[name].isnull().any()):
                ds = gapfill(
                    ds, name, fill_drivers=False, long_gap=long_gap, sw_dev=sw_dev, ta_dev=ta_dev, vpd_dev=vpd_dev
                )
    outputs = {k: [] for k in ("f", "fqc", "fsd", "fnum", "fmeth")}
    for i in range(ds.sizes["site"]):
        values = ds[var].isel(site=i).values.astype(np.float64)
        good = np.isfinite(values)
        if good_qc is not None and f"{var}_QC" in ds:
            good &= ds[f"{var}_QC"].isel(site=i).values <= good_qc
        drivers = {}
        for name in DRIVERS:
            filled_name = f"{name}_f" if fill_drivers and f"{name}_f" in ds else name
            drivers[name] = ds[filled_name].isel(site=i).values.astype(np.float64)
        filled, quality, sd, count, step = _mds_series(
            values, good, drivers, hour, n_per_day, long_gap, sw_dev, ta_dev, vpd_dev
        )
        outputs["f"].append(filled)
        outputs["fqc"].append(np.where(quality < 0, np.nan, quality.astype(float)))
        outputs["fsd"].append(sd)
        outputs["fnum"].append(count.astype(float))
        label = np.where(good, 1, np.where(quality < 0, 0, step.astype(int) + 1))
        outputs["fmeth"].append(_STEP_LABELS[label])
    units = ds[var].attrs.get("units", "1")
    attrs = {
        "f": {"units": units, "long_name": f"{var} gap-filled ({method})"},
        "fqc": {
            "units": "1",
            "long_name": f"{var} fill quality: 0 measured, 1-3 MDS quality (REddyProc), NaN unfilled",
        },
        "fsd": {"units": units, "long_name": f"standard deviation of the MDS matches filling {var}"},
        "fnum": {"units": "1", "long_name": f"number of MDS matches filling {var}"},
        "fmeth": {"long_name": f"how each {var} value was obtained"},
    }
    return _attach(site_ds, ds, var, method, outputs, attrs)


def _gapfill_mdv(site_ds: xr.Dataset, var: str, *, window_days: int, good_qc: float | None) -> xr.Dataset:
    ds = site_ds.transpose("site", "time", ...) if "site" in site_ds.dims else site_ds.expand_dims(site=["site"])
    n_per_day = _steps_per_day(ds.indexes["time"])
    rows = {k: [] for k in ("f", "fqc", "fsd", "fnum", "fmeth")}
    for i, site in enumerate(map(str, ds["site"].values)):
        values = ds[var].isel(site=i).values.astype(np.float64)
        good = np.isfinite(values)
        if good_qc is not None and f"{var}_QC" in ds:
            good &= ds[f"{var}_QC"].isel(site=i).values <= good_qc
        if not good.any():
            raise ValueError(f"{var} is all missing at site {site!r}: nothing to fill from")
        filled, quality, sd, count = mdv_core(
            np.where(good, values, np.nan), good, n_per_day, int(window_days), int(4 * window_days), 2
        )
        rows["f"].append(filled)
        rows["fqc"].append(np.where(quality < 0, np.nan, quality.astype(float)))
        rows["fsd"].append(sd)
        rows["fnum"].append(count.astype(float))
        rows["fmeth"].append(_STEP_LABELS[np.where(good, 1, np.where(quality < 0, 0, MDV_LABEL))])
    units = ds[var].attrs.get("units", "1")
    attrs = {
        "f": {"units": units, "long_name": f"{var} gap-filled (mdv)"},
        "fqc": {
            "units": "1",
            "long_name": f"{var} fill quality: 0 measured, MDV 1 (within ±{window_days} d), "
            "2 (up to twice that), 3 (wider), NaN unfilled",
        },
        "fsd": {"units": units, "long_name": f"standard deviation of the values averaged for {var}"},
        "fnum": {"units": "1", "long_name": f"number of values averaged for {var}"},
        "fmeth": {"long_name": f"how each {var} value was obtained"},
    }
    return _attach(site_ds, ds, var, "mdv", rows, attrs)


def _attach(site_ds: xr.Dataset, ds: xr.Dataset, var: str, method: str, rows: dict, attrs: dict) -> xr.Dataset:
    """``ds`` with the per-site output rows added as ``<var>_<suffix>``, in the input's shape."""
    out = ds.copy()
    for suffix, values in rows.items():
        out[f"{var}_{suffix}"] = (("site", "time"), np.stack(values), attrs[suffix])
    filled_share = float(np.isfinite(out[f"{var}_f"]).mean())
    log.info("%s filled with %s: %.1f %% of steps have a value", var, method, 100 * filled_share)
    return out if "site" in site_ds.dims else out.isel(site=0, drop=True)


def _gapfill_ml(site_ds: xr.Dataset, var: str, *, good_qc: float | None, drivers=None, **options) -> xr.Dataset:
    ds = site_ds.transpose("site", "time", ...) if "site" in site_ds.dims else site_ds.expand_dims(site=["site"])
    time = ds.indexes["time"]
    names = [d for d in (drivers or CANDIDATE_DRIVERS) if d in ds and d != var]
    if drivers is not None and len(names) != len(drivers):
        raise KeyError(f"drivers {sorted(set(drivers) - set(names))} not in the site dataset")
    rows = {k: [] for k in ("f", "fqc", "fsd", "fnum", "fmeth")}
    for i, site in enumerate(map(str, ds["site"].values)):
        one = ds.isel(site=i)
        values = one[var].values.astype(np.float64)
        good = np.isfinite(values)
        if good_qc is not None and f"{var}_QC" in ds:
            good &= one[f"{var}_QC"].values <= good_qc
        if not good.any():
            raise ValueError(f"{var} is all missing at site {site!r}: nothing to train on")
        columns = {d: one[f"{d}_f"].values if f"{d}_f" in one else one[d].values for d in names}
        features = feature_table(pd.DataFrame(columns), time, names)
        filled, spread = ml_fill(values, good, features, **options)
        done = ~good & np.isfinite(filled)
        rows["f"].append(filled)
        rows["fqc"].append(np.where(good, 0.0, np.where(done, 1.0, np.nan)))
        rows["fsd"].append(spread)
        rows["fnum"].append(np.where(done, float(options.get("members", 3)), 0.0))
        rows["fmeth"].append(_STEP_LABELS[np.where(good, 1, np.where(done, ML_LABEL, 0))])
    units = ds[var].attrs.get("units", "1")
    attrs = {
        "f": {"units": units, "long_name": f"{var} gap-filled (ml)"},
        "fqc": {
            "units": "1",
            "long_name": f"{var} fill quality: 0 measured, 1 ML fill, NaN unfilled (missing drivers)",
        },
        "fsd": {"units": units, "long_name": f"spread (SD) of the ensemble members filling {var}"},
        "fnum": {"units": "1", "long_name": f"number of ensemble members filling {var}"},
        "fmeth": {"long_name": f"how each {var} value was obtained"},
    }
    return _attach(site_ds, ds, var, "ml", rows, attrs)
