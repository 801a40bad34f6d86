"""Night-time partitioning of NEE (Reichstein et al. 2005) as REddyProc runs it.

Every rule follows REddyProc's ``R/EddyPartitioning.R`` (``sMRFluxPartition``,
``fRegrE0fromShortTerm``, ``fOptimSingleE0``, ``sRegrRref``; bgctw/REddyProc
1.3):

- Night records: measured NEE (quality 0) where the measured global radiation
  is at most 10 W m-2 and the potential radiation is 0 (``FP_VARnight``; a
  record without radiation is not night).  Temperature: the filled series
  where its quality is 0.
- Day of a record: ``(i + 1) // n_per_day`` for the 0-based record i (R's
  ``c(1:n) %/% DTS``: the first day holds one record fewer).
- E0: windows of ±7 days around days 8, 13, 18, … (every 5 days); a window
  is fitted when it has more than 6 records and a temperature range of at
  least 5 K.  Lloyd–Taylor (T0 = 227.13 K, Tref = 15 °C) is fitted by least
  squares from R_ref = 2, E0 = 200; records whose residual lies outside the
  5–95 % quantiles are dropped and the fit repeated.  A trimmed estimate is
  valid when E0 − SD > 30 K and E0 + SD < 450 K (REddyProc's limits: its
  Tair/Tsoil limits of 350/550 K are chosen by the column name, which in
  ``sMRFluxPartition`` is always ``FP_Temp``, so 450 K is what runs).  E0 is
  the mean of the 3 valid estimates with the smallest SD, rounded to 2
  decimals; fewer than 3: the partitioning stops (REddyProc's −111).
- R_ref: windows of ±3 days around days 4, 8, 12, … (every 4 days) with more
  than 2 records; R_ref is the least-squares slope through the origin of
  night NEE on Lloyd–Taylor(1, E0, T), dropped when negative, placed at the
  rounded mean record index of the window and linearly interpolated between
  windows, held constant before the first and after the last.
- RECO = Lloyd–Taylor(R_ref, E0, filled T) for every record; GPP = RECO −
  filled NEE, with the NEE fill quality.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from uflux_xr.core import physics
from uflux_xr.core.constants import KELVIN

log = logging.getLogger(__name__)

#: Lloyd & Taylor's (1994) eq. 11 T0 in kelvin (227.13 K, REddyProc's fLloydTaylor), for fits in kelvin.
T0_LLOYD_TAYLOR = KELVIN + physics.LLOYD_TAYLOR_T0


class PartitioningError(ValueError):
    """The partitioning cannot run: missing inputs, no position, or no temperature sensitivity."""


@dataclass(frozen=True)
class NightTimeOptions:
    """Settings of the night-time partitioning (REddyProc's defaults).

    Attributes
    ----------
    t_ref : float
        Reference temperature of Lloyd–Taylor [degC].
    night_sw_in : float
        Highest measured global radiation of a night record [W m-2].
    e0_window_days, e0_step_days : int
        Half width and step of the E0 windows [d].
    temp_range : float
        Smallest temperature range of an E0 window [K] (``TempRange``).
    trim_percent : float
        Residual quantile trimmed at each end before the second fit [%].
    n_best : int
        Number of valid E0 estimates (smallest SD) averaged.
    e0_min, e0_max : float
        Validity limits of E0 ± SD [K].
    rref_window_days, rref_step_days : int
        Half width and step of the R_ref windows [d].
    fixed_e0 : float or None
        Use this E0 [K] instead of estimating it (REddyProc's ``debug$fixedE0``).
    """

    t_ref: float = 15.0
    night_sw_in: float = 10.0
    e0_window_days: int = 7
    e0_step_days: int = 5
    temp_range: float = 5.0
    trim_percent: float = 5.0
    n_best: int = 3
    e0_min: float = 30.0
    e0_max: float = 450.0
    rref_window_days: int = 3
    rref_step_days: int = 4
    fixed_e0: float | None = None


def lloyd_taylor(rref, e0, temp_k, t_ref_k: float = KELVIN + 15.0, t0: float = T0_LLOYD_TAYLOR):
    """Ecosystem respiration after Lloyd & Taylor (1994) eq. 11 [µmol m-2 s-1].

    Parameters
    ----------
    rref : array_like
        Respiration at the reference temperature [µmol m-2 s-1].
    e0 : array_like
        Temperature sensitivity [K].
    temp_k : array_like
        Temperature [K].
    t_ref_k : float
        Reference temperature [K].
    t0 : float
        Temperature where respiration would vanish [K].
    """
    # REddyProc works in kelvin; the formula is the one of core.physics, in °C
    return rref * physics.lloyd_taylor(np.asarray(temp_k) - KELVIN, e0, t_ref_k - KELVIN, t0 - KELVIN)


def day_counter(n_records: int, n_per_day: int) -> np.ndarray:
    """REddyProc's day number of each record, ``c(1:n) %/% DTS``."""
    return (np.arange(n_records) + 1) // n_per_day


@numba.njit(nogil=True, cache=True)
def _lloyd_taylor_sums(rref, e0, x, nee):
    """Sum of squared residuals, J'J and J'r of Lloyd–Taylor in (R_ref, E0) at ``x = 1/(Tref−T0) − 1/(T−T0)``."""
    ssr = a11 = a12 = a22 = g1 = g2 = 0.0
    for i in range(x.size):
        lt = np.exp(e0 * x[i])
        r = rref * lt - nee[i]
        j2 = rref * lt * x[i]
        ssr += r * r
        a11 += lt * lt
        a12 += lt * j2
        a22 += j2 * j2
        g1 += lt * r
        g2 += j2 * r
    return ssr, a11, a12, a22, g1, g2


@numba.njit(nogil=True, cache=True)
def _lloyd_taylor_lm(nee, x, rref, e0, max_iter):
    """Levenberg-Marquardt on (R_ref, E0) with the analytic Jacobian; returns R_ref, E0, SSR, J'J and success.

    Why a fitter of its own (and :func:`uflux_xr.site.partition.lrc_fit.fit_lrc` another): each stands in for
    the R optimiser its REddyProc step calls, and success or failure of a fit decides which windows count.
    This one mimics ``nls`` (Gauss-Newton, a failed fit when step halving runs out, ``maxiter`` accepted
    steps); ``fit_lrc`` mimics ``optim``'s BFGS on a prior-penalised cost (converged on a small gradient or
    when no step decreases the cost).  One shared damping and stopping rule would change which E0 windows
    and light-response windows REddyProc's tests accept.  Both are tested against scipy on the same
    residuals.  The hybrid baselines (:mod:`uflux_xr.models.hybrid`) use scipy's bounded ``least_squares``:
    one fit per model, where speed does not matter and bounds do.

    An iteration is one accepted step (as one of ``nls``'s Gauss-Newton
    iterations, whose step halving stands where the damping grows here); a
    step that the damping cannot make decrease the cost ends the fit as
    failed, as ``nls``'s step factor falling below ``minFactor`` does.
    """
    ssr, a11, a12, a22, g1, g2 = _lloyd_taylor_sums(rref, e0, x, nee)
    damping = 1e-3
    for _ in range(max_iter):
        if not np.isfinite(ssr):
            return rref, e0, ssr, a11, a12, a22, False
        if g1 == 0.0 and g2 == 0.0:
            return rref, e0, ssr, a11, a12, a22, True
        accepted = False
        while damping < 1e16:
            # Marquardt's scaling: the damping multiplies the diagonal of J'J
            b11, b22 = a11 * (1 + damping), a22 * (1 + damping)
            det = b11 * b22 - a12 * a12
            if det > 0 and np.isfinite(det):
                d1 = -(b22 * g1 - a12 * g2) / det
                d2 = -(b11 * g2 - a12 * g1) / det
                trial = _lloyd_taylor_sums(rref + d1, e0 + d2, x, nee)
                if np.isfinite(trial[0]) and trial[0] <= ssr:
                    accepted = True
                    break
            damping *= 10
        if not accepted:
            return rref, e0, ssr, a11, a12, a22, False
        small_step = abs(d1) <= 1e-10 * (abs(rref) + 1e-10) and abs(d2) <= 1e-10 * (abs(e0) + 1e-10)
        small_gain = ssr - trial[0] <= 1e-14 * ssr
        rref, e0 = rref + d1, e0 + d2
        ssr, a11, a12, a22, g1, g2 = trial
        damping = max(damping / 10, 1e-12)
        if small_step or small_gain:
            return rref, e0, ssr, a11, a12, a22, True
    return rref, e0, ssr, a11, a12, a22, False


def fit_lloyd_taylor(
    nee: np.ndarray, temp_k: np.ndarray, t_ref_k: float, start=(2.0, 200.0), max_iterations: int = 50
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares fit of (R_ref, E0) from ``start``, as ``nls`` in ``fOptimSingleE0`` (start 2, 200).

    Levenberg-Marquardt with the analytic Jacobian (numba core), at most
    ``max_iterations`` accepted steps (``nls``'s ``maxiter``: 50 by default,
    20 in ``partGLEstimateTempSensInBoundsE0Only``), converged when a step
    changes the parameters by less than 1e-10 relative or the cost by less
    than 1e-14 relative: the minimum ``nls`` reaches, to well below its own
    1e-5 convergence test.

    Returns the estimates, their standard errors (residual variance over n − 2
    degrees of freedom, as ``summary.nls``) and the residuals; NaN when the
    fit fails to converge in ``max_iterations`` or its curvature is singular
    (REddyProc catches nls's error and reports NA).
    """
    nan2 = np.full(2, np.nan)
    nee = np.ascontiguousarray(nee, dtype=float)
    x = 1.0 / (t_ref_k - T0_LLOYD_TAYLOR) - 1.0 / (np.asarray(temp_k, dtype=float) - T0_LLOYD_TAYLOR)
    if nee.size <= 2:
        return nan2, nan2, np.full(nee.size, np.nan)
    rref, e0, ssr, a11, a12, a22, ok = _lloyd_taylor_lm(nee, x, float(start[0]), float(start[1]), max_iterations)
    det = a11 * a22 - a12 * a12
    # collinear columns of the Jacobian (no temperature range): nls stops with a singular gradient
    if not (ok and det > 1e-12 * a11 * a22 and np.isfinite(det)):
        return nan2, nan2, np.full(nee.size, np.nan)
    variance = ssr / (nee.size - 2)
    sd = np.sqrt(np.array([a22, a11]) / det * variance)
    params = np.array([rref, e0])
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(sd))):
        return nan2, nan2, np.full(nee.size, np.nan)
    return params, sd, nee - lloyd_taylor(rref, e0, temp_k, t_ref_k)


def fit_e0_trimmed(nee: np.ndarray, temp_k: np.ndarray, t_ref_k: float, trim_percent: float) -> dict[str, float]:
    """E0 of one window: a fit, the residuals trimmed to their quantiles, a second fit (``fOptimSingleE0``)."""
    params, sd, resid = fit_lloyd_taylor(nee, temp_k, t_ref_k)
    out = {"R_ref": params[0], "R_ref_SD": sd[0], "E_0": params[1], "E_0_SD": sd[1]}
    out["E_0_trim"] = out["E_0_trim_SD"] = np.nan
    if np.isfinite(params[1]):
        low, high = np.quantile(resid, [trim_percent / 100, 1 - trim_percent / 100])  # R's type 7
        keep = (resid >= low) & (resid <= high)
        trimmed, trimmed_sd, _ = fit_lloyd_taylor(nee[keep], temp_k[keep], t_ref_k)
        out["E_0_trim"], out["E_0_trim_SD"] = trimmed[1], trimmed_sd[1]
    return out


def e0_short_term(
    night_nee: np.ndarray, temp_c: np.ndarray, days: np.ndarray, options: NightTimeOptions
) -> tuple[float, pd.DataFrame]:
    """Temperature sensitivity E0 [K] from short windows (``fRegrE0fromShortTerm``).

    Returns E0 (NaN when fewer than ``n_best`` windows gave a valid
    estimate) and the table of fitted windows.
    """
    half, t_ref_k = options.e0_window_days, KELVIN + options.t_ref
    usable = np.isfinite(night_nee) & np.isfinite(temp_c)
    rows = []
    for middle in range(half + 1, int(days.max()) + 1, options.e0_step_days):
        in_window = usable & (days >= middle - half) & (days <= middle + half)
        nee, temp_k = night_nee[in_window], temp_c[in_window] + KELVIN
        t_range = np.ptp(temp_k) if nee.size else 0.0
        if nee.size > 6 and t_range >= options.temp_range:
            fit = fit_e0_trimmed(nee, temp_k, t_ref_k, options.trim_percent)
            rows.append({"start": middle - half, "end": middle + half, "n": nee.size, "t_range": t_range, **fit})
    table = pd.DataFrame(
        rows, columns=["start", "end", "n", "t_range", "R_ref", "R_ref_SD", "E_0", "E_0_SD", "E_0_trim", "E_0_trim_SD"]
    )
    valid = (table["E_0_trim"] - table["E_0_trim_SD"] > options.e0_min) & (
        table["E_0_trim"] + table["E_0_trim_SD"] < options.e0_max
    )
    table["valid"] = valid
    best = table[valid].sort_values("E_0_trim_SD", kind="stable").head(options.n_best)
    if len(best) < options.n_best:
        return np.nan, table
    return round(float(best["E_0_trim"].mean()), 2), table


def rref_series(
    night_nee: np.ndarray, temp_c: np.ndarray, e0: float, days: np.ndarray, options: NightTimeOptions
) -> tuple[np.ndarray, pd.DataFrame]:
    """Reference respiration R_ref of every record [µmol m-2 s-1] with E0 fixed (``sRegrRref``).

    Returns the interpolated series (NaN everywhere when no window gave an
    estimate) and the table of windows.
    """
    half, t_ref_k = options.rref_window_days, KELVIN + options.t_ref
    usable = np.isfinite(night_nee) & np.isfinite(temp_c)
    rows = []
    for middle in range(half + 1, int(days.max()) + 1, options.rref_step_days):
        in_window = usable & (days >= middle - half) & (days <= middle + half)
        if in_window.sum() <= 2:
            continue
        index = np.flatnonzero(in_window)
        nee = night_nee[index]
        x = lloyd_taylor(1.0, e0, temp_c[index] + KELVIN, t_ref_k)
        slope = float(x @ nee / (x @ x))
        sd = float(np.sqrt(((nee - slope * x) ** 2).sum() / (nee.size - 1) / (x @ x)))
        # R: round(mean(which(...))) on 1-based indices, half to even as numpy rounds
        at = int(np.round(np.mean(index + 1))) - 1
        rows.append(
            {"start": middle - half, "end": middle + half, "n": nee.size, "record": at, "R_ref": slope, "R_ref_SD": sd}
        )
    table = pd.DataFrame(rows, columns=["start", "end", "n", "record", "R_ref", "R_ref_SD"])
    ok = table[table["R_ref"] >= 0]
    rref = np.full(night_nee.size, np.nan)
    if len(ok):
        anchors = ok.drop_duplicates("record", keep="last")  # R assigns in order: the later window wins
        rref = np.interp(np.arange(night_nee.size), anchors["record"].to_numpy(), anchors["R_ref"].to_numpy())
    return rref, table


def partition_nighttime(
    nee_f: np.ndarray,
    nee_fqc: np.ndarray,
    temp_f: np.ndarray,
    temp_fqc: np.ndarray,
    sw_in: np.ndarray,
    potential_sw_in: np.ndarray,
    n_per_day: int,
    options: NightTimeOptions = NightTimeOptions(),
) -> dict:
    """Night-time partitioning of one site's record (``sMRFluxPartition``).

    Parameters
    ----------
    nee_f, nee_fqc : numpy.ndarray
        Gap-filled NEE [µmol m-2 s-1] and its fill quality (0 measured).
    temp_f, temp_fqc : numpy.ndarray
        Gap-filled temperature [degC] and its fill quality (0 measured).
    sw_in : numpy.ndarray
        Measured global radiation [W m-2] (not filled).
    potential_sw_in : numpy.ndarray
        Potential radiation [W m-2] (:func:`uflux_xr.core.solar.potential_radiation`).
    n_per_day : int
        Records per day.
    options : NightTimeOptions

    Returns
    -------
    dict
        ``night_nee``, ``e0`` [K], ``rref``, ``reco``, ``gpp`` [µmol m-2 s-1],
        ``e0_windows`` and ``rref_windows`` (tables) and ``notes``.

    Raises
    ------
    PartitioningError
        When fewer than ``n_best`` windows give a valid E0.
    """
    measured_nee = np.where(nee_fqc == 0, nee_f, np.nan)
    with np.errstate(invalid="ignore"):
        is_night = (sw_in <= options.night_sw_in) & (potential_sw_in == 0)  # NaN radiation: not night
    night_nee = np.where(is_night, measured_nee, np.nan)
    measured_temp = np.where(temp_fqc == 0, temp_f, np.nan)
    days = day_counter(nee_f.size, n_per_day)
    if options.fixed_e0 is not None:
        e0, e0_table = float(options.fixed_e0), pd.DataFrame()
    else:
        e0, e0_table = e0_short_term(night_nee, measured_temp, days, options)
        if not np.isfinite(e0):
            n_valid = int(e0_table["valid"].sum()) if len(e0_table) else 0
            raise PartitioningError(
                f"night-time partitioning: only {n_valid} of {len(e0_table)} fitted E0 windows are valid "
                f"({np.isfinite(night_nee).sum()} night records), {options.n_best} needed. Windows need more "
                f"than 6 night records and a temperature range of {options.temp_range} K; try temp_range=3 "
                "(REddyProc's advice) or fixed_e0"
            )
    rref, rref_table = rref_series(night_nee, measured_temp, e0, days, options)
    reco = lloyd_taylor(rref, e0, temp_f + KELVIN, KELVIN + options.t_ref)
    notes = []
    dropped = int((rref_table["R_ref"] < 0).sum()) if len(rref_table) else 0
    if dropped:
        notes.append(f"{dropped} R_ref windows with a negative estimate were dropped")
    if not np.isfinite(rref).any():
        notes.append("no R_ref window had more than 2 night records: RECO and GPP are missing")
    return {
        "night_nee": night_nee,
        "e0": e0,
        "rref": rref,
        "reco": reco,
        "gpp": reco - nee_f,
        "e0_windows": e0_table,
        "rref_windows": rref_table,
        "notes": notes,
    }
