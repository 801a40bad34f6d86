"""xarray adapter of the gap-filling methods.

Each method is a per-site function ``(site, values, good) -> Fill`` on numpy
arrays; :func:`_fill_sites` runs it over the sites and attaches the outputs
with REddyProc's suffixes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.constants import SECONDS_PER_DAY
from uflux_xr.core.qc import usable_mask
from uflux_xr.core.variables import MissingVariableError, canonical_units, latent_heat_of_vaporization
from uflux_xr.site.aggregate import steps_per_day, time_step
from uflux_xr.site.dataset import like_input, with_site_dim
from uflux_xr.site.gapfill import fao_pm
from uflux_xr.site.gapfill.kalman import kalman_fill
from uflux_xr.site.gapfill.mds_hesseflux import long_gap_mask, mds_core
from uflux_xr.site.gapfill.mds_reddyproc import lookup_drivers, mds_reddyproc_core
from uflux_xr.site.gapfill.mdv import mdv_core
from uflux_xr.site.gapfill.ml import CANDIDATE_DRIVERS, feature_table, ml_fill, svr_fill
from uflux_xr.site.gapfill.options import METHODS, LearnedOptions, MDSOptions, check_driver_units, method_options

log = logging.getLogger(__name__)

DRIVERS = METHODS["mds"].drivers  # SW_IN, TA, VPD and their units
#: ``<VAR>_fmeth`` labels; MDS steps 1-3 map to codes 2-4.
FILL_LABELS = np.array(
    ["unfilled", "measured", "mds_all_drivers", "mds_sw_in", "mds_same_hour", "mdv", "ml", "fao_pm", "kalman", "svr"],
    dtype=object,
)
UNFILLED, MEASURED, MDV, ML, FAO_PM, KALMAN, SVR = 0, 1, 5, 6, 7, 8, 9

# What _fqc, _fsd and _fnum mean for each method (long_name texts).
_DESCRIPTIONS = {
    "mds": ("1-3 MDS quality (REddyProc)", "standard deviation of the MDS matches", "number of MDS matches"),
    "mdv": (
        "MDV 1 within the window, 2 up to twice it, 3 wider",
        "standard deviation of the values averaged",
        "number of values averaged",
    ),
    "fao_pm": (
        "FAO-PM 1 crop coefficient from days within the window, 2 interpolated beyond it",
        "RMS difference of Kc x ET0 and the measurements within the window",
        "number of measured steps within the window",
    ),
    "kalman": (
        "Kalman 1 every system input available (FAO-PM and MDV for LE/ET, MDV otherwise), 2 one missing",
        "standard deviation of the smoothed Kalman state",
        "number of system inputs averaged",
    ),
    "ml": (
        "1 ML fill (NaN where drivers are missing)",
        "spread (SD) of the ensemble members",
        "number of ensemble members",
    ),
    "svr": ("1 SVR fill (NaN where drivers are missing)", "not available for SVR (NaN)", "number of models (1)"),
}


# Outputs only some methods give (units None: those of the variable).
_EXTRA_OUTPUTS: dict[str, dict[str, str | None]] = {
    "fall": {"units": None, "long_name": "%s look-up value at every record, measured ones included (REddyProc _fall)"},
    "fwin": {"units": "d", "long_name": "full window length of the look-up filling %s"},
}


@dataclass
class Fill:
    """One site's result: filled values, quality (NaN unfilled), SD, count, label codes and extra outputs."""

    filled: np.ndarray
    quality: np.ndarray
    sd: np.ndarray
    count: np.ndarray
    label: np.ndarray
    extra: dict = field(default_factory=dict)


