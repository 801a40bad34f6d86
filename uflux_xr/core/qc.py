"""The QC vocabulary: what a ``<VAR>_QC`` value means, and one function per kind to keep records by it.

Two kinds of value travel under the one suffix ``_QC``, told apart by the time step of the record:

**Flags** (sub-daily records): a quality class, smaller is better.  FLUXNET's ``<VAR>_QC`` and
``<VAR>_F_MDS_QC`` are 0 measured, 1 good, 2 medium, 3 poor gap-fill; EddyPro and the Mauder & Foken
scheme give 0/1/2 with 0 best.  A record is kept when its flag is at most ``good_qc`` (the largest flag
kept): :func:`flag_kept`, and :func:`usable_mask` for a dataset variable.

**Fractions** (daily, weekly, monthly records): the share of the period's sub-daily records that were
measured or filled with good quality [0-1], as FLUXNET's DD/MM files and :func:`uflux_xr.site.aggregate.
to_daily` give them.  A record is kept when the fraction is at least ``qc_threshold``
(``training.qc_threshold`` in a config, 0.8 a common choice): :func:`fraction_kept`.  A missing fraction
(no record in the period) is never kept.

A fraction read as a flag would keep nearly everything, a flag read as a fraction nearly nothing: callers
pick the function by the record's time step, never by the value range.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from uflux_xr.core.variables import MissingVariableError


def flag_kept(flags, good_qc: float):
    """Records whose sub-daily quality flag is at most ``good_qc`` (a missing flag is not kept).

    Parameters
    ----------
    flags : array-like, pandas or xarray object
        Quality flags [0, 1, 2, 3; smaller is better].
    good_qc : float
        Largest flag kept.

    Returns
    -------
    bool array-like
        Of the type and shape of ``flags``.
    """
    return flags <= good_qc


def fraction_kept(fractions, qc_threshold: float):
    """Records of aggregated data whose good-record fraction is at least ``qc_threshold`` (NaN is not kept).

    Parameters
    ----------
    fractions : array-like, pandas or xarray object
        Share of good sub-daily records in each period [0-1].
    qc_threshold : float
        Smallest fraction kept [0-1].

    Returns
    -------
    bool array-like
        Of the type and shape of ``fractions``.
    """
    return fractions >= qc_threshold


def usable_mask(ds: xr.Dataset, var: str, good_qc: float | None = None) -> np.ndarray:
    """Records of ``var`` that are finite and, with ``good_qc``, flagged at most ``good_qc`` in ``<var>_QC``.

    Parameters
    ----------
    ds : xarray.Dataset
        Site dataset.
    var : str
        Variable.
    good_qc : float, optional
        Largest sub-daily quality flag kept; None keeps every finite value.
        A ``good_qc`` without a ``<var>_QC`` variable is an error, not a
        silent pass.

    Returns
    -------
    bool array
        Shaped like ``ds[var]``.
    """
    usable = np.isfinite(ds[var].values)
    if good_qc is not None:
        if f"{var}_QC" not in ds:
            raise MissingVariableError(f"good_qc={good_qc} given but the dataset has no {var}_QC quality flags")
        usable &= flag_kept(ds[f"{var}_QC"].values, good_qc)
    return usable


def long_runs(values: np.ndarray, min_length: int = 8) -> np.ndarray:
    """Records in runs of ``min_length`` or more numerically equal values (REddyProc ``filterLongRuns``).

    Missing values do not interrupt a run (REddyProc ``filterLongRunsInVector``
    with ``na.rm = TRUE``, bgctw/REddyProc ``R/DataFunctions.R``): a sensor
    repeating its last value across a gap is one run.

    Parameters
    ----------
    values : array
        One series.
    min_length : int
        Shortest run removed [records] (REddyProc: 8, four hours of half-hours).

    Returns
    -------
    bool array
        True at the records of long runs.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(values))
    out = np.zeros(values.size, bool)
    if finite.size == 0:
        return out
    kept = values[finite]
    starts = np.flatnonzero(np.r_[True, kept[1:] != kept[:-1]])
    lengths = np.diff(np.r_[starts, kept.size])
    in_run = np.repeat(lengths >= min_length, lengths)
    out[finite[in_run]] = True
    return out
