"""Quality control of tower records before gap filling: the QC-flag mask and runs of equal values.

One convention for sub-daily quality flags across the package: FLUXNET's
``<VAR>_QC`` (0 measured, 1 good, 2 medium, 3 poor gap-fill; or the
0/1/2 quality classes of EddyPro and the Mauder & Foken scheme, 0 best),
and ``good_qc`` the largest flag kept.  Daily and monthly FLUXNET ``_QC``
values are fractions of good records instead, and their threshold is
``training.qc_threshold`` (a fraction kept when at least this large) in
:mod:`uflux_xr.aggregate`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


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
            raise KeyError(f"good_qc={good_qc} given but the dataset has no {var}_QC quality flags")
        usable &= ds[f"{var}_QC"].values <= good_qc
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
