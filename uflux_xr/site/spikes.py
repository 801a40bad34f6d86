"""Spike detection in half-hourly fluxes by the median absolute deviation of double differences.

Papale et al. (2006) flag a record whose double difference
``d_i = (x_i − x_{i−1}) − (x_{i+1} − x_i)`` lies more than ``z · MAD / 0.6745``
from the median of the double differences around it, with day and night
records treated apart.

``convention="papale"`` (the default) follows ONEFlux's ``qc_auto``
(fluxnet/ONEFlux ``oneflux_steps/qc_auto/src/spike.c``, ``set_night_and_day``,
``set_spikes``, ``set_spikes_2``; constants in ``common.h`` and ``main.c``):

- night: potential radiation ≤ 12 W m-2, overridden where measured by
  SW_IN < 12 W m-2 and then by PPFD_IN < 25 µmol m-2 s-1; day: not night.
  Both are widened by one record on each side, so records at dawn and dusk
  are tested in both series;
- blocks of 13 days (624 half-hours, 312 hours) from the first record, the
  last block taking the remainder; within a block a double difference needs
  its record and both neighbours in the series; median and MAD over the
  block's double differences;
- flag 1, 2, 3 where |d − median| exceeds 4, 5.5, 7 MAD/0.6745 (the highest
  level reached in either series); then a record next to a gap whose step
  from its other neighbour exceeds 6 µmol m-2 s-1 (NEE) or 100 W m-2 (LE, H)
  gets flag 1 (ONEFlux sets 1 there even over a higher flag);
- records with flag ≥ 2 are removed (``main.c``: ``SPIKE_CHECK_2_RETURN``,
  ``GREATER_EQUAL``).

``convention="hesseflux"`` reproduces hesseflux's ``madspikes`` (v5) step for
step (flag 1 = spike, removed):

- day records are those with SW_IN > 10 W m-2; the record on either side of
  dawn and dusk belongs to both the day and the night series, with the
  overlap hesseflux's in-place array updates give (``isddday``, ``isddnight``);
- windows of ``scan_days`` (15) days, moved by ``fill_days`` (1) day; each
  window's flags are kept for the day in its middle; the very first record
  is never flagged;
- a second difference with a missing neighbour takes no part (hesseflux
  masks it; the masked entries hold NaN, so its test on their stored values
  never flags them), and a window without any difference flags all its
  records (pyjams ``mad`` returns the mask there).  The window loop runs in
  numba; its flags equal those of the masked-array code record by record on
  DE-Tha 1998 (NEE, LE, H).
"""

from __future__ import annotations

import logging

import numba
import numpy as np
import xarray as xr

from uflux_xr.core.qc import usable_mask
from uflux_xr.core.variables import MissingVariableError

log = logging.getLogger(__name__)


@numba.njit(nogil=True, cache=True)
def _mad_outliers(window: np.ndarray, z: float) -> np.ndarray:
    """hesseflux/pyjams ``mad(deriv=2)`` on one window.

    numpy's masked second difference is NaN wherever a neighbour is missing
    (the masked entries keep the NaN of the data), so the masked test is the
    plain test on NaN-propagating differences; a window without any
    difference flags everything, as pyjams returns the mask there.
    """
    first = window[1:] - window[:-1]
    d = first[1:] - first[:-1]
    kept = d[np.isfinite(d)]
    if kept.size == 0:
        return np.ones(d.size, np.bool_)
    median = np.median(kept)
    threshold = np.median(np.abs(kept - median)) * (z / 0.6745)
    return (d < (median - threshold)) | (d > (median + threshold))


@numba.njit(nogil=True, cache=True)
def _hesseflux_windows(day_series, night_series, half_scan: int, half_fill: int, z: float) -> np.ndarray:
    """hesseflux's window loop: each window's flags kept for the day in its middle."""
    n = day_series.size
    flagged = np.zeros(n, np.bool_)
    for j in range(half_fill, n - 1, 2 * half_fill):
        j1, j2 = max(j - half_scan - 1, 0), min(j + half_scan + 1, n)
        start, end = max(j - half_fill, 1), min(j + half_fill, n - 1)
        for series in (day_series, night_series):
            outside = _mad_outliers(series[j1:j2], z)
            for i in range(start, end):
                flagged[i] |= outside[i - j1 - 1]
    return flagged


