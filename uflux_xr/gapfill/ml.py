"""Machine-learning gap filling: a tree ensemble trained on the site's own
measured values against its drivers and time harmonics, for gaps of any
length (whole missing years included).

Features are the drivers present (SW_IN, TA, VPD, LW_IN, PA, RH, SWC, P, TS,
WS; their gap-filled ``_f`` versions when present) plus the annual harmonics
(DOY_SIN, DOY_COS) and, for sub-daily data, the daily ones (HOD_SIN,
HOD_COS).  Training years are explicit: all years, the ``n_nearest`` years
nearest to each gap's year, or a given list.  Several members with different
seeds give the fill and its spread (``_fsd``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uflux_xr.features import day_of_year_fraction
from uflux_xr.models import train

CANDIDATE_DRIVERS = ("SW_IN", "TA", "VPD", "LW_IN", "PA", "RH", "SWC", "P", "TS", "WS")


def feature_table(site: pd.DataFrame, time: pd.DatetimeIndex, drivers) -> pd.DataFrame:
    """Drivers plus time harmonics for every time step (rows aligned with ``time``)."""
    table = pd.DataFrame({d: site[d].to_numpy() for d in drivers}, index=time)
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
    """Fill the gaps of one series; returns (filled values, member spread) with NaN where unfilled.

    Gaps are grouped by year so each year's gaps use their own training years.
    """
    filled = np.where(good, values, np.nan)
    spread = np.full(values.size, np.nan)
    years = features.index.year.to_numpy()
    table = features.assign(target=values, site="site")
    usable = good & np.isfinite(features.to_numpy(dtype=float)).all(axis=1)
    gaps = ~good & np.isfinite(features.to_numpy(dtype=float)).all(axis=1)
    cols = list(features.columns)
    for year in np.unique(years[gaps]):
        chosen = training_years(int(year), years[usable], train_years, n_nearest)
        rows = usable & np.isin(years, chosen)
        if rows.sum() < 50:
            raise ValueError(f"only {int(rows.sum())} measured steps in training years {chosen} to fill {year}")
        target_rows = gaps & (years == year)
        preds = np.stack(
            [
                train(table.loc[rows], "target", cols, model=model, random_state=seed, **(params or {})).predict(
                    table.loc[target_rows]
                )
                for seed in range(members)
            ]
        )
        filled[target_rows] = preds.mean(axis=0)
        spread[target_rows] = preds.std(axis=0, ddof=1) if members > 1 else np.nan
    return filled, spread
