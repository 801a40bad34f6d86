"""Numba core of the light-response fit of the day-time partitioning (REddyProc's ``optimLRC`` cost).

The cost of ``computeCost`` with Lasslop's priors is a sum of squares: the
misfit of NEP weighted by the NEE uncertainty, plus the optimised parameters'
distances from their priors over the prior SDs.  Levenberg-Marquardt
minimises it with the analytic Jacobian, to a gradient below 1e-6 (scipy
BFGS's ``gtol``, which earlier versions ran) or no further decrease.
REddyProc runs R's BFGS (``optim``), stopping at a relative improvement of
1e-3 (``LRCFitConvergenceTolerance``); where the window constrains the
parameters all reach the same minimum (:mod:`uflux_xr.site.partition.daytime`
says where they part).

Parameters are ``theta = (k [hPa-1], β [µmol m-2 s-1], α, R_ref
[µmol m-2 s-1], E0 [K])``; ``free`` holds the indices optimised (a subset of
0–3: E0 is fixed in these fits).
"""

from __future__ import annotations

import numba
import numpy as np

from uflux_xr.core.constants import KELVIN
from uflux_xr.site.partition.nighttime import T0_LLOYD_TAYLOR

VPD0 = 10.0  # [hPa], Lasslop et al. (2010)
T_REF_K = KELVIN + 15.0
MAX_ITERATIONS = 200


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _normal_equations(theta, free, rg, vpd, lloyd_taylor, flux, sd_flux, prior, prior_sd, jtj, jtr):
    """Cost, and in place J'J (p, p) and J'r (p) of the weighted residuals (records, then priors).

    ``lloyd_taylor`` is RECO / R_ref of each record, fixed during a fit as E0 is.
    """
    n, p = rg.size, free.size
    k, beta, alpha, rref = theta[0], theta[1], theta[2], theta[3]
    jtj[:, :] = 0.0
    jtr[:] = 0.0
    row = np.empty(p)
    cost = 0.0
    for i in range(n):
        use_vpd = k != 0 and vpd[i] > VPD0
        decay = np.exp(-k * (vpd[i] - VPD0)) if use_vpd else 1.0
        amax = beta * decay
        denom = alpha * rg[i] + amax
        gpp = alpha * amax * rg[i] / denom
        d_amax = (alpha * rg[i]) ** 2 / denom**2
        lt = lloyd_taylor[i]
        r = (gpp - rref * lt - flux[i]) / sd_flux[i]
        cost += r * r
        for c in range(p):
            j = free[c]
            if j == 0:
                d = d_amax * (-beta * (vpd[i] - VPD0) * decay) if use_vpd else 0.0
            elif j == 1:
                d = d_amax * decay
            elif j == 2:
                d = amax**2 * rg[i] / denom**2
            else:
                d = -lt
            row[c] = d / sd_flux[i]
        for c in range(p):
            jtr[c] += row[c] * r
            for c2 in range(c + 1):
                jtj[c, c2] += row[c] * row[c2]
    for c in range(p):
        j = free[c]
        r = (theta[j] - prior[j]) / prior_sd[j]
        cost += r * r
        jtr[c] += r / prior_sd[j]
        jtj[c, c] += 1.0 / prior_sd[j] ** 2
    for c in range(p):
        for c2 in range(c + 1, p):
            jtj[c, c2] = jtj[c2, c]
    return cost


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _solve(a, b):
    """Solution of the small system ``a x = b`` by Gaussian elimination with partial pivoting; NaN if singular."""
    p = b.size
    m = a.copy()
    x = b.copy()
    for col in range(p):
        pivot = col
        for row in range(col + 1, p):
            if abs(m[row, col]) > abs(m[pivot, col]):
                pivot = row
        if not m[pivot, col] != 0.0:
            x[:] = np.nan
            return x
        if pivot != col:
            for c in range(p):
                m[col, c], m[pivot, c] = m[pivot, c], m[col, c]
            x[col], x[pivot] = x[pivot], x[col]
        for row in range(col + 1, p):
            f = m[row, col] / m[col, col]
            for c in range(col, p):
                m[row, c] -= f * m[col, c]
            x[row] -= f * x[col]
    for col in range(p - 1, -1, -1):
        s = x[col]
        for c in range(col + 1, p):
            s -= m[col, c] * x[c]
        x[col] = s / m[col, col]
    return x


