"""xarray adapter of the NEE partitioning: ``ux.partition(site_ds, method=...)``."""

from __future__ import annotations

import logging
from dataclasses import fields

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.gapfill.api import with_site_dim
from uflux_xr.partition.nighttime import NightTimeOptions, PartitioningError, partition_nighttime
from uflux_xr.solar import potential_radiation
from uflux_xr.variables import check_units

log = logging.getLogger(__name__)

FLUX_UNITS = "umol m-2 s-1"
METHODS = {"nighttime": NightTimeOptions}


def _options(method: str, options: dict):
    if method not in METHODS:
        raise ValueError(f"unknown partitioning method {method!r}; implemented: {list(METHODS)}")
    cls = METHODS[method]
    known = sorted(f.name for f in fields(cls))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"partitioning method {method!r} has no option(s) {unknown}; its options: {known}")
    return cls(**options)


def _site_value(ds: xr.Dataset, name: str, given, i: int) -> float:
    """``given`` when set, else the site coordinate ``name``; NaN when neither."""
    if given is not None:
        return float(np.atleast_1d(given)[i] if np.ndim(given) else given)
    if name not in ds.coords:
        return np.nan
    values = np.atleast_1d(ds[name].values)
    return float(values[i if values.size > 1 else 0])


def _require(ds: xr.Dataset, names: list[str], hint: str) -> None:
    missing = [n for n in names if n not in ds]
    if missing:
        raise PartitioningError(
            f"partitioning needs {missing} in the site dataset ({ds.attrs.get('source_file', 'in memory')}); {hint}"
        )


def _filled(ds: xr.Dataset, var: str, i: int) -> tuple[np.ndarray, np.ndarray]:
    """A variable's filled values and fill quality: ``<var>_f``/``_fqc``, or the record itself when it has no gaps."""
    if f"{var}_f" in ds:
        values = ds[f"{var}_f"].isel(site=i).values.astype(float)
        quality = ds[f"{var}_fqc"].isel(site=i).values if f"{var}_fqc" in ds else np.zeros(values.size)
        return values, quality
    values = ds[var].isel(site=i).values.astype(float)
    if not np.isfinite(values).all():
        raise PartitioningError(
            f"{var} has {int((~np.isfinite(values)).sum())} missing values and no {var}_f: fill it first "
            f"(ux.gapfill(ds, {var!r})), as REddyProc partitions filled series"
        )
    return values, np.zeros(values.size)