def _fill_sites(ds: xr.Dataset, var: str, method: str, good_qc, fill_one) -> xr.Dataset:
    """Run ``fill_one(site_index, values, good)`` for every site of ``ds`` (site, time) and attach the outputs."""
    fills = []
    for i, site in enumerate(map(str, ds["site"].values)):
        values = ds[var].isel(site=i).values.astype(np.float64)
        good = usable_mask(ds.isel(site=i), var, good_qc)
        if not good.any():
            raise ValueError(f"{var} is all missing at site {site!r}: nothing to fill from")
        fills.append(fill_one(i, values, good))
    units = ds[var].attrs.get("units", "1")
    quality_text, sd_text, count_text = _DESCRIPTIONS[method]
    out = ds.copy()
    for suffix, name, attrs in (
        ("f", "filled", {"units": units, "long_name": f"{var} gap-filled ({method})"}),
        (
            "fqc",
            "quality",
            {"units": "1", "long_name": f"{var} fill quality: 0 measured, {quality_text}, NaN unfilled"},
        ),
        ("fsd", "sd", {"units": units, "long_name": f"{sd_text} filling {var}"}),
        ("fnum", "count", {"units": "1", "long_name": f"{count_text} filling {var}"}),
    ):
        out[f"{var}_{suffix}"] = (("site", "time"), np.stack([getattr(f, name) for f in fills]), attrs)
    out[f"{var}_fmeth"] = (
        ("site", "time"),
        np.stack([FILL_LABELS[f.label] for f in fills]),
        {"long_name": f"how each {var} value was obtained"},
    )
    for suffix, spec in _EXTRA_OUTPUTS.items():
        if suffix in fills[0].extra:
            extra_attrs = {
                "units": units if spec["units"] is None else spec["units"],
                "long_name": (spec["long_name"] or "%s") % var,
            }
            out[f"{var}_{suffix}"] = (("site", "time"), np.stack([f.extra[suffix] for f in fills]), extra_attrs)
    log.info(
        "%s filled with %s: %.1f %% of steps have a value",
        var,
        method,
        100 * float(np.isfinite(out[f"{var}_f"]).mean()),
    )
    return out


def gapfill(
    site_ds: xr.Dataset, var: str, method: str = "mds", *, good_qc: float | None = None, **options
) -> xr.Dataset:
    """Fill the gaps of ``var`` in a site dataset.

    Parameters
    ----------
    site_ds : xarray.Dataset
        Site dataset (site, time) at a regular step with ``var`` and the
        drivers the method reads (MDS: SW_IN [W m-2], TA [°C], VPD [hPa]).
    var : str
        Variable to fill (e.g. ``NEE``, ``LE``, ``H``, ``TA``).
    method : {"mds", "mdv", "fao_pm", "kalman", "ml", "svr"}
        Marginal distribution sampling (REddyProc's by default, hesseflux's
        as ``convention="hesseflux"``); mean diurnal variation (same time of
        day; no drivers); FAO-56 Penman-Monteith ET0 × crop coefficient (LE or
        ET only; needs TA, VPD and NETRAD or SW_IN + LW_IN, uses PA and WS
        when present, else 101.325 kPa and FAO-56's 2 m s-1); a Kalman
        smoother of an AR(1) anomaly around the mean of the FAO-PM and MDV
        estimates (MDV alone for other variables than LE/ET); a tree
        ensemble, or support vector regression, on the site's drivers and
        time harmonics (any gap length; driver gaps filled with their mean
        diurnal variation first).
    good_qc : float, optional
        Values whose ``<var>_QC`` flag exceeds this count as gaps
        (:func:`uflux_xr.core.qc.usable_mask`; an error without ``<var>_QC``).
    **options
        The method's options, each documented on its dataclass in
        :mod:`uflux_xr.site.gapfill.options`: :class:`~uflux_xr.site.gapfill.options.MDSOptions`
        (``convention``, ``sw_dev``, ``ta_dev``, ``vpd_dev``, ``long_gap``,
        ``edge_gaps``, ``fill_all``, ``statistics``, ``fill_drivers``),
        :class:`~uflux_xr.site.gapfill.options.MDVOptions` (``window``),
        :class:`~uflux_xr.site.gapfill.options.FAOPMOptions` (``kc_window``),
        :class:`~uflux_xr.site.gapfill.options.KalmanOptions` (``kc_window``,
        ``window``), :class:`~uflux_xr.site.gapfill.options.LearnedOptions` for
        ``ml`` and ``svr``.

    Returns
    -------
    xarray.Dataset
        ``site_ds`` with ``<var>_f``, ``<var>_fqc``, ``<var>_fmeth``, ``<var>_fsd``
        and ``<var>_fnum`` added; REddyProc-convention MDS also adds ``<var>_fall``
        (the look-up value at every record) and ``<var>_fwin`` (window [days]).
    """
    opts = method_options(method, options)
    if var not in site_ds:
        raise MissingVariableError(
            f"variable {var!r} not in the site dataset; it has {sorted(map(str, site_ds.data_vars))}"
        )
    check_driver_units(site_ds, method)
    ds = with_site_dim(site_ds)  # the methods work on (site, time); a single site is squeezed back below
    if method == "mdv":
        out = _gapfill_mdv(ds, var, opts.window, good_qc)
    elif method == "fao_pm":
        out = _gapfill_fao_pm(ds, var, opts.kc_window, good_qc)
    elif method == "kalman":
        out = _gapfill_kalman(ds, var, opts.kc_window, opts.window, good_qc)
    elif method in ("ml", "svr"):
        out = _gapfill_learned(ds, var, method, good_qc, opts)
    else:
        out = _gapfill_mds(ds, var, good_qc, opts)
    return like_input(out, site_ds)