@numba.njit(nogil=True, cache=True, error_model="numpy")
def fit_lrc(theta0, free, rg, vpd, temp_c, flux, sd_flux, prior, prior_sd, max_iter=MAX_ITERATIONS):
    """Minimise the cost from ``theta0`` over the parameters ``free``.

    A Levenberg-Marquardt of its own rather than the night-time fit's: it stands in for ``optim``'s BFGS
    (REddyProc's ``partGLFitLRC``), with its stopping rule; see
    :func:`uflux_xr.site.partition.nighttime._lloyd_taylor_lm` for why the two are kept apart.

    Parameters
    ----------
    theta0 : array (5,)
        Start; parameters outside ``free`` stay as they are.
    free : int array
        Indices of the optimised parameters (subset of 0–3).
    rg, vpd, temp_c : arrays (n,)
        Radiation [W m-2], VPD [hPa], temperature [degC].
    flux, sd_flux : arrays (n,)
        NEP (−NEE) and its SD [µmol m-2 s-1].
    prior, prior_sd : arrays
        Priors of the parameters and their SDs (first four used).
    max_iter : int
        Most iterations.

    Returns
    -------
    theta : array (5,)
    cost : float
    converged : bool
        The cost's gradient is below 1e-6 in every parameter (BFGS's
        ``gtol``), a step changes it by less than 1e-12 relative, or no step
        decreases it at any damping; False after ``max_iter`` steps or on a
        non-finite cost or step.
    """
    p = free.size
    theta = theta0.copy()
    jtj, jtr = np.empty((p, p)), np.empty(p)
    jtj_new, jtr_new = np.empty((p, p)), np.empty(p)
    lt = np.exp(theta[4] * (1.0 / (T_REF_K - T0_LLOYD_TAYLOR) - 1.0 / (temp_c + KELVIN - T0_LLOYD_TAYLOR)))
    cost = _normal_equations(theta, free, rg, vpd, lt, flux, sd_flux, prior, prior_sd, jtj, jtr)
    if not np.isfinite(cost):
        return theta, cost, False
    damping = 1e-3
    scaled = np.empty((p, p))
    for _ in range(max_iter):
        scaled[:, :] = jtj
        for c in range(p):
            scaled[c, c] += damping * jtj[c, c]
        step = _solve(scaled, -jtr)
        if not np.all(np.isfinite(step)):
            return theta, cost, False
        trial = theta.copy()
        for c in range(p):
            trial[free[c]] += step[c]
        cost_new = _normal_equations(trial, free, rg, vpd, lt, flux, sd_flux, prior, prior_sd, jtj_new, jtr_new)
        better = np.isfinite(cost_new) and cost_new <= cost
        # the cost's gradient is 2 J'r
        small = np.all(np.abs(2.0 * jtr_new) <= 1e-6) or abs(cost - cost_new) <= 1e-12 * (1 + cost)
        if better:
            theta = trial
            cost = cost_new
            jtj, jtj_new = jtj_new, jtj
            jtr, jtr_new = jtr_new, jtr
            damping /= 3
            if small:
                return theta, cost, True
        else:
            damping *= 4
            if damping > 1e12:
                # no step decreases the cost: a minimum to the precision of the arithmetic
                # (scipy's BFGS reports it as a loss of precision, status 2, which counted as converged)
                return theta, cost, True
    return theta, cost, False


@numba.njit(nogil=True, cache=True, error_model="numpy")
def fit_lrc_samples(starts, free, rg, vpd, temp_c, flux, sd_flux, prior, prior_sd, max_iter=MAX_ITERATIONS):
    """:func:`fit_lrc` for each row of ``starts`` (B, 5) and of the data arrays (B, n): thetas and success."""
    b = starts.shape[0]
    thetas = np.empty_like(starts)
    ok = np.zeros(b, np.bool_)
    for s in range(b):
        theta, _, converged = fit_lrc(
            starts[s], free, rg[s], vpd[s], temp_c[s], flux[s], sd_flux[s], prior, prior_sd, max_iter
        )
        thetas[s] = theta
        ok[s] = converged
        for c in range(free.size):
            ok[s] &= np.isfinite(theta[free[c]])
    return thetas, ok
