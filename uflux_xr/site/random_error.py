"""Random error of aggregated fluxes, with the autocorrelation of the gap-filling residuals.

A daily or annual mean of gap-filled fluxes is uncertain by the random error
of its measured records, which are correlated in time.  The rules follow
REddyProc's vignette ``aggUncertainty`` (bgctw/REddyProc) and the functions
it calls in bgctw/lognorm (``R/autocorr.R``):

- residuals: measured minus the MDS look-up value (``<var>`` − ``<var>_fall``)
  at measured records (``_fqc == 0``), missing elsewhere, so that the series
  stays equidistant;
- empirical autocorrelation as R's ``acf(na.action = na.pass)``: demeaned by
  the mean of the finite values, lag-``k`` sum over the pairs with both values
  finite divided by (pairs + k), normalised by lag 0; ``lag.max`` =
  ⌊10 log10 n⌋ (``effective_autocorrelation`` keeps the lags before the first
  one ≤ 0, computing all lags when none is within ``lag.max``);
- effective number of observations (Zieba & Ramza 2011 with lognorm's count
  of missing pairs, ``computeEffectiveNumObs(exact.na = TRUE)``): with the
  series trimmed of leading and trailing gaps, ``n`` its length, ``m_k`` the
  pairs at lag ``k`` with a missing value and ``n_f`` the finite records,
  ``n_eff = n_f / (1 + 2/n_f Σ_k (n − k − m_k) ρ_k)``;
- standard error of the mean: ``sqrt(Σ σ_i² / n_rec / (n_eff − 1))`` over the
  measured records' ``_fsd`` (gap-filled records add no replicates).

On DE-Tha 1998 (u* 0.3, the vignette's case) this gives the vignette's
n_eff 4230.522 and standard error 0.04798329 µmol m-2 s-1.

:func:`paired_random_error` gives the random error of single records from
pairs 24 h apart (Hollinger & Richardson 2005), the floor under any
gap-filling score against measured records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uflux_xr.core.variables import MissingVariableError


def autocorrelation(x: np.ndarray, lag_max: int | None = None) -> np.ndarray:
    """Empirical autocorrelation of a series with gaps, as R's ``acf(x, na.action = na.pass)``.

    Parameters
    ----------
    x : array
        Equidistant series; NaN marks a missing value.
    lag_max : int, optional
        Largest lag [records]; default ⌊10 log10 n⌋, at most n − 1.

    Returns
    -------
    array
        Correlations at lags 0 … ``lag_max`` [1], clipped to [−1, 1].
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    lag_max = int(np.floor(10 * np.log10(n))) if lag_max is None else int(lag_max)
    lag_max = max(0, min(lag_max, n - 1))
    finite = np.isfinite(x)
    centred = np.where(finite, x - np.mean(x[finite]), 0.0)
    pairs = finite_pairs(finite, lag_max)
    lags = np.arange(lag_max + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(pairs > 0, _lagged_products(centred, lag_max) / (pairs + lags), np.nan)
    return np.clip(out / out[0], -1.0, 1.0)


def _lagged_products(x: np.ndarray, lag_max: int) -> np.ndarray:
    """``Σ_i x_i x_{i+k}`` for k = 0 … lag_max (by FFT: all lags of a long record cost O(n log n))."""
    n = x.size
    size = 1 << int(np.ceil(np.log2(2 * n - 1))) if n > 1 else 1
    spectrum = np.fft.rfft(x, size)
    return np.fft.irfft(spectrum * np.conj(spectrum), size)[: lag_max + 1]


def finite_pairs(finite: np.ndarray, lag_max: int) -> np.ndarray:
    """Number of pairs (i, i + k) with both records finite, for k = 0 … lag_max."""
    return np.rint(_lagged_products(finite.astype(np.float64), lag_max)).astype(np.int64)


def effective_autocorrelation(residuals: np.ndarray) -> np.ndarray:
    """The autocorrelation up to its first value ≤ 0 (lognorm ``computeEffectiveAutoCorr``).

    Returns
    -------
    array
        Correlations from lag 0 [1]; at least the lag-0 value.
    """
    acf = autocorrelation(residuals)
    below = np.flatnonzero(acf <= 0)
    if below.size == 0:
        acf = autocorrelation(residuals, np.asarray(residuals).size - 1)
        below = np.flatnonzero(np.append(acf, -1.0) <= 0)
    return acf[: max(1, int(below[0]))]


def _trim_gaps(x: np.ndarray) -> np.ndarray:
    finite = np.flatnonzero(np.isfinite(x))
    return x[finite[0] : finite[-1] + 1] if finite.size else x[:0]


def effective_observations(residuals: np.ndarray, acf: np.ndarray | None = None) -> float:
    """Effective number of independent records (lognorm ``computeEffectiveNumObs``, ``exact.na``).

    Parameters
    ----------
    residuals : array
        Equidistant series with NaN where missing (do not drop the gaps).
    acf : array, optional
        Autocorrelation from lag 0 [1]; default :func:`effective_autocorrelation`
        of ``residuals``.  For a day, pass the one of the whole record (as the
        vignette does).

    Returns
    -------
    float
        ``n_eff`` [records]; the finite count when there is no correlation.
    """
    x = _trim_gaps(np.asarray(residuals, dtype=np.float64))
    acf = effective_autocorrelation(residuals) if acf is None else np.asarray(acf, dtype=np.float64)
    missing = ~np.isfinite(x)
    n = x.size
    if acf.size < 2:
        return float(n - missing.sum())
    if n < 2:
        return float(n)
    lags = np.arange(1, min(n - 1, acf.size - 1) + 1)
    missing_pairs = (n - lags) - finite_pairs(~missing, int(lags[-1]))[1:]
    n_finite = n - missing.sum()
    return float(n_finite / (1 + 2 / n_finite * np.sum((n - lags - missing_pairs) * acf[lags])))


def standard_error_of_mean(sd_measured: np.ndarray, n_effective: float) -> float:
    """Random error of a mean from the records' SDs: ``sqrt(mean(σ²) / (n_eff − 1))``.

    Parameters
    ----------
    sd_measured : array
        SD of each measured record (NaN at gap-filled ones) [flux units].
    n_effective : float
        :func:`effective_observations` of the same records.

    Returns
    -------
    float
        Standard error [flux units]; NaN with one effective record or fewer.
    """
    sd = np.asarray(sd_measured, dtype=np.float64)
    sd = sd[np.isfinite(sd)]
    if sd.size == 0 or n_effective <= 1:
        return float("nan")
    return float(np.sqrt(np.sum(sd**2) / sd.size / (n_effective - 1)))


#: Hollinger & Richardson (2005, Tree Physiology 25: 873) take two records 24 h apart as replicates when
#: their conditions are alike: PPFD within 75 µmol m-2 s-1 (35 W m-2 of SW_IN at 2.11 µmol J-1), air
#: temperature within 3 °C and wind speed within 1 m s-1.  Limits of drivers a record lacks are skipped.
PAIRED_LIMITS = {"SW_IN": 35.0, "TA": 3.0, "WS": 1.0}


def paired_random_error(values, steps_per_day: int, drivers=None, limits=None, where=None) -> tuple[float, int]:
    """Random error of single records from pairs 24 h apart under alike conditions (Hollinger & Richardson 2005).

    The SD of the pairs' differences over √2 is the SD of one record's random
    error, if the flux did not change between the two days; what it did change
    adds to it, so the value is an upper bound.

    Parameters
    ----------
    values : array-like
        Measured records at a regular step [flux units], NaN where missing.
    steps_per_day : int
        Records per day (48 for half-hours): the lag of a pair.
    drivers : mapping of str to array-like, optional
        Driver series aligned with ``values`` (SW_IN [W m-2], TA [degC], WS [m s-1]).
    limits : mapping of str to float, optional
        Largest difference of each driver within a pair; default :data:`PAIRED_LIMITS`.
    where : array of bool, optional
        Only pairs whose first record is here (e.g. the records of some windows).

    Returns
    -------
    tuple of (float, int)
        The SD [flux units] (NaN with fewer than 2 pairs) and the number of pairs.
    """
    values = np.asarray(values, dtype=np.float64)
    lag = int(steps_per_day)
    difference = values[lag:] - values[:-lag]
    alike = np.isfinite(difference)
    for name, limit in (PAIRED_LIMITS if limits is None else limits).items():
        if drivers is not None and name in drivers:
            x = np.asarray(drivers[name], dtype=np.float64)
            with np.errstate(invalid="ignore"):
                alike &= np.abs(x[lag:] - x[:-lag]) < limit
    if where is not None:
        alike &= np.asarray(where, dtype=bool)[:-lag]
    pairs = int(alike.sum())
    if pairs < 2:
        return float("nan"), pairs
    return float(np.std(difference[alike], ddof=1) / np.sqrt(2.0)), pairs


_PERIODS = {"YS": "Y", "MS": "M", "D": "D"}


def aggregate_with_random_error(site_ds, var: str, freq: str = "YS"):
    """Means of a gap-filled flux per period with their random error (REddyProc ``aggUncertainty``).

    Parameters
    ----------
    site_ds : xarray.Dataset
        One site (time) after ``gapfill(site_ds, var, fill_all=True)``: ``var``
        (the values used, e.g. u*-filtered) and its ``_f``, ``_fsd``,
        ``_fall`` and ``_fqc``.
    var : str
        The filled flux, e.g. ``NEE_U50``.
    freq : str
        pandas period start: ``"YS"`` years, ``"MS"`` months, ``"D"`` days
        (grouped by the record middles' dates).  The autocorrelation is that
        of the whole record's residuals, as the vignette recommends for days.

    Returns
    -------
    pandas.DataFrame
        Per period: ``mean`` [units of ``var``], ``sd_random`` [same],
        ``n_records``, ``n_measured`` (measured records with an SD),
        ``n_effective`` and ``filled_share`` [1].
    """
    needed = [var] + [f"{var}_{s}" for s in ("f", "fsd", "fall", "fqc")]
    missing = [n for n in needed if n not in site_ds]
    if missing:
        raise MissingVariableError(
            f"the random error of {var} needs {missing}: run ux.gapfill(ds, {var!r}, fill_all=True) first"
        )
    measured = site_ds[var].values.astype(np.float64)
    filled = site_ds[f"{var}_f"].values.astype(np.float64)
    sd_measured = np.where(np.isfinite(measured), site_ds[f"{var}_fsd"].values, np.nan)
    residuals = np.where(site_ds[f"{var}_fqc"].values == 0, measured - site_ds[f"{var}_fall"].values, np.nan)
    acf = effective_autocorrelation(residuals)
    if freq not in _PERIODS:
        raise ValueError(f"freq must be one of {list(_PERIODS)}, got {freq!r}")
    keys = pd.DatetimeIndex(site_ds["time"].values).to_period(_PERIODS[freq])
    rows = {}
    for period, idx in pd.Series(np.arange(keys.size)).groupby(keys):
        idx = idx.to_numpy()
        n_eff = effective_observations(residuals[idx], acf)
        rows[period.start_time] = {
            "mean": float(np.nanmean(filled[idx])) if np.isfinite(filled[idx]).any() else np.nan,
            "sd_random": standard_error_of_mean(sd_measured[idx], n_eff),
            "n_records": idx.size,
            "n_measured": int(np.isfinite(sd_measured[idx]).sum()),
            "n_effective": n_eff,
            "filled_share": float(np.mean(~np.isfinite(measured[idx]))),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("period")