def _gapfill_mds(ds, var, good_qc, opts: MDSOptions) -> xr.Dataset:
    for name, units in DRIVERS.items():
        if name not in ds:
            raise MissingVariableError(f"MDS needs the driver {name!r} [{units}] in the site dataset")
    for i, site in enumerate(map(str, ds["site"].values)):
        if not bool(ds[var].isel(site=i).notnull().any()):
            raise ValueError(f"{var} is all missing at site {site!r}: nothing to fill from")
        if all(not bool(ds[d].isel(site=i).notnull().any()) for d in DRIVERS):
            raise ValueError(f"the drivers SW_IN, TA and VPD are all missing at site {site!r}; MDS needs them")
    if opts.fill_drivers:
        unfilled = replace(opts, fill_drivers=False, fill_all=False)
        for name in DRIVERS:
            if name != var and bool(ds[name].isnull().any()):
                ds = _gapfill_mds(ds, name, None, unfilled)
    time = ds.indexes["time"]
    n_per_day = steps_per_day(time)

    def drivers(i):
        return [
            ds[f"{d}_f" if opts.fill_drivers and f"{d}_f" in ds else d].isel(site=i).values.astype(np.float64)
            for d in DRIVERS
        ]

    def skip_mask(good):
        return long_gap_mask(good, n_per_day, opts.long_gap, fill_near_edges=opts.edge_gaps == "fill_near_data")

    if opts.convention == "hesseflux":
        hour = (time.hour + time.minute / 60.0).to_numpy(dtype=np.float64)

        def fill_one(i, values, good):
            sw, ta, vpd = drivers(i)
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
                skip_mask(good),
                float(opts.sw_dev),
                float(opts.ta_dev),
                float(opts.vpd_dev),
            )
            label = np.where(good, MEASURED, np.where(quality < 0, UNFILLED, step.astype(int) + 1))
            return Fill(filled, np.where(quality < 0, np.nan, quality.astype(float)), sd, count.astype(float), label)

    else:

        def fill_one(i, values, good):
            rg, ta, vpd = drivers(i)
            have = {"SW_IN": np.isfinite(rg).any(), "TA": np.isfinite(ta).any(), "VPD": np.isfinite(vpd).any()}
            met = lookup_drivers(var, have)
            data = np.where(good, values, np.nan)
            targets = (~good | opts.fill_all) & ~skip_mask(good)
            value, count, sd, meth, window, quality = mds_reddyproc_core(
                data,
                rg,
                ta,
                vpd,
                n_per_day,
                met,
                targets,
                float(opts.sw_dev),
                float(opts.ta_dev),
                float(opts.vpd_dev),
                opts.statistics == "vekuri23",
            )
            done = ~good & (meth > 0)
            return Fill(
                np.where(good, values, value),
                np.where(good, 0.0, np.where(done, quality.astype(float), np.nan)),
                sd,
                count.astype(float),
                np.where(good, MEASURED, np.where(done, meth.astype(int) + 1, UNFILLED)),
                {"fall": value, "fwin": np.where(meth > 0, window.astype(float), np.nan)},
            )

    return _fill_sites(ds, var, "mds", good_qc, fill_one)


