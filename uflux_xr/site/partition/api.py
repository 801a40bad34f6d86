"""xarray adapter of the NEE partitioning: ``ux.partition(site_ds, method=...)``."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.solar import potential_radiation, site_position
from uflux_xr.core.variables import check_units
from uflux_xr.site.aggregate import steps_per_day
from uflux_xr.site.dataset import like_input, with_site_dim
from uflux_xr.site.gapfill.options import options_from_keywords
from uflux_xr.site.partition.daytime import DayTimeOptions, partition_daytime
from uflux_xr.site.partition.nighttime import NightTimeOptions, PartitioningError, partition_nighttime

log = logging.getLogger(__name__)

FLUX_UNITS = "umol m-2 s-1"
METHODS = {"nighttime": NightTimeOptions, "daytime": DayTimeOptions}
FLUX = {"units": FLUX_UNITS}


def _options(method: str, options: dict):
    if method not in METHODS:
        raise ValueError(f"unknown partitioning method {method!r}; implemented: {list(METHODS)}")
    return options_from_keywords(METHODS[method], options, f"partitioning method {method!r}")


def _require(ds: xr.Dataset, names: list[str], hint: str) -> None:
    missing = [n for n in names if n not in ds]
    if missing:
        raise PartitioningError(
            f"partitioning needs {missing} in the site dataset ({ds.attrs.get('source_file', 'in memory')}); {hint}"
        )


def _filled(ds: xr.Dataset, var: str, i: int, *, allow_gaps: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A variable's filled values and fill quality: ``<var>_f``/``_fqc``, or the record itself when it has no gaps."""
    if f"{var}_f" in ds:
        values = ds[f"{var}_f"].isel(site=i).values.astype(float)
        if f"{var}_fqc" in ds:
            return values, ds[f"{var}_fqc"].isel(site=i).values
        if var in ds:  # no fill quality: measured where the record has a value
            return values, np.where(np.isfinite(_values(ds, var, i)), 0.0, 1.0)
        raise PartitioningError(f"{var}_f has no {var}_fqc and no measured {var}: cannot tell measured from filled")
    values = ds[var].isel(site=i).values.astype(float)
    if not allow_gaps and not np.isfinite(values).all():
        raise PartitioningError(
            f"{var} has {int((~np.isfinite(values)).sum())} missing values and no {var}_f: fill it first "
            f"(ux.gapfill(ds, {var!r})), as REddyProc partitions filled series"
        )
    return values, np.zeros(values.size)


def _nighttime_site(ds, i, names, pot, n_per_day, opts) -> tuple[dict, list[str]]:
    """Night-time outputs of site ``i``: name -> (values, attrs) with ``names`` the input variables."""
    nee, temperature, sw_in, sfx = names["nee"], names["temperature"], names["sw_in"], names["suffix"]
    nee_f, nee_fqc = _filled(ds, nee, i)
    temp_f, temp_fqc = _filled(ds, temperature, i)
    r = partition_nighttime(nee_f, nee_fqc, temp_f, temp_fqc, _values(ds, sw_in, i), pot, n_per_day, opts)
    log.info("site %s: night-time E0 %.2f K", str(ds["site"].values[i]), r["e0"])
    return {
        f"NEE_NIGHT{sfx}": (
            r["night_nee"],
            {**FLUX, "long_name": f"measured night-time {nee} used by the partitioning"},
        ),
        f"E0_NT{sfx}": (r["e0"], {"units": "K", "long_name": "Lloyd-Taylor temperature sensitivity"}),
        f"RREF_NT{sfx}": (r["rref"], {**FLUX, "long_name": f"respiration at {opts.t_ref} degC"}),
        f"RECO_NT{sfx}": (r["reco"], {**FLUX, "long_name": "ecosystem respiration, night-time partitioning"}),
        f"GPP_NT{sfx}": (r["gpp"], {**FLUX, "long_name": "gross primary production, night-time partitioning"}),
        f"GPP_NT{sfx}_fqc": (nee_fqc, {"units": "1", "long_name": f"fill quality of the {nee} behind GPP"}),
    }, r["notes"]


