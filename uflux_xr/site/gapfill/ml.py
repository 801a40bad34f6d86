"""Machine-learning gap filling: a tree ensemble (``ml_fill``) or support
vector regression (``svr_fill``) trained on the site's own measured values
against its drivers and time harmonics, for gaps of any length (whole
missing years included).

Features are the drivers present (SW_IN, TA, VPD, LW_IN, PA, RH, SWC, P, TS,
WS; gap-free, see :func:`uflux_xr.site.gapfill.api.gapfill`), optional trailing
means and time trend, plus the annual harmonics (DOY_SIN, DOY_COS) and, for
sub-daily data, the daily ones (HOD_SIN, HOD_COS).  Training years are
explicit: all years, the ``n_nearest`` years nearest to each gap's year, or a
given list.  Several members with different seeds give the fill and its
spread (``_fsd``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from uflux_xr.core.solar import day_of_year_fraction
from uflux_xr.models import train
from uflux_xr.models.registry import unknown_parameters

CANDIDATE_DRIVERS = ("SW_IN", "TA", "VPD", "LW_IN", "PA", "RH", "SWC", "P", "TS", "WS")


#: Drivers whose trailing means describe antecedent conditions (warmth, light, dryness, rain).
ANTECEDENT_DRIVERS = ("TA", "SW_IN", "VPD", "P")


def feature_table(
    site: pd.DataFrame, time: pd.DatetimeIndex, drivers, antecedent_days=(), time_trend: bool = False
) -> pd.DataFrame:
    """Drivers plus time harmonics for every time step (rows aligned with ``time``).

    ``antecedent_days`` adds, for each driver in :data:`ANTECEDENT_DRIVERS`
    present, its trailing mean over that many days (``TA_MEAN30D`` …): soil
    water and phenology follow recent weather, which the same-step drivers miss.
    ``time_trend`` adds the time in years (``YEARS``), letting trees tell
    periods of the record apart (stand changes, instrument changes) the way
    MDS's moving window does.
    """
    table = pd.DataFrame({d: site[d].to_numpy() for d in drivers}, index=time)
    for days in antecedent_days:
        for d in (d for d in ANTECEDENT_DRIVERS if d in drivers):
            table[f"{d}_MEAN{days}D"] = table[d].rolling(f"{days}D", min_periods=1).mean()
    if time_trend:
        table["YEARS"] = (time - time[0]) / pd.Timedelta(days=365.25)
    phase = day_of_year_fraction(np.asarray(time)).to_numpy()
    table["DOY_SIN"], table["DOY_COS"] = np.sin(phase), np.cos(phase)
    if len(time) > 1 and (time[1] - time[0]) < pd.Timedelta(days=1):
        hod = 2 * np.pi * (time.hour + time.minute / 60.0).to_numpy() / 24.0
        table["HOD_SIN"], table["HOD_COS"] = np.sin(hod), np.cos(hod)
    return table


def training_years(gap_year: int, years: np.ndarray, train_years, n_nearest: int) -> list[int]:
    """Years whose measurements train the model filling a gap in ``gap_year``."""
    others = sorted(int(y) for y in np.unique(years))
    if train_years == "all":
        return others
    if train_years == "nearest":
        ranked = sorted((y for y in others if y != gap_year), key=lambda y: (abs(y - gap_year), y))
        return sorted(ranked[:n_nearest] + ([gap_year] if gap_year in others else []))
    chosen = [int(y) for y in train_years]
    missing = sorted(set(chosen) - set(others))
    if missing:
        raise ValueError(f"training years {missing} have no data (years with data: {others})")
    return chosen


def fill_by_year(values, good, features: pd.DataFrame, fit_predict, train_years="all", n_nearest: int = 2):
    """Fill the gaps of one series year by year with ``fit_predict(train_table, target_table)``.

    Each year's gaps are predicted from a model trained on its training years
    (:func:`training_years`); ``fit_predict`` returns (prediction, spread).
    Returns (filled values, spread) with NaN where unfilled.
    """
    filled = np.where(good, values, np.nan)
    spread = np.full(values.size, np.nan)
    years = features.index.year.to_numpy()
    complete = np.isfinite(features.to_numpy(dtype=float)).all(axis=1)
    usable, gaps = good & complete, ~good & complete
    table = features.assign(target=values, site="site")
    for year in np.unique(years[gaps]):
        chosen = training_years(int(year), years[usable], train_years, n_nearest)
        rows = usable & np.isin(years, chosen)
        if rows.sum() < 50:
            raise ValueError(f"only {int(rows.sum())} measured steps in training years {chosen} to fill {year}")
        target_rows = gaps & (years == year)
        filled[target_rows], spread[target_rows] = fit_predict(table.loc[rows], table.loc[target_rows])
    return filled, spread


def ml_fill(
    values: np.ndarray,
    good: np.ndarray,
    features: pd.DataFrame,
    *,
    model: str = "lightgbm",
    members: int = 3,
    train_years="all",
    n_nearest: int = 2,
    params: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the gaps of one series with a tree ensemble; returns (filled, member spread), NaN where unfilled."""
    cols = list(features.columns)

    def fit_predict(train_table, target_table):
        preds = np.stack(
            [
                train(train_table, "target", cols, model=model, random_state=seed, **(params or {})).predict(
                    target_table
                )
                for seed in range(members)
            ]
        )
        return preds.mean(axis=0), (preds.std(axis=0, ddof=1) if members > 1 else np.nan)

    return fill_by_year(values, good, features, fit_predict, train_years, n_nearest)


def svr_fill(
    values: np.ndarray,
    good: np.ndarray,
    features: pd.DataFrame,
    *,
    train_years="all",
    n_nearest: int = 2,
    max_train: int = 5000,
    seed: int = 0,
    params: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the gaps of one series with support vector regression (RBF kernel, standardised features).

    SVR training grows with the square of the rows, so at most ``max_train``
    training rows are used (a seeded random subset); that is all of a
    decade of daily data and a subsample of half-hourly records.  Returns
    (filled, NaN spread).
    """
    cols = list(features.columns)
    unknown_parameters("SVR", params or {}, SVR().get_params())
    options = {"C": 1.0, "epsilon": 0.1, "gamma": "scale", **(params or {})}

    def fit_predict(train_table, target_table):
        if len(train_table) > max_train:
            train_table = train_table.sample(max_train, random_state=seed)
        y = train_table["target"].to_numpy()
        centre, scale = y.mean(), y.std() or 1.0
        regressor = make_pipeline(StandardScaler(), SVR(**options))
        regressor.fit(train_table[cols].to_numpy(), (y - centre) / scale)
        return centre + scale * regressor.predict(target_table[cols].to_numpy()), np.nan

    return fill_by_year(values, good, features, fit_predict, train_years, n_nearest)
