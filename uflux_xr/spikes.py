"""Spike detection in half-hourly fluxes by the median absolute deviation of double differences.

Papale et al. (2006) flag a record whose double difference
``d_i = (x_i − x_{i−1}) − (x_{i+1} − x_i)`` lies more than ``z · MAD / 0.6745``
from the median of the double differences around it, with day and night
records treated apart.  ``convention="hesseflux"`` reproduces hesseflux's
``madspikes`` (v5) step for step:

- day records are those with SW_IN > 10 W m-2; the record on either side of
  dawn and dusk belongs to both the day and the night series, with the
  overlap hesseflux's in-place array updates give (``isddday``, ``isddnight``);
- windows of ``scan_days`` (15) days, moved by ``fill_days`` (1) day; each
  window's flags are kept for the day in its middle; the very first record
  is never flagged;
- the second differences are those of numpy's masked arrays (a difference
  with a missing neighbour is masked, and the test reads the masked
  comparison's stored value, as hesseflux does through ``numpy.where``).
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

log = logging.getLogger(__name__)


def _mad_outliers(window: np.ndarray, z: float) -> np.ndarray:
    """hesseflux/pyjams ``mad(deriv=2)`` on one window: the stored values of the masked test."""
    data = np.ma.masked_array(window, mask=np.isnan(window))
    d = np.diff(data, n=2, axis=0)
    if np.all(np.ma.getmaskarray(d)):
        return np.ma.getmaskarray(d)
    kept = d.compressed()
    median = np.median(kept)
    threshold = np.median(np.abs(kept - median)) * (z / 0.6745)
    with np.errstate(invalid="ignore"):
        outside = (d < (median - threshold)) | (d > (median + threshold))
    return np.asarray(np.ma.getdata(outside), dtype=bool)


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
    n = values.size
    day_edge, night_edge = _day_night_overlap(is_day.copy())
    day_series = np.where((is_day | day_edge) & usable, values, np.nan)
    night_series = np.where((~is_day | night_edge) & usable, values, np.nan)
    half_scan = int(scan_days * n_per_day) // 2
    half_fill = int(fill_days * n_per_day) // 2
    flagged = np.zeros(n, bool)
    for j in range(half_fill, n - 1, 2 * half_fill):
        j1, j2 = max(j - half_scan - 1, 0), min(j + half_scan + 1, n)
        start, end = max(j - half_fill, 1), min(j + half_fill, n - 1)
        for series in (day_series, night_series):
            flagged[start:end] |= _mad_outliers(series[j1:j2], z)[start - j1 - 1 : end - j1 - 1]
    return flagged & usable


def flag_spikes(site_ds: xr.Dataset, var: str, *, good_qc: float | None = None, z: float = 7.0, **window) -> xr.Dataset:
    """Add ``<var>_SPIKE`` (1 spike, 0 not, NaN not tested) to a site dataset (hesseflux convention).

    Parameters
    ----------
    site_ds : xarray.Dataset
        Site dataset with ``var`` and SW_IN [W m-2] at a sub-daily step.
    var : str
        Flux to test.
    good_qc : float, optional
        With a ``<var>_QC`` variable: records whose flag exceeds this are not tested.
    z : float
        Allowed deviation [MAD / 0.6745 units] (hesseflux: 7).
    **window
        ``scan_days`` (15) and ``fill_days`` (1).
    """
    from uflux_xr.aggregate import steps_per_day
    from uflux_xr.gapfill.api import like_input, with_site_dim

    if "SW_IN" not in site_ds:
        raise KeyError("spike detection needs SW_IN [W m-2] to tell day from night")
    ds = with_site_dim(site_ds)
    n_per_day = steps_per_day(ds.indexes["time"])
    values, sw = ds[var].values, ds["SW_IN"].values
    usable = np.isfinite(values)
    if good_qc is not None and f"{var}_QC" in ds:
        usable &= ds[f"{var}_QC"].values <= good_qc
    flags = np.full(values.shape, np.nan)
    for i in range(values.shape[0]):
        spikes = hesseflux_spikes(values[i], usable[i], sw[i] > 10.0, n_per_day, z=z, **window)
        flags[i][usable[i]] = spikes[usable[i]]
        log.info("%s: %d spikes among %d tested records", var, int(spikes.sum()), int(usable[i].sum()))
    spike = xr.DataArray(
        flags,
        dims=("site", "time"),
        attrs={
            "units": "1",
            "long_name": f"{var} spike flag (MAD of double differences, z = {z}): 1 spike, 0 not, NaN not tested",
        },
    )
    return site_ds.assign({f"{var}_SPIKE": like_input(spike, site_ds)})