def _gapfill_mdv(ds, var, window_days, good_qc) -> xr.Dataset:
    n_per_day = steps_per_day(ds.indexes["time"])

    def fill_one(i, values, good):
        filled, quality, sd, count = mdv_core(
            np.where(good, values, np.nan), good, n_per_day, int(window_days), int(4 * window_days), 2
        )
        label = np.where(good, MEASURED, np.where(quality < 0, UNFILLED, MDV))
        return Fill(filled, np.where(quality < 0, np.nan, quality.astype(float)), sd, count.astype(float), label)

    return _fill_sites(ds, var, "mdv", good_qc, fill_one)


def _complete_driver(values: np.ndarray, n_per_day: int) -> np.ndarray:
    """A driver without gaps: its mean diurnal variation (±7 days, widened up to 60), then linear in time."""
    good = np.isfinite(values)
    if good.all() or not good.any():
        return values
    filled = mdv_core(np.where(good, values, np.nan), good, n_per_day, 7, 60, 1)[0]
    return pd.Series(filled).interpolate(limit_direction="both").to_numpy()


def _site_drivers(one: xr.Dataset, names, n_per_day: int) -> dict[str, np.ndarray]:
    """Gap-free driver series of one site (their ``_f`` versions when present)."""
    return {
        d: _complete_driver((one[f"{d}_f"] if f"{d}_f" in one else one[d]).values.astype(np.float64), n_per_day)
        for d in names
    }


def _gapfill_learned(ds, var, method, good_qc, opts: LearnedOptions) -> xr.Dataset:
    names = [d for d in (opts.drivers or CANDIDATE_DRIVERS) if d in ds and d != var]
    if opts.drivers is not None and len(names) != len(opts.drivers):
        raise MissingVariableError(f"drivers {sorted(set(opts.drivers) - set(names))} not in the site dataset")
    time = ds.indexes["time"]
    n_per_day = steps_per_day(time)
    years = opts.train_years if isinstance(opts.train_years, str) else list(opts.train_years)
    common = {"train_years": years, "n_nearest": opts.n_nearest, "params": opts.params}
    fill_series: Callable[..., tuple[np.ndarray, np.ndarray]]
    if method == "ml":
        fill_series, code, members = ml_fill, ML, float(opts.members)
        options = {**common, "model": opts.model, "members": opts.members}
    else:
        fill_series, code, members = svr_fill, SVR, 1.0
        options = {**common, "max_train": opts.max_train}

    def fill_one(i, values, good):
        one = ds.isel(site=i)
        columns = _site_drivers(one, names, n_per_day)
        missing = [d for d, v in columns.items() if not np.isfinite(v).any()]
        if missing:
            raise ValueError(f"drivers {missing} are all missing at site {str(one['site'].values)!r}")
        features = feature_table(pd.DataFrame(columns), time, names, opts.antecedent_days, opts.time_trend)
        filled, spread = fill_series(values, good, features, **options)
        done = ~good & np.isfinite(filled)
        quality = np.where(good, 0.0, np.where(done, 1.0, np.nan))
        label = np.where(good, MEASURED, np.where(done, code, UNFILLED))
        return Fill(filled, quality, spread, np.where(done, members, 0.0), label)

    return _fill_sites(ds, var, method, good_qc, fill_one)


def _observed_as_le(da: xr.DataArray, ta: np.ndarray) -> np.ndarray:
    """Factor turning the variable into latent heat [W m-2] (LE as is; ET [kg m-2 d-1] × λ / 86400)."""
    units = canonical_units(da.attrs.get("units"))
    if da.name == "LE" and units == "W m-2":
        return np.ones_like(ta)
    if da.name == "ET" and units in ("kg m-2 d-1", "mm d-1"):
        return latent_heat_of_vaporization(ta) / SECONDS_PER_DAY
    raise ValueError(
        f"FAO-PM fills latent heat LE [W m-2] or evapotranspiration ET [kg m-2 d-1]; {da.name!r} is in "
        f"{da.attrs.get('units')!r}"
    )


