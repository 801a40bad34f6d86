"""Agreement metrics between predictions P and observations O.

Pure numpy functions; pairs where either value is NaN are dropped first.
Definitions: bias = mean(P − O); R = Pearson; R² both as
squared Pearson and as Nash–Sutcliffe efficiency; slope of the OLS fit of P on
O; IOA = Willmott's (1981) index of agreement.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC_NAMES = ("n", "r", "r2", "nse", "rmse", "mae", "bias", "slope", "ioa")


def _valid_pairs(pred, obs) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=float).ravel()
    o = np.asarray(obs, dtype=float).ravel()
    if p.shape != o.shape:
        raise ValueError(f"predictions {p.shape} and observations {o.shape} differ in length")
    ok = np.isfinite(p) & np.isfinite(o)
    return p[ok], o[ok]


def bias(pred, obs) -> float:
    """Mean bias, mean(P − O) [units of the inputs]."""
    p, o = _valid_pairs(pred, obs)
    return float(np.mean(p - o)) if p.size else np.nan


def rmse(pred, obs) -> float:
    """Root-mean-square error [units of the inputs]."""
    p, o = _valid_pairs(pred, obs)
    return float(np.sqrt(np.mean((p - o) ** 2))) if p.size else np.nan


def mae(pred, obs) -> float:
    """Mean absolute error [units of the inputs]."""
    p, o = _valid_pairs(pred, obs)
    return float(np.mean(np.abs(p - o))) if p.size else np.nan


def pearson_r(pred, obs) -> float:
    """Pearson correlation coefficient R [-]; NaN when either series is constant."""
    p, o = _valid_pairs(pred, obs)
    if p.size < 2 or np.std(p) == 0 or np.std(o) == 0:
        return np.nan
    return float(np.corrcoef(p, o)[0, 1])


def nse(pred, obs) -> float:
    """Nash–Sutcliffe efficiency, 1 − Σ(P−O)² / Σ(O−Ō)² [-] (R² as 'explained variance')."""
    p, o = _valid_pairs(pred, obs)
    denom = np.sum((o - o.mean()) ** 2) if o.size else 0.0
    if denom == 0:
        return np.nan
    return float(1.0 - np.sum((p - o) ** 2) / denom)


def slope(pred, obs) -> float:
    """Slope of the ordinary least-squares regression of P on O [-]."""
    p, o = _valid_pairs(pred, obs)
    var_o = np.var(o) if o.size else 0.0
    if o.size < 2 or var_o == 0:
        return np.nan
    return float(np.mean((o - o.mean()) * (p - p.mean())) / var_o)


def ioa(pred, obs) -> float:
    """Willmott's index of agreement [-], ``1 − Σ(P−O)² / Σ(|P−Ō| + |O−Ō|)²``."""
    p, o = _valid_pairs(pred, obs)
    if not o.size:
        return np.nan
    denom = np.sum((np.abs(p - o.mean()) + np.abs(o - o.mean())) ** 2)
    return float(1.0 - np.sum((p - o) ** 2) / denom) if denom > 0 else np.nan


def all_metrics(pred, obs) -> dict[str, float]:
    """Every metric of :data:`METRIC_NAMES` as a dict; ``r2`` is the squared Pearson R."""
    p, o = _valid_pairs(pred, obs)
    r = pearson_r(p, o)
    return {
        "n": int(p.size),
        "r": r,
        "r2": r * r,
        "nse": nse(p, o),
        "rmse": rmse(p, o),
        "mae": mae(p, o),
        "bias": bias(p, o),
        "slope": slope(p, o),
        "ioa": ioa(p, o),
    }


def metrics_table(frame: pd.DataFrame, pred: str, obs: str, by: str | list[str] | None = None) -> pd.DataFrame:
    """Metrics of column ``pred`` against column ``obs``, overall or per group.

    Parameters
    ----------
    frame : pandas.DataFrame
        Table holding both columns (and the grouping columns).
    pred, obs : str
        Column names of predictions and observations.
    by : str or list of str, optional
        Grouping columns (e.g. ``"site"`` or ``"igbp"``); one row per group.
    """
    if by is None:
        return pd.DataFrame([all_metrics(frame[pred], frame[obs])])
    rows = {key: all_metrics(g[pred], g[obs]) for key, g in frame.groupby(by, sort=True)}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.names = [by] if isinstance(by, str) else by
    return out