def _day_night_overlap(is_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """hesseflux's dawn/dusk records added to the day and night series (with its aliasing)."""
    n = is_day.size
    change = is_day.astype(int) - np.roll(is_day, -1).astype(int)
    dawn = np.zeros(n, bool)
    dusk = np.zeros(n, bool)
    dawn[:-1] = change[:-1] == -1
    dusk[:-1] = change[:-1] == 1
    # hesseflux updates these arrays in place, so the night overlap sees the already widened dawn flags
    day_edge = dawn
    day_edge[1:] |= np.roll(dusk, 1)[1:]
    night_edge = dusk
    night_edge[1:] |= np.roll(day_edge, 1)[1:]
    return day_edge, night_edge


def hesseflux_spikes(
    values: np.ndarray,
    usable: np.ndarray,
    is_day: np.ndarray,
    n_per_day: int,
    *,
    z: float = 7.0,
    scan_days: float = 15,
    fill_days: float = 1,
) -> np.ndarray:
    """Spikes among the usable records of one series, as hesseflux's ``madspikes`` finds them.

    Parameters
    ----------
    values : array
        The flux.
    usable : bool array
        Records that take part (measured, not flagged).
    is_day : bool array
        Day records (SW_IN > 10 W m-2 in hesseflux).
    n_per_day : int
        Records per day.
    z : float
        Allowed deviation from the median [MAD / 0.6745 units].
    scan_days, fill_days : float
        Window length and step [days].

    Returns
    -------
    bool array
        True at usable records flagged as spikes.
    """
    day_edge, night_edge = _day_night_overlap(is_day.copy())
    day_series = np.where((is_day | day_edge) & usable, values, np.nan)
    night_series = np.where((~is_day | night_edge) & usable, values, np.nan)
    half_scan = int(scan_days * n_per_day) // 2
    half_fill = int(fill_days * n_per_day) // 2
    return _hesseflux_windows(day_series, night_series, half_scan, half_fill, float(z)) & usable


#: ONEFlux's z levels (flags 1, 2, 3) and the flag from which a record is removed.
ONEFLUX_Z = (4.0, 5.5, 7.0)
ONEFLUX_REMOVED_FROM = 2
#: ONEFlux's step next to a gap above which a record gets flag 1 [flux units].
ONEFLUX_GAP_STEP = {"NEE": 6.0, "FC": 6.0, "LE": 100.0, "H": 100.0}


def oneflux_night_day(sw_pot: np.ndarray, sw_in: np.ndarray, ppfd_in: np.ndarray | None = None):
    """ONEFlux's night and day series (``set_night_and_day``), each widened by one record.

    Parameters
    ----------
    sw_pot : array
        Potential radiation [W m-2]; NaN where unknown (then a record without
        measured radiation is day).
    sw_in : array
        Measured global radiation [W m-2].
    ppfd_in : array, optional
        Measured PPFD [µmol m-2 s-1].

    Returns
    -------
    night, day : bool arrays
    """
    night = sw_pot <= 12.0
    for measured, limit in ((sw_in, 12.0), (ppfd_in, 25.0)):
        if measured is not None:
            known = np.isfinite(measured)
            night = np.where(known, measured < limit, night)
    wide = []
    for core in (night, ~night):
        out = core.copy()
        out[1:-1] = core[:-2] | core[1:-1] | core[2:]
        out[0] = core[0] | core[1]
        out[-1] = out[-2]  # ONEFlux reads the already widened value of the record before the last
        wide.append(out)
    return wide[0], wide[1]


def oneflux_spikes(
    values: np.ndarray,
    usable: np.ndarray,
    night: np.ndarray,
    day: np.ndarray,
    n_per_day: int,
    *,
    gap_step: float | None,
    z_levels=ONEFLUX_Z,
    block_days: float = 13,
) -> np.ndarray:
    """ONEFlux's spike levels of one series (``set_spikes`` at each z, then ``set_spikes_2``).

    Parameters
    ----------
    values : array
        The flux.
    usable : bool array
        Records that take part (finite, passing QC).
    night, day : bool arrays
        :func:`oneflux_night_day`.
    n_per_day : int
        Records per day (48 or 24).
    gap_step : float, optional
        Step next to a gap that gives flag 1 [flux units]; None skips the test.
    z_levels : sequence of float
        Allowed deviations [MAD / 0.6745 units] for flags 1, 2, 3.
    block_days : float
        Block length [days].

    Returns
    -------
    int8 array
        0 none, 1…len(z_levels) the highest level exceeded; -1 at records not tested.
    """
    n = values.size
    window = int(round(block_days * n_per_day))
    blocks = max(n // window, 1)
    starts = [i * window for i in range(blocks)] + [n]
    flags = np.zeros(n, np.int8)
    for period in (night, day):
        series = np.where(period & usable, values, np.nan)
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            block = series[a:b]
            d = np.full(block.size, np.nan)
            d[1:-1] = (block[1:-1] - block[:-2]) - (block[2:] - block[1:-1])
            tested = np.isfinite(d)
            if not tested.any():
                continue
            median = np.median(d[tested])
            mad = np.median(np.abs(d[tested] - median))
            level = np.zeros(block.size, np.int8)
            for k, z in enumerate(z_levels, start=1):
                with np.errstate(invalid="ignore"):
                    level[tested & (np.abs(d - median) > z * mad / 0.6745)] = k
            flags[a:b] = np.maximum(flags[a:b], level)
    if gap_step is not None:
        x = np.where(usable, values, np.nan)
        ok = np.isfinite(x)
        step = np.abs(np.diff(x))
        # before a gap: x[i-1] kept, x[i] missing; after one: x[i] missing, x[i+1] kept
        before = np.zeros(n, bool)
        before[1:-1] = ~ok[2:] & ok[1:-1] & ok[:-2] & (np.nan_to_num(step[:-1]) > gap_step)
        after = np.zeros(n, bool)
        after[1:-1] = ~ok[:-2] & ok[1:-1] & ok[2:] & (np.nan_to_num(step[1:]) > gap_step)
        flags[before | after] = 1
    flags[~usable] = -1
    return flags


def spike_removed(flags: xr.DataArray) -> xr.DataArray:
    """True where a ``<var>_SPIKE`` flag removes the record (its ``removed_from`` attribute)."""
    return flags >= flags.attrs.get("removed_from", 1)


def flag_spikes(
    site_ds: xr.Dataset,
    var: str,
    *,
    convention: str = "papale",
    good_qc: float | None = None,
    z: float = 7.0,
    lat=None,
    lon=None,
    utc_offset=None,
    **window,
) -> xr.Dataset:
    """Add ``<var>_SPIKE`` to a site dataset: spike flags of the MAD test on double differences.

    Parameters
    ----------
    site_ds : xarray.Dataset
        Site dataset with ``var`` and SW_IN [W m-2] at a sub-daily step; with
        ``papale``, PPFD_IN [µmol m-2 s-1] is used where present.
    var : str
        Flux to test.
    convention : {"papale", "hesseflux"}
        ``papale``: ONEFlux's ``qc_auto`` (13-day blocks, z 4 / 5.5 / 7,
        flags 0–3, removed from 2); ``hesseflux``: hesseflux's ``madspikes``
        (flag 1 = spike).
    good_qc : float, optional
        Records whose ``<var>_QC`` flag exceeds this are not tested
        (:func:`uflux_xr.core.qc.usable_mask`).
    z : float
        ``hesseflux``: allowed deviation [MAD / 0.6745 units] (hesseflux: 7).
    lat, lon, utc_offset : float, optional
        ``papale``: site position [degrees] and UTC offset [h] for the
        potential radiation that tells night where SW_IN and PPFD_IN are
        missing; default the site coordinates, else SW_IN_POT, else such
        records count as day (logged).
    **window
        ``hesseflux``: ``scan_days`` (15) and ``fill_days`` (1); ``papale``:
        ``block_days`` (13).

    Returns
    -------
    xarray.Dataset
        ``site_ds`` with ``<var>_SPIKE`` (NaN where not tested); its
        ``removed_from`` attribute is the flag from which a record is a spike
        (:func:`spike_removed`).
    """
    from uflux_xr.site.aggregate import steps_per_day
    from uflux_xr.site.dataset import like_input, with_site_dim

    if convention not in ("papale", "hesseflux"):
        raise ValueError(f"convention must be 'papale' or 'hesseflux', got {convention!r}")
    if "SW_IN" not in site_ds:
        raise MissingVariableError("spike detection needs SW_IN [W m-2] to tell day from night")
    ds = with_site_dim(site_ds)
    n_per_day = steps_per_day(ds.indexes["time"])
    values, sw = ds[var].values, ds["SW_IN"].values
    usable = usable_mask(ds, var, good_qc)
    if convention == "hesseflux":
        text, removed_from = f"hesseflux madspikes, z = {z}: 1 spike, 0 not", 1
    else:
        text = "ONEFlux qc_auto levels: 0 none, 1/2/3 beyond z 4/5.5/7 (1 also next to a gap)"
        removed_from = ONEFLUX_REMOVED_FROM
    flags = np.full(values.shape, np.nan)
    for i in range(values.shape[0]):
        if convention == "hesseflux":
            found = hesseflux_spikes(values[i], usable[i], sw[i] > 10.0, n_per_day, z=z, **window).astype(np.int8)
        else:
            night, day = oneflux_night_day(
                _potential_radiation(ds, i, lat, lon, utc_offset),
                sw[i],
                ds["PPFD_IN"].values[i] if "PPFD_IN" in ds else None,
            )
            step = ONEFLUX_GAP_STEP.get(var.split("_")[0])
            found = oneflux_spikes(values[i], usable[i], night, day, n_per_day, gap_step=step, **window)
        flags[i][usable[i]] = found[usable[i]]
        log.info(
            "%s: %d spikes among %d tested records (%s)",
            var,
            int((found >= removed_from).sum()),
            int(usable[i].sum()),
            convention,
        )
    spike = xr.DataArray(
        flags,
        dims=("site", "time"),
        attrs={
            "units": "1",
            "long_name": f"{var} spike flag ({text}); NaN not tested",
            "removed_from": removed_from,
            "convention": convention,
        },
    )
    return site_ds.assign({f"{var}_SPIKE": like_input(spike, site_ds)})


def _potential_radiation(ds: xr.Dataset, i: int, lat, lon, utc_offset) -> np.ndarray:
    """Potential radiation of site ``i`` [W m-2], NaN where it cannot be known."""
    from uflux_xr.core.solar import potential_radiation, site_position

    if "SW_IN_POT" in ds:
        return ds["SW_IN_POT"].values[i].astype(float)
    position = site_position(ds, i, lat, lon, utc_offset)
    if np.isfinite(list(position.values())).all():
        return potential_radiation(ds.indexes["time"], position["lat"], position["lon"], position["utc_offset"])
    unknown = ~np.isfinite(ds["SW_IN"].values[i])
    if "PPFD_IN" in ds:
        unknown &= ~np.isfinite(ds["PPFD_IN"].values[i])
    if unknown.any():
        log.warning(
            "spikes: %d records without SW_IN, PPFD_IN or a site position count as day "
            "(pass lat, lon and utc_offset to use the potential radiation, as ONEFlux does)",
            int(unknown.sum()),
        )
    return np.full(ds.sizes["time"], np.nan)