def _daytime_site(ds, i, names, pot, n_per_day, opts) -> tuple[dict, list[str]]:
    """Day-time outputs of site ``i``."""
    nee, temperature, sw_in, vpd, sfx = (names[k] for k in ("nee", "temperature", "sw_in", "vpd", "suffix"))
    nee_f, nee_fqc = _filled(ds, nee, i)
    nee_fsd = _values(ds, f"{nee}_fsd", i) if f"{nee}_fsd" in ds else np.full(nee_f.size, np.nan)
    notes = []
    missing_sd = int(np.sum((nee_fqc == 0) & ~np.isfinite(nee_fsd)))
    if missing_sd:
        notes.append(
            f"{missing_sd} measured {nee} records have no {nee}_fsd and are weighted with 20 % of |NEE| (at least "
            "0.7); ux.gapfill(..., fill_all=True) gives REddyProc's MDS uncertainty"
        )
    temp_f, _ = _filled(ds, temperature, i)
    has_vpd = vpd in ds or f"{vpd}_f" in ds
    vpd_f = _filled(ds, vpd, i, allow_gaps=True)[0] if has_vpd else np.full(nee_f.size, np.nan)
    sw_in_f = _filled(ds, sw_in, i)[0]
    r = partition_daytime(nee_f, nee_fqc, nee_fsd, temp_f, vpd_f, _values(ds, sw_in, i), sw_in_f, pot, n_per_day, opts)
    quality = "0 fitted window, 1 parameters refitted with some fixed, 2 next window more than 14 days away"
    return {
        f"RECO_DT{sfx}": (r["reco"], {**FLUX, "long_name": "ecosystem respiration, day-time partitioning"}),
        f"GPP_DT{sfx}": (r["gpp"], {**FLUX, "long_name": "gross primary production, day-time partitioning"}),
        f"RECO_DT{sfx}_SD": (r["reco_sd"], {**FLUX, "long_name": "standard deviation of RECO_DT"}),
        f"GPP_DT{sfx}_SD": (r["gpp_sd"], {**FLUX, "long_name": "standard deviation of GPP_DT"}),
        f"GPP_DT{sfx}_fqc": (r["quality"], {"units": "1", "long_name": f"day-time partitioning quality: {quality}"}),
    }, notes + r["notes"]


_SITE_METHODS = {"nighttime": _nighttime_site, "daytime": _daytime_site}


def _values(ds: xr.Dataset, name: str, i: int) -> np.ndarray:
    return ds[name].isel(site=i).values.astype(float)


