"""Friction-velocity (u*) threshold: REddyProc's moving-point method and its bootstrap.

Night-time NEE is underestimated when turbulence is weak; records with u*
below a threshold are removed before gap filling (Papale et al. 2006).  Each
rule follows REddyProc's ``R/EddyUStarFilterDP.R`` (bgctw/REddyProc 1.3):

- Records: finite NEE, TA, u* and SW_IN, and SW_IN < 10 W m-2 (night;
  ``usGetValidUstarIndices``).
- Seasons: Jan–Feb, Mar–May, Jun–Aug, Sep–Nov and Dec, December running on
  into the next January and February (``usCreateSeasonFactorMonth``); a
  season's year is the year of the middle of its span (``usGetYearOfSeason``).
- Within a season (at least 160 records, and 100 per temperature class): 7
  temperature classes of equal size, equal temperatures kept together
  (``.binWithEqualValuesBalanced``).  A class whose |r(u*, TA)| ≥ 0.5 is
  skipped.  Its records are sorted by u* and put in 20 bins of equal size,
  equal u* kept together and a short last bin joined to the one before
  (``.binWithEqualValuesMinRec``).  A class whose first bin has mean u* >
  0.2 m s-1 is skipped.
- Threshold of a class (``usEstUstarThresholdSingleFw2Binned``, "FW2"): the
  mean u* of the first bin ``u`` (up to the fourth-last) whose mean NEE is at
  least 95 % of the mean of the next 10 bins, and whose next bin passes the
  same test; none found: no threshold.  "FW1"
  (``usEstUstarThresholdSingleFw1Binned``) asks the first bin alone and falls
  back to the last bin.
- Season: median over the classes, none when fewer than 20 % had one.  Year:
  maximum over its seasons, or the estimate on the year's pooled records when
  the year has fewer than 3,000 records or no season gave one.  Overall
  ("single"): median over the years, standing in for years without a value.
- Bootstrap (``sEddyProc_sEstimateUstarScenarios``): the records of each
  season are resampled with replacement and the whole estimate repeated; the
  original estimate is the first of ``n_samples``; quantiles (5, 50, 95 % by
  default, R's type 7) are reported where at least 40 % of the samples gave a
  threshold.  The thresholds applied per season are those of its year
  (``usGetAnnualSeasonUStarMap``): ``U05``, ``U50``, ``U95`` scenarios.

The work within a season (temperature classes, u* bins, plateau test) runs in
numba (:func:`_class_thresholds_core`); the seasons, years and bootstrap
stay in Python.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.variables import MissingVariableError, check_units
from uflux_xr.site.dataset import one_site

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UstarOptions:
    """Settings of the u* threshold estimate (REddyProc's ``usControlUstarSubsetting``, ``usControlUstarEst``).

    Attributes
    ----------
    method : {"fw2", "fw1"}
        Plateau test: two successive bins (default) or one.
    night_sw_in : float
        SW_IN below which a record is night [W m-2].
    temperature_classes, ustar_classes : int
        Classes of TA within a season, bins of u* within a class.
    min_records_season, min_records_class, min_records_year : int
        Fewest night records for a season estimate, per temperature class,
        and for a year before its seasons are pooled.
    plateau_bins : int
        Bins after ``u`` whose mean NEE the bin is compared to.
    plateau_share : float
        The bin's NEE must reach this share of that mean.
    max_correlation : float
        Temperature classes with a larger |r(u*, TA)| are skipped.
    max_first_bin_ustar : float
        Classes whose first u* bin has a larger mean are skipped [m s-1].
    min_plateau_bins : int
        The threshold bin is at most the ``max(2, this)``-th from the last.
    min_class_share : float
        Share of temperature classes that must give a threshold for a season.
    min_bootstrap_share : float
        Share of bootstrap samples that must give a threshold for quantiles.
    pool_years_with_few_records : bool
        Estimate a year with fewer than ``min_records_year`` records on its pooled records.
    """

    method: str = "fw2"
    night_sw_in: float = 10.0
    temperature_classes: int = 7
    ustar_classes: int = 20
    min_records_season: int = 160
    min_records_class: int = 100
    min_records_year: int = 3000
    plateau_bins: int = 10
    plateau_share: float = 0.95
    max_correlation: float = 0.5
    max_first_bin_ustar: float = 0.2
    min_plateau_bins: int = 3
    min_class_share: float = 0.2
    min_bootstrap_share: float = 0.4
    pool_years_with_few_records: bool = True

    def __post_init__(self):
        if self.method not in ("fw2", "fw1"):
            raise ValueError(f"UstarOptions.method must be 'fw2' or 'fw1', got {self.method!r}")


def season_labels(time: pd.DatetimeIndex, start_months=(3, 6, 9, 12)) -> np.ndarray:
    """REddyProc's year-spanning seasons: ``year·1000 + first month`` of the season each record is in.

    January and February of the first year form their own season; later ones
    belong to the December season before them (``usCreateSeasonFactorMonth``).
    """
    year, month = time.year.to_numpy(), time.month.to_numpy()
    starts = sorted(set(start_months))
    keys = [(int(y), m) for y in np.unique(year) for m in starts]
    if starts[0] != 1:
        keys.insert(0, (int(year.min()), 1))
    start_codes = np.array([y * 1000 + m for y, m in keys])
    codes = year * 1000 + month
    return start_codes[np.searchsorted(start_codes, codes, side="right") - 1]


def season_years(labels: np.ndarray, time: pd.DatetimeIndex) -> dict[int, int]:
    """Year of the middle of each season's span (``usGetYearOfSeason``)."""
    seconds = time.asi8
    out = {}
    for label in np.unique(labels):
        inside = seconds[labels == label]
        middle = inside[0] + (inside[-1] - inside[0]) / 2
        out[int(label)] = int(pd.Timestamp(int(middle)).year)
    return out


@numba.njit(nogil=True, cache=True)
def _balanced_bins(x_sorted: np.ndarray, n_bins: int, tol: float = 1e-8) -> np.ndarray:
    """Class ids 1..n_bins of sorted values, equal values in one class (``.binWithEqualValuesBalanced``)."""
    n = x_sorted.size
    ids = np.ones(n, dtype=np.int64)
    if n_bins == 1:
        return ids
    size = n // n_bins
    starts = np.flatnonzero(np.diff(x_sorted) > tol) + 1  # 0-based first index of each new value
    for k in range(2, n_bins + 1):
        start0 = (k - 1) * size  # 0-based form of R's round((k - 1)·size) + 1
        i = np.searchsorted(starts, start0, side="left")
        if i < starts.size:
            ids[starts[i] :] = k
    return ids


@numba.njit(nogil=True, cache=True)
def _min_record_bins(x_sorted: np.ndarray, n_bins: int, tol: float = 1e-14) -> np.ndarray:
    """Bin ids 1..n_bins of sorted values, at least n // n_bins each (``.binWithEqualValuesMinRec``)."""
    n = x_sorted.size
    ids = np.zeros(n, dtype=np.int64)
    size = n // n_bins
    ends = np.flatnonzero(np.diff(x_sorted) > tol) + 1  # 1-based last index of each run of equal values
    end = 0
    b = 0
    while end < n:
        b += 1
        start = end + 1
        end += size
        i = np.searchsorted(ends, end, side="left")  # the first run ending at or after the bin's nominal end
        if i >= ends.size:
            if (n + 1 - start) < size * 0.9 and b != 1:
                b -= 1  # a short last bin joins the one before
            ids[start - 1 :] = b
            break
        end = int(ends[i])
        ids[start - 1 : end] = b
    for j in range(n):
        ids[j] = min(ids[j], n_bins)
    return ids


@numba.njit(nogil=True, cache=True)
def _mean_or_nan(values: np.ndarray) -> float:
    return values.mean() if values.size else np.nan


@numba.njit(nogil=True, cache=True)
def _plateau_core(ustar_mean, nee_mean, fw1: bool, fwd: int, share: float, min_plateau_bins: int) -> float:
    n = nee_mean.size
    if fw1:
        for u in range(n - 1):
            if nee_mean[u] >= share * _mean_or_nan(nee_mean[u + 1 : u + 1 + fwd]):
                return ustar_mean[u + 1] if u == n - 2 else ustar_mean[u]
            if u == n - 2:
                return ustar_mean[u + 1]
        return ustar_mean[n - 1] if n else np.nan
    last = n - max(2, min_plateau_bins)  # 1-based umax of REddyProc = 0-based last + 1
    for u in range(last):
        if nee_mean[u] >= share * _mean_or_nan(nee_mean[u + 1 : u + 1 + fwd]) and nee_mean[
            u + 1
        ] >= share * _mean_or_nan(nee_mean[u + 2 : u + 2 + fwd]):
            return ustar_mean[u]
    return np.nan


def plateau_threshold(ustar_mean: np.ndarray, nee_mean: np.ndarray, options: UstarOptions) -> float:
    """Threshold from u* bin means and their NEE means (FW2 or FW1), NaN if none.

    Parameters
    ----------
    ustar_mean : array
        Mean u* of each bin, increasing [m s-1].
    nee_mean : array
        Mean night NEE of each bin [µmol m-2 s-1].
    options : UstarOptions
    """
    return float(
        _plateau_core(
            np.asarray(ustar_mean, dtype=float),
            np.asarray(nee_mean, dtype=float),
            options.method == "fw1",
            options.plateau_bins,
            options.plateau_share,
            options.min_plateau_bins,
        )
    )


@numba.njit(nogil=True, cache=True)
def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r (R's ``cor``)."""
    dx = x - x.mean()
    dy = y - y.mean()
    return (dx @ dy) / np.sqrt((dx @ dx) * (dy @ dy))


@numba.njit(nogil=True, cache=True)
def _class_thresholds_core(
    nee, ustar, ta, n_classes, n_bins, max_correlation, max_first_bin, fw1, fwd, share, min_plateau_bins
):
    """Thresholds of the temperature classes and the counts of classes skipped for each reason."""
    out = np.full(n_classes, np.nan)
    skipped = np.zeros(3, np.int64)  # correlated, first bin, no plateau
    order = np.argsort(ta, kind="mergesort")
    classes = _balanced_bins(ta[order], n_classes)
    for k in range(1, n_classes + 1):
        rows = order[classes == k]
        u, t, f = ustar[rows], ta[rows], nee[rows]
        if u.size < 2 or u.std() == 0 or t.std() == 0:
            continue  # correlation undefined, as R's cor gives NA
        if not abs(_correlation(u, t)) < max_correlation:
            skipped[0] += 1
            continue
        by_ustar = np.argsort(u, kind="mergesort")
        u_sorted = u[by_ustar]
        f_sorted = f[by_ustar]
        bins = _min_record_bins(u_sorted, n_bins)
        n_used = bins.max()
        counts = np.zeros(n_used + 1)
        u_sum = np.zeros(n_used + 1)
        f_sum = np.zeros(n_used + 1)
        for j in range(bins.size):
            counts[bins[j]] += 1
            u_sum[bins[j]] += u_sorted[j]
            f_sum[bins[j]] += f_sorted[j]
        used = counts[1:] > 0
        ustar_mean = (u_sum[1:] / np.maximum(counts[1:], 1))[used]
        nee_mean = (f_sum[1:] / np.maximum(counts[1:], 1))[used]
        if ustar_mean[0] > max_first_bin:
            skipped[1] += 1
            continue
        out[k - 1] = _plateau_core(ustar_mean, nee_mean, fw1, fwd, share, min_plateau_bins)
        if np.isnan(out[k - 1]):
            skipped[2] += 1
    return out, skipped


def _class_thresholds(nee, ustar, ta, options: UstarOptions) -> tuple[np.ndarray, str]:
    """Threshold of each temperature class of one season (NaN: skipped or none found) and why none."""
    n_classes = options.temperature_classes
    n = nee.size
    needed = max(options.min_records_season, n_classes * options.min_records_class)
    if n < needed:
        return np.full(n_classes, np.nan), f"too few night records ({n} < {needed})"
    out, skipped = _class_thresholds_core(
        np.ascontiguousarray(nee, dtype=float),
        np.ascontiguousarray(ustar, dtype=float),
        np.ascontiguousarray(ta, dtype=float),
        n_classes,
        options.ustar_classes,
        options.max_correlation,
        options.max_first_bin_ustar,
        options.method == "fw1",
        options.plateau_bins,
        options.plateau_share,
        options.min_plateau_bins,
    )
    reason = (
        f"threshold in {int(np.isfinite(out).sum())} of {n_classes} temperature classes (needs "
        f"{options.min_class_share:.0%}); skipped: {skipped[0]} with |r(u*, TA)| >= "
        f"{options.max_correlation}, {skipped[1]} with first u* bin > {options.max_first_bin_ustar} "
        f"m s-1, {skipped[2]} without a plateau"
    )
    return out, reason


def _season_value(nee, ustar, ta, options: UstarOptions) -> tuple[float, str]:
    """Median of the temperature classes' thresholds (NaN and why, with too few of them)."""
    thresholds, reason = _class_thresholds(nee, ustar, ta, options)
    finite = np.isfinite(thresholds)
    if finite.mean() < options.min_class_share or not finite.any():
        return np.nan, reason
    return float(np.median(thresholds[finite])), ""


@dataclass
class UstarEstimate:
    """One u* threshold estimate: overall, per year and per season [m s-1]."""

    single: float
    years: dict
    seasons: dict
    n_records: dict
    notes: dict


def estimate_threshold(nee, ustar, ta, sw_in, seasons, years_of_season, options: UstarOptions) -> UstarEstimate:
    """REddyProc's u* threshold on numpy arrays (``usEstUstarThreshold``).

    Parameters
    ----------
    nee : array
        Night NEE candidates [µmol m-2 s-1] (NaN where missing).
    ustar : array
        Friction velocity [m s-1].
    ta : array
        Air temperature [°C].
    sw_in : array
        Incoming shortwave radiation [W m-2].
    seasons : int array
        Season label of each record (:func:`season_labels`).
    years_of_season : dict
        Year of each season label (:func:`season_years`).
    options : UstarOptions

    Returns
    -------
    UstarEstimate
    """
    valid = np.isfinite(nee) & np.isfinite(ta) & np.isfinite(ustar) & (sw_in < options.night_sw_in)  # NaN fails
    if not valid.any():
        raise ValueError("u* threshold: no night record (SW_IN < 10 W m-2) with NEE, TA and USTAR")
    season_values, n_season, notes = {}, {}, {}
    for label in sorted(years_of_season):
        rows = valid & (seasons == label)
        n_season[label] = int(rows.sum())
        season_values[label], reason = _season_value(nee[rows], ustar[rows], ta[rows], options)
        if reason:
            notes[label] = f"season {label}: {reason}; the year's value is used"
    year_values, n_year = {}, {}
    for year in sorted(set(years_of_season.values())):
        labels = [s for s, y in years_of_season.items() if y == year]
        finite = [season_values[s] for s in labels if np.isfinite(season_values[s])]
        value = max(finite) if finite else np.nan
        n_year[year] = sum(n_season[s] for s in labels)
        few = options.pool_years_with_few_records and n_year[year] < options.min_records_year
        if (few or not np.isfinite(value)) and n_year[year] > 0:
            rows = valid & np.isin(seasons, labels)
            pooled, reason = _season_value(nee[rows], ustar[rows], ta[rows], options)
            if np.isfinite(pooled):
                value = pooled
                notes[year] = f"year {year}: estimated on its pooled seasons ({n_year[year]} night records)"
            elif not np.isfinite(value):
                notes[year] = f"year {year}: pooled seasons give none ({reason}); the median of the other years is used"
        year_values[year] = value
    finite_years = [v for v in year_values.values() if np.isfinite(v)]
    single = float(np.median(finite_years)) if finite_years else np.nan
    year_values = {y: (v if np.isfinite(v) else single) for y, v in year_values.items()}
    season_values = {s: (v if np.isfinite(v) else year_values[years_of_season[s]]) for s, v in season_values.items()}
    return UstarEstimate(single, year_values, season_values, n_season, notes)


def bootstrap_thresholds(
    nee,
    ustar,
    ta,
    sw_in,
    seasons,
    years_of_season,
    options: UstarOptions,
    n_samples: int = 200,
    probs=(0.05, 0.5, 0.95),
    seed: int = 0,
) -> tuple[UstarEstimate, pd.DataFrame]:
    """The estimate and its bootstrap quantiles (records resampled within seasons).

    Returns
    -------
    estimate : UstarEstimate
        On the records as they are.
    table : pandas.DataFrame
        One row per aggregation (``single``, each year, each season) with the
        estimate ``ustar`` and a column per quantile (``U05``, ``U50``, ``U95``)
        and ``valid_share`` (share of samples with a threshold).
    """
    first = estimate_threshold(nee, ustar, ta, sw_in, seasons, years_of_season, options)
    keys = [("single", None, None)]
    keys += [("year", y, None) for y in first.years]
    keys += [("season", years_of_season[s], s) for s in first.seasons]

    def row(e: UstarEstimate):
        return [e.single, *e.years.values(), *e.seasons.values()]

    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(seasons == s) for s in sorted(years_of_season)]
    samples = [row(first)]
    for i in range(n_samples - 1):
        pick = np.concatenate([m[rng.integers(0, m.size, m.size)] for m in members if m.size])
        e = estimate_threshold(nee[pick], ustar[pick], ta[pick], sw_in[pick], seasons[pick], years_of_season, options)
        samples.append(row(e))
        if (i + 2) % 50 == 0:
            log.info("u* bootstrap: %d of %d samples", i + 2, n_samples)
    stat = np.array(samples, dtype=float)
    valid_share = np.isfinite(stat).mean(axis=0)
    table = pd.DataFrame(keys, columns=["aggregation", "season_year", "season"]).astype(
        {"season_year": "Int64", "season": "Int64"}
    )
    table["ustar"] = row(first)
    table["valid_share"] = valid_share
    for p in probs:
        q = np.array([np.quantile(c[np.isfinite(c)], p) if np.isfinite(c).any() else np.nan for c in stat.T])
        table[scenario_name(p)] = np.where(valid_share >= options.min_bootstrap_share, q, np.nan)
    return first, table


def scenario_name(prob: float) -> str:
    """REddyProc's/ONEFlux's suffix of a quantile: 0.05 → ``U05``, 0.5 → ``U50``."""
    return f"U{round(100 * prob):02d}"


def ustar_thresholds(
    site_ds: xr.Dataset,
    *,
    n_samples: int = 200,
    probs=(0.05, 0.5, 0.95),
    seed: int = 0,
    nee: str = "NEE",
    **options,
) -> pd.DataFrame:
    """Estimate the u* threshold of one site and its bootstrap distribution, as REddyProc does.

    Parameters
    ----------
    site_ds : xarray.Dataset
        One site's half-hourly or hourly record with ``nee`` [µmol m-2 s-1],
        USTAR [m s-1], TA [°C] and SW_IN [W m-2]; time at period middles.
    n_samples : int
        Bootstrap samples, the estimate on the records as they are included
        (REddyProc: 200); 1 gives the estimate alone.
    probs : sequence of float
        Quantiles of the bootstrap reported as scenarios (``U05``, ``U50``, ``U95``).
    seed : int
        Seed of the resampling: the same seed gives the same table.
    nee : str
        The NEE variable (e.g. a spike-filtered one).
    **options
        :class:`UstarOptions` fields.

    Returns
    -------
    pandas.DataFrame
        Rows ``single``, one per year and one per season (``season`` as
        ``year·1000 + first month``) with ``ustar`` [m s-1], the scenario
        columns [m s-1], ``valid_share`` and ``n_records`` (night records used).
    """
    opts = UstarOptions(**options)
    one = one_site(site_ds, "the u* threshold")
    expected = {nee: "umol m-2 s-1", "USTAR": "m s-1", "TA": "degC", "SW_IN": "W m-2"}
    for name, units in expected.items():
        if name not in one:
            raise MissingVariableError(f"the u* threshold needs {name!r} [{units}] in the site dataset")
    check_units(one, expected, user="the u* threshold")
    time = one.indexes["time"]
    seasons = season_labels(time)
    years = season_years(seasons, time)
    nee_v, ustar_v, ta_v, sw_v = (one[v].values.astype(np.float64) for v in (nee, "USTAR", "TA", "SW_IN"))
    estimate, table = bootstrap_thresholds(nee_v, ustar_v, ta_v, sw_v, seasons, years, opts, n_samples, probs, seed)
    if not np.isfinite(estimate.single):
        raise ValueError("no u* threshold could be estimated: " + "; ".join(estimate.notes.values()))
    table.attrs["notes"] = list(estimate.notes.values())
    for note in estimate.notes.values():
        log.info("u* threshold: %s", note)
    table["n_records"] = (
        [sum(estimate.n_records.values())]
        + [sum(n for s, n in estimate.n_records.items() if years[s] == y) for y in estimate.years]
        + list(estimate.n_records.values())
    )
    log.info(
        "u* threshold %.3f m s-1 (%s)",
        estimate.single,
        ", ".join(f"{c} {table[c].iloc[0]:.3f}" for c in table.columns if c.startswith("U")),
    )
    return table


def threshold_series(table: pd.DataFrame, time: pd.DatetimeIndex, column: str = "ustar") -> np.ndarray:
    """The threshold applying at each record: its season's year value (``usGetAnnualSeasonUStarMap``).

    ``column`` is a scenario column (``U05``, ``U50``, ...) or ``ustar``; REddyProc's
    name ``uStar`` (the estimate on the records as they are) means ``ustar``.
    """
    column = "ustar" if column == "uStar" else column
    seasons = season_labels(time)
    years = table[table["aggregation"] == "season"].set_index("season")["season_year"]
    by_year = table[table["aggregation"] == "year"].set_index("season_year")[column]
    values = np.array([by_year.get(years.get(s, np.nan), np.nan) for s in seasons], dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(f"u* threshold {column!r} is missing for some seasons; cannot filter those records")
    return values


def ustar_flags(site_ds: xr.Dataset, thresholds: np.ndarray, *, night_sw_in: float = 10.0, day: bool = False):
    """REddyProc's u* filter flags: 0 kept, 1 u* below the threshold, 4 u* missing (night records only).

    Parameters
    ----------
    site_ds : xarray.Dataset
        One site with USTAR [m s-1] and SW_IN [W m-2].
    thresholds : array
        Threshold at each record [m s-1] (:func:`threshold_series`).
    night_sw_in : float
        Records with SW_IN below this, or missing, are night [W m-2].
    day : bool
        Filter day-time records as well (REddyProc ``isFilterDayTime``).
    """
    one = one_site(site_ds, "the u* threshold")
    ustar = one["USTAR"].values.astype(float)
    sw = one["SW_IN"].values.astype(float)
    filtered = np.ones(sw.size, bool) if day else ~(sw >= night_sw_in)  # a missing SW_IN counts as night
    flags = np.zeros(sw.size, np.int8)
    flags[filtered & (np.nan_to_num(ustar, nan=np.inf) < thresholds)] = 1
    flags[filtered & ~np.isfinite(ustar)] = 4
    return flags


def fill_ustar_scenarios(
    site_ds: xr.Dataset,
    var: str,
    table: pd.DataFrame | float,
    scenarios=("U05", "U50", "U95"),
    *,
    day: bool = False,
    **mds_options,
) -> xr.Dataset:
    """Filter ``var`` by each u* scenario and fill it with MDS (REddyProc ``sMDSGapFillUStarScens``).

    Parameters
    ----------
    site_ds : xarray.Dataset
        One site with ``var``, USTAR [m s-1] and the MDS drivers.
    var : str
        Flux to filter and fill, usually NEE [µmol m-2 s-1].
    table : pandas.DataFrame or float
        Output of :func:`ustar_thresholds`, or one given threshold [m s-1]
        for every record (REddyProc ``sMDSGapFillAfterUstar(uStarTh = x)``;
        pass ``scenarios=("uStar",)``).
    scenarios : sequence of str
        Columns of ``table``: ``U05``, ``U50``, ``U95``, or ``uStar`` (the
        estimate itself, REddyProc's suffix).
    day : bool
        Filter day-time records as well (REddyProc ``isFilterDayTime``).
    **mds_options
        Options of :func:`uflux_xr.site.gapfill.gapfill` with ``method="mds"``.

    Returns
    -------
    xarray.Dataset
        ``site_ds`` with, per scenario ``S``: ``USTAR_S_THRES`` [m s-1],
        ``USTAR_S_FQC`` (0 kept, 1 u* below the threshold, 4 u* missing),
        ``<var>_S`` (the filtered flux) and its MDS outputs ``<var>_S_f``,
        ``_fqc``, ``_fsd``, ``_fnum``, ``_fmeth`` (REddyProc's ``NEE_U50_f`` naming).
    """
    from uflux_xr.site.gapfill import gapfill

    out = site_ds
    time = one_site(site_ds, "the u* threshold").indexes["time"]
    dims, shape = site_ds[var].dims, site_ds[var].shape
    for scenario in scenarios:
        if isinstance(table, pd.DataFrame):
            thresholds = threshold_series(table, time, scenario)
        else:
            thresholds = np.full(time.size, float(table))
        flags = ustar_flags(site_ds, thresholds, day=day).reshape(shape)
        out = out.assign(
            {
                f"USTAR_{scenario}_THRES": (dims, thresholds.reshape(shape), {"units": "m s-1"}),
                f"USTAR_{scenario}_FQC": (
                    dims,
                    flags,
                    {"units": "1", "long_name": "u* filter: 0 kept, 1 u* below the threshold, 4 u* missing"},
                ),
                f"{var}_{scenario}": site_ds[var].where(flags == 0),
            }
        )
        log.info("u* scenario %s: %.1f %% of records filtered", scenario, 100 * float((flags != 0).mean()))
        out = gapfill(out, f"{var}_{scenario}", **mds_options)
    return out