def partition(
    site_ds: xr.Dataset,
    method: str = "nighttime",
    *,
    nee: str = "NEE",
    temperature: str = "TA",
    sw_in: str = "SW_IN",
    lat=None,
    lon=None,
    utc_offset=None,
    solar_time: bool = True,
    **options,
) -> xr.Dataset:
    """Partition gap-filled NEE into GPP and RECO.

    Parameters
    ----------
    site_ds : xarray.Dataset
        Sites (site, time) or one site (time) with ``<nee>_f`` and
        ``<nee>_fqc`` (from :func:`uflux_xr.gapfill`) [µmol m-2 s-1],
        ``<temperature>_f``/``_fqc`` (or a temperature without gaps) [degC]
        and the measured ``sw_in`` [W m-2].  Time stamps are the middle of
        each record in local standard time.
    method : {"nighttime"}
        ``nighttime``: Reichstein et al. (2005) as REddyProc's
        ``sMRFluxPartition`` (:mod:`uflux_xr.partition.nighttime`).
    nee : str
        Flux whose ``_f`` is partitioned; a u* scenario such as ``NEE_U50``
        gives outputs with that suffix (``GPP_NT_U50``).
    temperature, sw_in : str
        Temperature [degC] and measured global radiation [W m-2].
    lat, lon : float or array_like, optional
        Site position [degrees north/east]; default the ``lat``/``lon`` site
        coordinates.
    utc_offset : float or array_like, optional
        Hours local standard time is ahead of UTC [h]; default the
        ``utc_offset`` site coordinate.  Needed for the potential radiation.
    solar_time : bool
        Potential radiation in solar time (REddyProc's default).
    **options
        Fields of :class:`~uflux_xr.partition.nighttime.NightTimeOptions`.

    Returns
    -------
    xarray.Dataset
        ``site_ds`` with ``SW_IN_POT`` [W m-2], and for the night-time method
        ``NEE_NIGHT<s>`` (night records used), ``E0_NT<s>`` [K] (per site),
        ``RREF_NT<s>``, ``RECO_NT<s>``, ``GPP_NT<s>`` [µmol m-2 s-1] and
        ``GPP_NT<s>_fqc`` (the NEE fill quality), where ``<s>`` is the suffix
        of ``nee`` after ``NEE``.  ``attrs["partitioning_notes<s>"]`` says
        what was dropped.

    Raises
    ------
    PartitioningError
        Missing inputs, no site position or UTC offset, or too few valid
        temperature-sensitivity windows.
    """
    opts = _options(method, options)
    ds = with_site_dim(site_ds)
    _require(ds, [f"{nee}_f", sw_in], f"run ux.gapfill(ds, {nee!r}) first and give the measured radiation")
    if temperature not in ds and f"{temperature}_f" not in ds:
        raise PartitioningError(f"partitioning needs the temperature {temperature!r} [degC]; not in the site dataset")
    check_units(
        ds,
        {f"{nee}_f": FLUX_UNITS, temperature: "degC", f"{temperature}_f": "degC", sw_in: "W m-2"},
        user="the partitioning",
    )
    suffix = nee[len("NEE") :] if nee.startswith("NEE") else f"_{nee}"
    time = pd.DatetimeIndex(ds["time"].values)
    step = pd.Series(time).diff().median()
    n_per_day = int(round(pd.Timedelta(days=1) / step))
    if n_per_day not in (24, 48):
        log.warning("partitioning a record with %d steps per day; REddyProc runs hourly or half-hourly data", n_per_day)
    results, potentials, notes = [], [], []
    for i, site in enumerate(map(str, ds["site"].values)):
        position = {k: _site_value(ds, k, v, i) for k, v in (("lat", lat), ("lon", lon), ("utc_offset", utc_offset))}
        if not all(np.isfinite(list(position.values()))):
            raise PartitioningError(
                f"site {site!r}: partitioning needs lat, lon and utc_offset to tell night from day; got {position}. "
                "Pass them (partition(..., lat=, lon=, utc_offset=)) or set the site coordinates"
            )
        pot = potential_radiation(time, position["lat"], position["lon"], position["utc_offset"], solar_time=solar_time)
        nee_f, nee_fqc = _filled(ds, nee, i)
        temp_f, temp_fqc = _filled(ds, temperature, i)
        try:
            result = partition_nighttime(
                nee_f, nee_fqc, temp_f, temp_fqc, ds[sw_in].isel(site=i).values.astype(float), pot, n_per_day, opts
            )
        except PartitioningError as err:
            raise PartitioningError(f"site {site!r}, {nee}_f: {err}") from None
        log.info("site %s: night-time E0 %.2f K from %d windows", site, result["e0"], len(result["e0_windows"]))
        results.append(result)
        potentials.append(pot)
        notes += [f"{site}: {n}" for n in result["notes"]]

    def stack(key):
        return (("site", "time"), np.stack([r[key] for r in results]))

    flux = {"units": FLUX_UNITS}
    out = ds.assign(
        SW_IN_POT=(
            ("site", "time"),
            np.stack(potentials),
            {"units": "W m-2", "long_name": "potential (top-of-atmosphere) radiation"},
        ),
        **{
            f"NEE_NIGHT{suffix}": (
                *stack("night_nee"),
                {**flux, "long_name": f"measured night-time {nee} used by the partitioning"},
            ),
            f"E0_NT{suffix}": (
                "site",
                np.array([r["e0"] for r in results]),
                {"units": "K", "long_name": "Lloyd-Taylor temperature sensitivity"},
            ),
            f"RREF_NT{suffix}": (*stack("rref"), {**flux, "long_name": f"respiration at {opts.t_ref} degC"}),
            f"RECO_NT{suffix}": (
                *stack("reco"),
                {**flux, "long_name": "ecosystem respiration, night-time partitioning"},
            ),
            f"GPP_NT{suffix}": (
                *stack("gpp"),
                {**flux, "long_name": "gross primary production, night-time partitioning"},
            ),
            f"GPP_NT{suffix}_fqc": (
                ("site", "time"),
                np.stack([_filled(ds, nee, i)[1] for i in range(ds.sizes["site"])]),
                {"units": "1", "long_name": f"fill quality of the {nee} behind GPP"},
            ),
        },
    )
    out.attrs[f"partitioning_notes{suffix}"] = "; ".join(notes) if notes else "none"
    return out if "site" in site_ds.dims else out.isel(site=0)