def partition(
    site_ds: xr.Dataset,
    method: str = "nighttime",
    *,
    nee: str = "NEE",
    temperature: str = "TA",
    sw_in: str = "SW_IN",
    vpd: str = "VPD",
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
        ``<nee>_fqc`` (from :func:`uflux_xr.site.gapfill`) [µmol m-2 s-1],
        ``<temperature>_f``/``_fqc`` (or a temperature without gaps) [degC]
        and the measured ``sw_in`` [W m-2].  The day-time method also reads
        ``<nee>_fsd`` [µmol m-2 s-1] (``gapfill(..., fill_all=True)`` gives it
        for measured records too, as REddyProc), ``<vpd>_f`` (or VPD) [hPa]
        and ``<sw_in>_f`` (or a radiation without gaps) [W m-2].  Time stamps
        are the middle of each record in local standard time.
    method : {"nighttime", "daytime"}
        ``nighttime``: Reichstein et al. (2005) as REddyProc's
        ``sMRFluxPartition`` (:mod:`uflux_xr.site.partition.nighttime`).
        ``daytime``: Lasslop et al. (2010) as REddyProc's ``partitionNEEGL``
        (:mod:`uflux_xr.site.partition.daytime`).
    nee : str
        Flux whose ``_f`` is partitioned; a u* scenario such as ``NEE_U50``
        gives outputs with that suffix (``GPP_NT_U50``).
    temperature, sw_in, vpd : str
        Temperature [degC], global radiation [W m-2] and VPD [hPa].
    lat, lon : float or array_like, optional
        Site position [degrees north/east]; default the ``lat``/``lon`` site
        coordinates.
    utc_offset : float or array_like, optional
        Hours local standard time is ahead of UTC [h]; default the
        ``utc_offset`` site coordinate.  Needed for the potential radiation.
    solar_time : bool
        Potential radiation in solar time (REddyProc's default).
    **options
        Fields of :class:`~uflux_xr.site.partition.nighttime.NightTimeOptions` or
        :class:`~uflux_xr.site.partition.daytime.DayTimeOptions`.

    Returns
    -------
    xarray.Dataset
        ``site_ds`` with ``SW_IN_POT`` [W m-2] and, with ``<s>`` the suffix of
        ``nee`` after ``NEE``: night-time ``NEE_NIGHT<s>`` (night records
        used), ``E0_NT<s>`` [K] (per site), ``RREF_NT<s>``, ``RECO_NT<s>``,
        ``GPP_NT<s>`` [µmol m-2 s-1] and ``GPP_NT<s>_fqc`` (the NEE fill
        quality); day-time ``RECO_DT<s>``, ``GPP_DT<s>``, their ``_SD``
        [µmol m-2 s-1] and ``GPP_DT<s>_fqc`` (0 fitted, 1 refitted with fixed
        parameters, 2 more than 14 days from a fit).
        ``attrs["partitioning_notes_<method><s>"]`` says what was dropped.

    Raises
    ------
    PartitioningError
        Missing inputs, no site position or UTC offset, or too few records to
        estimate the temperature sensitivity or the light response.
    """
    opts = _options(method, options)
    ds = with_site_dim(site_ds)
    _require(ds, [f"{nee}_f", sw_in], f"run ux.gapfill(ds, {nee!r}) first and give the measured radiation")
    needed = {"temperature": (temperature, "degC")}
    if method == "daytime" and not opts.neglect_vpd:
        needed["VPD"] = (vpd, "hPa")
    for role, (name, units) in needed.items():
        if name not in ds and f"{name}_f" not in ds:
            hint = "; without it pass neglect_vpd=True (REddyProc's isNeglectVPDEffect)" if role == "VPD" else ""
            raise PartitioningError(
                f"{method} partitioning needs the {role} {name!r} [{units}]; not in the site dataset{hint}"
            )
    check_units(
        ds,
        {f"{nee}_f": FLUX_UNITS, f"{nee}_fsd": FLUX_UNITS, sw_in: "W m-2", f"{sw_in}_f": "W m-2"}
        | {n: u for name, u in needed.values() for n in (name, f"{name}_f")},
        user=f"the {method} partitioning",
    )
    names = {"nee": nee, "temperature": temperature, "sw_in": sw_in, "vpd": vpd}
    names["suffix"] = nee[len("NEE") :] if nee.startswith("NEE") else f"_{nee}"
    time = pd.DatetimeIndex(ds["time"].values)
    n_per_day = steps_per_day(time)
    if n_per_day not in (24, 48):
        log.warning("partitioning a record with %d steps per day; REddyProc runs hourly or half-hourly data", n_per_day)
    outputs, potentials, notes = [], [], []
    for i, site in enumerate(map(str, ds["site"].values)):
        position = site_position(ds, i, lat, lon, utc_offset)
        if not all(np.isfinite(list(position.values()))):
            raise PartitioningError(
                f"site {site!r}: partitioning needs lat, lon and utc_offset to tell night from day; got {position}. "
                "Pass them (partition(..., lat=, lon=, utc_offset=)) or set the site coordinates"
            )
        pot = potential_radiation(time, position["lat"], position["lon"], position["utc_offset"], solar_time=solar_time)
        try:
            result, site_notes = _SITE_METHODS[method](ds, i, names, pot, n_per_day, opts)
        except PartitioningError as err:
            raise PartitioningError(f"site {site!r}, {nee}_f: {err}") from None
        outputs.append(result)
        potentials.append(pot)
        notes += [f"{site}: {n}" for n in site_notes]
    variables: dict[str, tuple] = {
        "SW_IN_POT": (
            ("site", "time"),
            np.stack(potentials),
            {"units": "W m-2", "long_name": "potential (top-of-atmosphere) radiation"},
        )
    }
    for name, (_, attrs) in outputs[0].items():
        values = np.stack([np.asarray(o[name][0], dtype=float) for o in outputs])
        variables[name] = (("site", "time")[: values.ndim], values, attrs)
    out = ds.assign(variables)
    out.attrs[f"partitioning_notes_{method}{names['suffix']}"] = "; ".join(notes) if notes else "none"
    return like_input(out, site_ds)