def _reference_flux(ds: xr.Dataset, var: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per site: (FAO-56 reference flux in ``var``'s units, factor to latent heat) at every step."""
    required = ["TA", "VPD"] + (["NETRAD"] if "NETRAD" in ds else ["SW_IN", "LW_IN"])
    missing = [d for d in required if d not in ds]
    if missing:
        raise MissingVariableError(
            f"FAO-PM needs {missing} in the site dataset (TA [degC], VPD [hPa] and NETRAD or SW_IN + LW_IN [W m-2])"
        )
    time = ds.indexes["time"]
    n_per_day = steps_per_day(time)
    seconds = time_step(time).total_seconds()
    out = []
    for i in range(ds.sizes["site"]):
        one = ds.isel(site=i)
        names = required + [d for d in ("PA", "WS") if d in ds]
        d = _site_drivers(one, names, n_per_day)
        empty = [k for k, v in d.items() if not np.isfinite(v).any()]
        if empty:
            raise ValueError(f"drivers {empty} are all missing at site {str(one['site'].values)!r}; FAO-PM needs them")
        rn = d["NETRAD"] if "NETRAD" in d else fao_pm.net_radiation(d["SW_IN"], d["LW_IN"], d["TA"])
        le0 = fao_pm.reference_latent_heat(
            rn, d["TA"], d["VPD"], d.get("PA", 101.325), d.get("WS", fao_pm.DEFAULT_WIND), seconds
        )
        to_le = _observed_as_le(ds[var], d["TA"])
        out.append((le0 / to_le, to_le))
    return out


def _day_numbers(time: pd.DatetimeIndex) -> np.ndarray:
    days = time.normalize()
    return ((days - days[0]) // pd.Timedelta(days=1)).to_numpy().astype(np.int64)


def _fao_pm_estimates(ds, var, good_qc, kc_window):
    """Per site: (Kc × reference flux at every step, Kc from the window?, residual SD, count)."""
    day = _day_numbers(ds.indexes["time"])
    estimates = []
    for i, (reference, to_le) in enumerate(_reference_flux(ds, var)):
        values = ds[var].isel(site=i).values.astype(np.float64)
        good = usable_mask(ds.isel(site=i), var, good_qc)
        kc, in_window = fao_pm.crop_coefficient(values * to_le, reference * to_le, good, day, kc_window)
        fitted = kc * reference
        sd, count = fao_pm.residual_sd(values, fitted, good, day, kc_window)
        estimates.append((fitted, in_window, sd, count))
    return estimates


def _gapfill_fao_pm(ds, var, kc_window, good_qc) -> xr.Dataset:
    estimates = _fao_pm_estimates(ds, var, good_qc, kc_window)

    def fill_one(i, values, good):
        fitted, in_window, sd, count = estimates[i]
        done = ~good & np.isfinite(fitted)
        quality = np.where(good, 0.0, np.where(done, np.where(in_window, 1.0, 2.0), np.nan))
        label = np.where(good, MEASURED, np.where(done, FAO_PM, UNFILLED))
        return Fill(np.where(good, values, fitted), quality, np.where(done, sd, np.nan), count, label)

    return _fill_sites(ds, var, "fao_pm", good_qc, fill_one)


def _gapfill_kalman(ds, var, kc_window, kalman_window, good_qc) -> xr.Dataset:
    n_per_day = steps_per_day(ds.indexes["time"])
    evaporative = var in ("LE", "ET")
    estimates = _fao_pm_estimates(ds, var, good_qc, kc_window) if evaporative else None
    if not evaporative:
        log.info("Kalman filling %s: FAO-PM applies to LE/ET only, the system input is MDV alone", var)

    def fill_one(i, values, good):
        data = np.where(good, values, np.nan)
        mdv = mdv_core(data, good, n_per_day, int(kalman_window), int(4 * kalman_window), 2, True)[0]
        inputs = np.stack([mdv] + ([estimates[i][0]] if estimates else []))
        count = np.isfinite(inputs).sum(axis=0).astype(float)
        system_input = np.where(count > 0, np.nansum(inputs, axis=0) / np.maximum(count, 1), np.nan)
        filled, sd = kalman_fill(values, good, system_input)
        done = ~good & np.isfinite(filled)
        quality = np.where(good, 0.0, np.where(done, np.where(count == inputs.shape[0], 1.0, 2.0), np.nan))
        label = np.where(good, MEASURED, np.where(done, KALMAN, UNFILLED))
        return Fill(filled, quality, sd, np.where(done, count, 0.0), label)

    return _fill_sites(ds, var, "kalman", good_qc, fill_one)
