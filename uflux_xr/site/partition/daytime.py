"""Day-time partitioning of NEE (Lasslop et al. 2010) as REddyProc runs it.

The rules follow REddyProc's ``R/PartitioningLasslop10.R``,
``R/PartitioningLasslop10Nighttime.R`` and ``R/LRC_base.R`` (bgctw/REddyProc
1.3, ``partitionNEEGL`` with ``partGLControl()`` defaults and the rectangular
light response):

- Records: NEE measured (quality 0); night = radiation ≤ 4 W m-2 and potential
  radiation 0; day = radiation > 4 W m-2 and potential radiation > 0
  (``partGLExtractStandardData``).  NEE uncertainty: the MDS ``_fsd``, where
  missing 20 % of |NEE| but at least 0.7 (``replaceMissingSdByPercentage``).
- Windows (``applyWindows``): reference windows of 4 days every 2 days;
  window *w* is centred on the first record of day 2w + 3 (1-based), and a
  window of D days spans D/2 days either side of it.
- E0 (``partGLFitNightTimeTRespSens``): per 12-day night window, Lloyd–Taylor
  fitted with the reference temperature at the median night temperature,
  from R_ref = mean night NEE and E0 = the previous window's E0 (or 100);
  records at or below −1 °C are dropped when 12 others remain; at least 10
  records; E0 outside 50–400 K is no estimate.  Windows without one are
  refitted with 24 and then 48 days.  E0 is then smoothed across windows,
  year by year (REddyProc: a Gaussian process, ``mlegp``; here scikit-learn's
  Gaussian process with each estimate's variance as its nugget), or, with
  ``smooth_e0=False``, carried forward from the previous window.  R_ref at
  15 °C: least-squares slope through the origin on the 12-day window's night
  records (at least 3), at least 0, missing ones carried forward.
- Light response (``partGLFitLRCOneWindow``, ``fitLRC``, ``optimLRCBounds``):
  per 4-day window, day records with NEE, its SD, temperature, radiation and
  VPD (VPD dropped when fewer than 10 records have it), at least 10.  NEP =
  αβ'Rg/(αRg + β') − R_ref·LT(E0, T), β' = β·exp(−k(VPD − 10)) above 10 hPa.
  Cost: Σ((NEP − (−NEE))/σ)² with σ floored at its 30 % quantile, plus
  priors k 0.05 ± 50, β |q3 − q97| of NEE ± 600, α 0.1 ± 10, R_ref (night)
  ± 80; E0 fixed.  Three starts (β × 1, 1.3, 0.8); the lowest cost wins.
  k < 0: refit with k = 0; α > 0.22: refit with α of the last good window;
  α, R_ref or β < 0, or β ≥ 250: no estimate.  Uncertainty by 30 bootstrap
  samples with E0 drawn from N(E0, sd E0) bounded to 50–400 (fewer than 80 %
  converging: no estimate), or from the curvature when ``n_boot=0``; β > 100
  with sd β ≥ β: no estimate.  Every fit, central and bootstrap, is a
  Levenberg-Marquardt in numba on this cost (:mod:`lrc_fit`); REddyProc runs
  R's BFGS (``optim``).  Where the window constrains the parameters both
  reach the same minimum: on DE-Tha 1998 (``n_boot=0``), of 169 windows 122
  are fitted with it and with scipy's BFGS (which earlier versions ran), 120
  of them agreeing to 1e-4 relative in every parameter.  In windows without
  a light response (winter: α near 0, β free along a flat valley) the two
  stop at different points: 2 windows end elsewhere and 5 pass the bounds
  with one and not the other (CH-Dav 2013–2022 annual day-time GPP then
  moves by −0.7 to +2.1 points against REddyProc; benchmarks/README.md).
  REddyProc stops BFGS when the cost improves by less than 1e-3 relative
  (``LRCFitConvergenceTolerance``); these fits go to the minimum.
- Fluxes (``partGLInterpolateFluxes``): each window's parameters belong to the
  mean index of its valid records; every record takes the two nearest
  parameter sets weighted by distance, predicted with the filled drivers
  (temperature floored at −40 °C).  Records without VPD take a refit that
  neglects VPD.  Quality: 0 good, 1 parameters refitted with some fixed, 2
  next estimate more than 14 days away.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace

import numpy as np

from uflux_xr.core.constants import KELVIN
from uflux_xr.site.partition.lrc_fit import T_REF_K, VPD0, fit_lrc, fit_lrc_samples
from uflux_xr.site.partition.nighttime import T0_LLOYD_TAYLOR, PartitioningError, fit_lloyd_taylor, lloyd_taylor

log = logging.getLogger(__name__)

PRIOR_SD = np.array([50.0, 600.0, 10.0, 80.0])  # k, beta, alpha, R_ref (isLasslopPriorsApplied)
ALPHA_DEFAULT = 0.22  # optimLRCBounds: alpha of the "last good window" before there is one


@dataclass(frozen=True)
class DayTimeOptions:
    """Settings of the day-time partitioning (REddyProc's ``partGLControl()`` defaults).

    Attributes
    ----------
    n_boot : int
        Bootstrap samples for the parameter uncertainty; 0 uses the curvature
        of the fit (faster).
    min_records : int
        Fewest records of a window (``minNRecInDayWindow``).
    smooth_e0 : bool
        Smooth E0 across windows (REddyProc's default); False carries the
        previous window's estimate forward (Lasslop's original).
    neglect_vpd : bool
        Fit without the VPD limitation (``isNeglectVPDEffect``).
    day_sw_in : float
        Radiation threshold between night and day [W m-2].
    seed : int
        Seed of the bootstrap.
    """

    n_boot: int = 30
    min_records: int = 10
    smooth_e0: bool = True
    neglect_vpd: bool = False
    day_sw_in: float = 4.0
    seed: int = 0


# --- window geometry (applyWindows) ----------------------------------------------------------------


def window_centres(n_records: int, n_per_day: int) -> np.ndarray:
    """0-based central record of each 4-day reference window, every 2 days."""
    n_days = int(np.ceil(n_records / n_per_day))
    start_days = np.arange(1, n_days - 2 + 1e-9, 2)
    return ((start_days - 1 + 2) * n_per_day).astype(int)


def window_slices(centres: np.ndarray, n_records: int, n_per_day: int, days: int) -> list[slice]:
    """Record ranges of windows of ``days`` days around each centre."""
    half = days * n_per_day // 2
    return [slice(max(0, c - half), min(n_records, c + half)) for c in centres]


# --- night-time temperature sensitivity ------------------------------------------------------------


def _valid_night(nee, temp, is_night) -> np.ndarray:
    valid = is_night & np.isfinite(nee) & np.isfinite(temp)
    freezing = valid & (temp <= -1)
    if (valid & ~freezing).sum() >= 12:
        valid &= ~freezing
    return valid


def _fit_e0_window(nee, temp_c, prev_e0: float) -> tuple[float, float]:
    """E0 and its SD of one night window (``partGLEstimateTempSensInBoundsE0Only``); NaN outside 50-400 K."""
    start = (float(np.mean(nee)), prev_e0 if np.isfinite(prev_e0) else 100.0)
    params, sd, _ = fit_lloyd_taylor(nee, temp_c + KELVIN, np.median(temp_c) + KELVIN, start, max_iterations=20)
    if not np.isfinite(params[1]) or params[1] < 50 or params[1] > 400:
        return np.nan, np.nan
    return float(params[1]), float(sd[1])


def _smooth_e0(centres, e0, sd, day_start) -> tuple[np.ndarray, np.ndarray]:
    """Smooth E0 over time one year at a time (``partGLSmoothTempSens``)."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    e0 = e0.copy()
    e0[1:][np.diff(e0) == 0] = np.nan  # a repeated value is a carried estimate, not a new one
    out_e0, out_sd = np.full(e0.size, np.nan), np.full(e0.size, np.nan)
    years = np.ceil(day_start / 365)
    for year in np.unique(years):
        in_year = years == year
        finite = in_year & np.isfinite(e0)
        if not finite.any():
            continue
        x = centres[finite].astype(float)[:, None]
        mean = e0[finite].mean()
        if finite.sum() == 1:
            out_e0[in_year], out_sd[in_year] = mean, sd[finite][0]
            continue
        kernel = ConstantKernel(np.var(e0[finite]) + 1.0, (1e-2, 1e6)) * RBF(
            max(np.ptp(x) / 4, 1.0), (1.0, max(np.ptp(x) * 10, 10.0))
        )
        gp = GaussianProcessRegressor(kernel, alpha=np.maximum(sd[finite], 1e-6) ** 2, normalize_y=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp.fit(x, e0[finite] - mean)
        fit, se = gp.predict(centres[in_year].astype(float)[:, None], return_std=True)
        nugget = np.full(in_year.sum(), np.quantile(sd[finite], 0.9))
        nugget[np.isfinite(e0[in_year])] = sd[finite]
        out_e0[in_year], out_sd[in_year] = fit + mean, se + nugget
    missing = ~np.isfinite(out_e0)
    if missing.all():
        raise PartitioningError("day-time partitioning: no respiration-temperature relationship in any year")
    if missing.any():  # a year without estimates takes the others' mean
        out_e0[missing] = out_e0[~missing].mean()
        out_sd[missing] = np.quantile(out_sd[~missing], 0.9) * 1.5
    return out_e0, out_sd


def _carry_forward(values: np.ndarray, first: float) -> np.ndarray:
    out = values.copy()
    if out.size and not np.isfinite(out[0]):
        out[0] = first
    for i in range(1, out.size):
        if not np.isfinite(out[i]):
            out[i] = out[i - 1]
    return out


def night_temperature_sensitivity(nee, temp_c, is_night, n_per_day: int, options: DayTimeOptions) -> dict:
    """E0 [K], its SD and R_ref at 15 °C [µmol m-2 s-1] per window from night records."""
    n = nee.size
    centres = window_centres(n, n_per_day)
    valid_all = is_night & np.isfinite(nee) & np.isfinite(temp_c)

    def night_records(days: int) -> list[np.ndarray]:
        """Indices of each window's valid night records; too few for a fit: empty."""
        records = []
        for window in window_slices(centres, n, n_per_day, days):
            idx = np.flatnonzero(_valid_night(nee[window], temp_c[window], valid_all[window])) + window.start
            records.append(idx if idx.size >= options.min_records else idx[:0])
        return records

    def fit_windows(records: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        e0, sd, prev = np.full(centres.size, np.nan), np.full(centres.size, np.nan), np.nan
        for w, idx in enumerate(records):
            if idx.size:
                e0[w], sd[w] = _fit_e0_window(nee[idx], temp_c[idx], prev)
            prev = e0[w]  # applyWindows passes on every window's result, also a failed one
        return e0, sd

    records12 = night_records(12)
    e0, sd = fit_windows(records12)
    for days in (24, 48):
        missing = ~np.isfinite(e0)
        if not missing.any():
            break
        e0_ext, sd_ext = fit_windows(night_records(days))
        e0[missing], sd[missing] = e0_ext[missing], sd_ext[missing]
    n_finite = int(np.isfinite(e0).sum())
    if n_finite < 5 and n_finite < 0.1 * centres.size:
        raise PartitioningError(
            f"day-time partitioning: a temperature sensitivity was found for {n_finite} of {centres.size} "
            f"night windows ({int(valid_all.sum())} night records); REddyProc stops below 5 and 10 %"
        )
    day_start = np.maximum(1, (centres // n_per_day) - 6 + 1)
    if options.smooth_e0:
        e0_s, sd_s = _smooth_e0(centres, e0, sd, day_start)
    else:
        sd_s = np.where(np.isfinite(e0), sd, np.nanquantile(sd, 0.9))
        e0_s = _carry_forward(e0, np.nanmedian(e0))
    rref = np.full(centres.size, np.nan)
    for w, idx in enumerate(records12):
        if idx.size:
            x = lloyd_taylor(1.0, e0_s[w], temp_c[idx] + KELVIN, T_REF_K)
            rref[w] = max(0.0, float(x @ nee[idx] / (x @ x)))
    finite = np.isfinite(rref)
    if not finite.any():
        raise PartitioningError("day-time partitioning: no window has 10 valid night records for R_ref")
    rref = _carry_forward(rref, rref[finite][0])
    return {"centres": centres, "e0": e0_s, "e0_sd": sd_s, "rref": rref, "e0_fit": e0}


# --- light response curve --------------------------------------------------------------------------


def lrc_terms(theta, rg, vpd, temp_c):
    """GPP, RECO [µmol m-2 s-1] and their derivatives in (k, β, α) and (R_ref, E0).

    ``theta`` = (k [hPa-1], β [µmol m-2 s-1], α, R_ref [µmol m-2 s-1], E0 [K]);
    rows of a 2-D ``theta`` go with records.  The VPD limitation acts where
    k ≠ 0 and VPD > 10 hPa (``predictLRC`` with ``fixVPD = (k == 0)``).
    """
    theta = np.asarray(theta, dtype=float)
    k, beta, alpha, rref, e0 = (theta[..., i] for i in range(5))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        use_vpd = (k != 0) & (vpd > VPD0)
        decay = np.where(use_vpd, np.exp(-k * (vpd - VPD0)), 1.0)
        amax = beta * decay
        denom = alpha * rg + amax
        gpp = alpha * amax * rg / denom
        d_amax = (alpha * rg) ** 2 / denom**2
        d_gpp = np.stack(
            [d_amax * np.where(use_vpd, -beta * (vpd - VPD0) * decay, 0.0), d_amax * decay, amax**2 * rg / denom**2]
        )
        x = 1.0 / (T_REF_K - T0_LLOYD_TAYLOR) - 1.0 / (temp_c + KELVIN - T0_LLOYD_TAYLOR)
        lt = np.exp(e0 * x)
    return gpp, rref * lt, d_gpp, np.stack([lt, rref * lt * x])


def _optimise(theta0, i_opt, data, prior, prior_sd):
    """Minimise the cost from ``theta0`` over ``i_opt`` (``optimLRC``; :func:`lrc_fit.fit_lrc`)."""
    i_opt = np.asarray(i_opt, dtype=np.int64)
    theta, cost, ok = fit_lrc(np.asarray(theta0, dtype=float), i_opt, *data, prior, prior_sd)
    ok = bool(ok) and bool(np.all(np.isfinite(theta[i_opt])))
    return {"theta": theta, "i_opt": i_opt, "cost": float(cost), "ok": ok}


def _optimise_samples(theta0, i_opt, samples, prior, prior_sd):
    """Minimise the cost for each bootstrap sample (rows of ``theta0`` (B, 5) and of the arrays in ``samples``).

    Returns the fitted parameters (B, 5) and whether each converged to finite values.
    """
    i_opt = np.asarray(i_opt, dtype=np.int64)
    rows = tuple(np.ascontiguousarray(a, dtype=float) for a in samples)
    return fit_lrc_samples(np.asarray(theta0, dtype=float), i_opt, *rows, prior, prior_sd)


def _curvature_covariance(theta, i_opt, data, prior_sd):
    """Inverse of the cost's Gauss-Newton Hessian (REddyProc: ``solve(hessian)`` of ``optim``)."""
    rg, vpd, temp_c, _, sd_flux = data
    _, _, d_gpp, d_reco = lrc_terms(theta, rg, vpd, temp_c)
    jac = np.concatenate([d_gpp, -d_reco[:1]])[i_opt] / sd_flux
    hess = 2 * jac @ jac.T + np.diag(2 / prior_sd[i_opt] ** 2)
    try:
        return np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return None


def _i_opt(fixed_vpd: bool, fixed_alpha: bool) -> list[int]:
    return [i for i in range(4) if not (i == 0 and fixed_vpd) and not (i == 2 and fixed_alpha)]


def _optimise_bounded(theta0, data, prior, prior_sd, last_alpha: float, neglect_vpd: bool):
    """``optimLRCBounds``: refit with k = 0 or α of the last good window when they leave their bounds."""
    vpd = data[1]
    fixed_vpd = neglect_vpd or not np.any(vpd >= VPD0)
    fixed_alpha = False
    theta = theta0.copy()
    if neglect_vpd:
        theta[0] = 0.0
    res = _optimise(theta, _i_opt(fixed_vpd, fixed_alpha), data, prior, prior_sd)

    def alpha_too_high(r):
        return (not np.isfinite(r["theta"][2]) or r["theta"][2] > 0.22) and np.isfinite(last_alpha)

    def k_negative(r):
        return not np.isfinite(r["theta"][0]) or r["theta"][0] < 0

    if k_negative(res):
        fixed_vpd, theta[0] = True, 0.0
        res = _optimise(theta, _i_opt(fixed_vpd, fixed_alpha), data, prior, prior_sd)
        if alpha_too_high(res):
            fixed_alpha, theta[2] = True, last_alpha
            res = _optimise(theta, _i_opt(fixed_vpd, fixed_alpha), data, prior, prior_sd)
    elif alpha_too_high(res):
        fixed_alpha, theta[2] = True, last_alpha
        res = _optimise(theta, _i_opt(fixed_vpd, fixed_alpha), data, prior, prior_sd)
        if k_negative(res):
            fixed_vpd, theta[0] = True, 0.0
            res = _optimise(theta, _i_opt(fixed_vpd, fixed_alpha), data, prior, prior_sd)
    k, beta, alpha, rref = res["theta"][:4]
    if not res["ok"] or alpha < 0 or rref < 0 or beta < 0 or beta >= 250:
        res["ok"] = False
    return res


def fit_light_response(nee, sd_nee, rg, vpd, temp_c, e0, e0_sd, rref_night, last_alpha, rng, options: DayTimeOptions):
    """Fit one window (``fitLRC``); None when no estimate passes the checks."""
    minimum = np.quantile(sd_nee, 0.3)
    if minimum == 0:
        raise PartitioningError("day-time partitioning: too many zero NEE uncertainties (the _fsd of MDS)")
    sd_flux = np.maximum(sd_nee, minimum)
    data = (rg, vpd, temp_c, -nee, sd_flux)
    beta0 = abs(np.quantile(nee, 0.03) - np.quantile(nee, 0.97))
    prior = np.array([0.05, beta0, 0.1, rref_night, e0])
    alpha_last = last_alpha if np.isfinite(last_alpha) else ALPHA_DEFAULT
    hessian = options.n_boot == 0
    best = None
    for factor in (1.0, 1.3, 0.8):
        start = prior.copy()
        start[1] = beta0 * factor
        res = _optimise_bounded(start, data, prior, PRIOR_SD, alpha_last, options.neglect_vpd)
        if res["ok"] and (best is None or res["cost"] < best["cost"]):
            best = res
    if best is None:
        return None
    theta, i_opt = best["theta"], best["i_opt"]
    if hessian:
        cov4 = _curvature_covariance(theta, i_opt, data, PRIOR_SD)  # of the best start only
        if cov4 is None or np.any(np.diag(cov4) < 0):
            return None
        sd = np.full(5, np.nan)
        sd[i_opt] = np.sqrt(np.diag(cov4))
        sd[4] = e0_sd
        cov = np.zeros((5, 5))
        cov[np.ix_(i_opt, i_opt)] = cov4
        cov[4, 4] = e0_sd**2
    else:
        e0_draws = np.clip(rng.normal(theta[4], e0_sd, options.n_boot), 50, 400)
        picks = np.stack([rng.integers(0, nee.size, nee.size) for _ in range(options.n_boot)])
        starts = np.repeat(theta[None, :], options.n_boot, axis=0)
        starts[:, 4] = e0_draws
        boots, ok = _optimise_samples(starts, i_opt, tuple(a[picks] for a in data), prior, PRIOR_SD)
        boots[~ok] = np.nan
        finite = np.isfinite(boots[:, 0])
        if finite.sum() < 0.8 * options.n_boot:
            return None
        cov = np.cov(boots[finite], rowvar=False)
        sd = np.full(5, np.nan)
        sd[i_opt] = np.sqrt(np.diag(cov)[i_opt])
        sd[4] = np.sqrt(cov[4, 4])
    if theta[1] > 100 and sd[1] >= theta[1]:  # isParameterInBounds
        return None
    return {"theta": theta, "sd": sd, "cov": cov, "refitted": len(i_opt) < 4}


# --- the whole record ------------------------------------------------------------------------------


def _interpolation(anchors: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the parameter set before and after each record and the weight of the one before."""
    rec = np.arange(n)
    after = np.clip(np.searchsorted(anchors, rec, side="left"), 0, anchors.size - 1)
    before = np.clip(np.searchsorted(anchors, rec, side="right") - 1, 0, anchors.size - 1)
    span = (anchors[after] - anchors[before]).astype(float)
    w_before = np.where(span > 0, (anchors[after] - rec) / np.where(span > 0, span, 1), 0.5)
    w_before = np.where(before == after, 0.5, w_before)
    return before, after, w_before


def _prediction_variance(d_gpp, d_reco, cov):
    """Delta-method variances of GPP and RECO from their derivatives (:func:`lrc_terms`) and the covariances."""
    var_gpp = np.einsum("ir,rij,jr->r", d_gpp, cov[:, :3, :3], d_gpp)
    var_reco = np.einsum("ir,rij,jr->r", d_reco, cov[:, 3:, 3:], d_reco)
    return var_gpp, var_reco


def _fit_windows(nee, sd_nee, rg, vpd, temp_c, is_day, sens, n_per_day, options: DayTimeOptions):
    """Light-response fits of every 4-day window with enough day records (``partGLFitLRCWindows``)."""
    n = nee.size
    rng = np.random.default_rng(options.seed)
    base = is_day & np.isfinite(nee) & np.isfinite(temp_c) & np.isfinite(rg) & np.isfinite(sd_nee)
    fits, last_alpha = [], np.nan
    for w, window in enumerate(window_slices(sens["centres"], n, n_per_day, 4)):
        valid = base[window] & (np.isfinite(vpd[window]) | options.neglect_vpd)
        use_neglect = options.neglect_vpd
        if valid.sum() < options.min_records:
            use_neglect, valid = True, base[window]
            if valid.sum() < options.min_records:
                continue
        idx = np.flatnonzero(valid) + window.start
        fit = fit_light_response(
            nee[idx],
            sd_nee[idx],
            rg[idx],
            np.where(np.isfinite(vpd[idx]), vpd[idx], 0.0),
            temp_c[idx],
            sens["e0"][w],
            sens["e0_sd"][w],
            sens["rref"][w],
            last_alpha,
            rng,
            replace(options, neglect_vpd=use_neglect),
        )
        if fit is None:
            continue
        last_alpha = fit["theta"][2]
        fits.append({**fit, "record": int(np.round(np.mean(idx + 1))) - 1, "centre": int(sens["centres"][w])})
    return fits


def _predict(fits, rg, vpd, temp_c, n, n_per_day):
    anchors_all = np.array([f["record"] for f in fits])
    _, first = np.unique(anchors_all, return_index=True)  # a repeated anchor keeps its first window
    fits = [fits[i] for i in np.sort(first)]
    anchors = np.array([f["record"] for f in fits])
    order = np.argsort(anchors, kind="stable")
    fits, anchors = [fits[i] for i in order], anchors[order]
    before, after, w_before = _interpolation(anchors, n)
    thetas = np.stack([f["theta"] for f in fits])
    covs = np.stack([f["cov"] for f in fits])
    temp = np.maximum(-40.0, temp_c)
    gpp_b, reco_b, *grad_b = lrc_terms(thetas[before], rg, vpd, temp)
    gpp_a, reco_a, *grad_a = lrc_terms(thetas[after], rg, vpd, temp)
    vg_b, vr_b = _prediction_variance(*grad_b, covs[before])
    vg_a, vr_a = _prediction_variance(*grad_a, covs[after])
    w_after = 1 - w_before
    d_before, d_after = anchors[before] - np.arange(n), anchors[after] - np.arange(n)
    distance = np.where(np.abs(d_before) <= np.abs(d_after), d_before, d_after)
    refitted = np.array([f["refitted"] for f in fits])
    quality = np.where(np.abs(d_before) <= np.abs(d_after), refitted[before], refitted[after]).astype(float)
    quality[np.abs(distance) > 14 * n_per_day] = 2
    return {
        "gpp": w_before * gpp_b + w_after * gpp_a,
        "reco": w_before * reco_b + w_after * reco_a,
        "gpp_sd": np.sqrt(w_before**2 * vg_b + w_after**2 * vg_a),
        "reco_sd": np.sqrt(w_before**2 * vr_b + w_after**2 * vr_a),
        "quality": quality,
    }


def partition_daytime(
    nee_f,
    nee_fqc,
    nee_fsd,
    temp_f,
    vpd_f,
    sw_in,
    sw_in_f,
    potential_sw_in,
    n_per_day: int,
    options: DayTimeOptions = DayTimeOptions(),
) -> dict:
    """Day-time partitioning of one site's record (``partitionNEEGL``).

    Parameters
    ----------
    nee_f, nee_fqc, nee_fsd : numpy.ndarray
        Gap-filled NEE [µmol m-2 s-1], its fill quality (0 measured) and SD
        [µmol m-2 s-1] (NaN allowed).
    temp_f : numpy.ndarray
        Filled temperature [degC].
    vpd_f : numpy.ndarray
        Filled VPD [hPa].
    sw_in, sw_in_f : numpy.ndarray
        Global radiation [W m-2]: as measured (the night/day split) and filled
        (fits and predictions; REddyProc's ``Rg_f``).
    potential_sw_in : numpy.ndarray
        Potential radiation [W m-2].
    n_per_day : int
        Records per day.
    options : DayTimeOptions

    Returns
    -------
    dict
        ``gpp``, ``reco``, ``gpp_sd``, ``reco_sd`` [µmol m-2 s-1],
        ``quality`` (0, 1, 2), ``parameters`` (one row per fitted window),
        ``e0`` [K] per reference window and ``notes``.
    """
    nee = np.where(nee_fqc == 0, nee_f, np.nan)
    sd_nee = np.where(np.isfinite(nee_fsd), nee_fsd, np.maximum(0.2 * np.abs(nee), 0.7))
    with np.errstate(invalid="ignore"):
        is_night = (sw_in <= options.day_sw_in) & (potential_sw_in <= 0)
        is_day = (sw_in > options.day_sw_in) & (potential_sw_in > 0)
    n = nee.size
    sens = night_temperature_sensitivity(nee, temp_f, is_night, n_per_day, options)
    fits = _fit_windows(nee, sd_nee, sw_in_f, vpd_f, temp_f, is_day, sens, n_per_day, options)
    if not fits:
        raise PartitioningError(
            f"day-time partitioning: no 4-day window could be fitted ({int((is_day & np.isfinite(nee)).sum())} "
            "measured day records)"
        )
    out = _predict(fits, sw_in_f, vpd_f, temp_f, n, n_per_day)
    notes = []
    no_vpd = ~np.isfinite(vpd_f)
    if no_vpd.any() and not options.neglect_vpd:
        refits = _fit_windows(
            nee, sd_nee, sw_in_f, vpd_f, temp_f, is_day, sens, n_per_day, replace(options, neglect_vpd=True)
        )
        if refits:
            again = _predict(refits, sw_in_f, np.where(no_vpd, 0.0, vpd_f), temp_f, n, n_per_day)
            for key in out:
                out[key] = np.where(no_vpd, again[key], out[key])
            notes.append(f"{int(no_vpd.sum())} records without VPD take a light response fitted without VPD")
    notes.append(f"{len(fits)} of {sens['centres'].size} light-response windows fitted")
    table = np.array([[f["centre"], f["record"], *f["theta"], *f["sd"]] for f in fits])
    return {**out, "parameters": table, "e0": sens["e0"], "notes": notes}
