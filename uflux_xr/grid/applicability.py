"""Dissimilarity index (DI) and area of applicability (AOA), as the R package CAST computes them.

Meyer & Pebesma (2021), *Predicting into unknown space? Estimating the area of
applicability of spatial prediction models*, Methods Ecol. Evol. 12, 1620-1633.
Each rule follows CAST's own code (``R/trainDI.R`` and ``R/aoa.R``):

- Predictors are standardised with the training table's mean and standard
  deviation (R's ``scale``: ``ddof=1``) and multiplied by a weight per
  predictor (the model's variable importance; all 1 when unweighted; negative
  weights set to 0).  A categorical predictor becomes one 0/1 column per level
  seen in training (CAST's ``caret::dummyVars``); a level training never saw
  gives 0 in every column, as CAST sets it.
- ``mean_distance`` (CAST's ``trainDist_avrgmean``): the mean Euclidean
  distance between two different training rows.
- Training DI: the distance of each training row to its nearest training row,
  itself excluded and, when ``folds`` are given, every row of its own fold
  excluded (CAST's CV folds: rows of one site or one fold never vouch for each
  other), divided by ``mean_distance``.
- Threshold, convention ``"cast"`` (CAST ``trainDI.R`` today): the 75th
  percentile of the training DIs plus 1.5 times their interquartile range (R's
  ``quantile`` type 7), capped at their maximum.  Convention
  ``"cast-boxplot"`` (earlier CAST releases, kept in a comment of that file):
  ``grDevices::boxplot.stats(trainDI)$stats[5]``, the largest training DI
  within 1.5 hinge spreads of the upper hinge (Tukey's hinges).
- DI of new data: distance to the nearest training row (all of them) divided
  by ``mean_distance``; rows with a missing predictor get NaN.  AOA is 1 where
  DI <= threshold, 0 elsewhere (CAST: ``AOA[DI > threshold] <- 0``).

The nearest-neighbour searches are exact like CAST's ``FNN::knnx.dist``: for
new data, the grouped search of :mod:`uflux_xr.grid.nearest` where the rows
share a coarse part (a fine grid under a coarse reanalysis) and a KD-tree
(scipy's ``cKDTree``) elsewhere, the distance computed from the nearest row by
one arithmetic for both; ``mean_distance`` is exact up to
:data:`MAX_EXACT_PAIRS` pairs of training rows and an unbiased estimate from
:data:`SAMPLED_PAIRS` random pairs beyond (a table of 100,000 tower-days has
5e9 pairs).

The xarray adapters (:func:`dissimilarity`, and :func:`dissimilarity_layers`
for several fluxes in one task per chunk) compute DI chunk by chunk over dask
with each saved reference loaded once per worker process, like the model
predictions of :mod:`uflux_xr.grid.upscale`.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import xarray as xr
from scipy.spatial import cKDTree

from uflux_xr.core.domain import spatial_dims
from uflux_xr.grid.features import resolve_features
from uflux_xr.grid.nearest import RowGroups, distance_to_rows, group_rows, grouped_nearest, grouped_search_pays
from uflux_xr.io.atomic import write_atomic
from uflux_xr.io.loaded_once import LoadedOnce
from uflux_xr.io.storage import is_url, read_bytes
from uflux_xr.models.dedup import unique_rows

log = logging.getLogger(__name__)

#: Threshold conventions: ``"cast"`` (CAST's trainDI.R today), ``"cast-boxplot"`` (earlier CAST).
THRESHOLD_CONVENTIONS = ("cast", "cast-boxplot")
#: Up to this many pairs of training rows the mean pairwise distance is exact.
MAX_EXACT_PAIRS = 300_000_000
#: Beyond, it is the mean over this many random pairs (seeded; relative standard error ~1e-4).
SAMPLED_PAIRS = 20_000_000


class ApplicabilityError(ValueError):
    """A training table or a predictor that the DI cannot be computed from."""


@dataclass
class TrainingDissimilarity:
    """The training side of the DI: what CAST's ``trainDI()`` returns, ready to score new data.

    Attributes
    ----------
    features : list of str
        Predictor names, in the order :meth:`di` expects their columns.
    categories : dict
        Per categorical predictor, the levels seen in training (one column each).
    center, scale, weights : numpy.ndarray
        Per column (after one-hot encoding): training mean, standard deviation
        (``ddof=1``) and weight.
    points : numpy.ndarray
        The training rows, standardised and weighted (rows, columns) float64.
    mean_distance : float
        Mean distance between two training rows (CAST's ``trainDist_avrgmean``).
    train_di : numpy.ndarray
        DI of each training row against the rows of other folds.
    threshold : float
        DI above which a row is outside the AOA.
    convention : str
        How the threshold was derived (:data:`THRESHOLD_CONVENTIONS`).
    folds : numpy.ndarray or None
        Fold label of each training row (None: every other row counts).
    """

    features: list[str]
    categories: dict[str, list[float]]
    center: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    points: np.ndarray
    mean_distance: float
    train_di: np.ndarray
    threshold: float
    convention: str = "cast"
    folds: np.ndarray | None = None
    path: str | None = field(default=None, compare=False)

    @functools.cached_property
    def tree(self) -> cKDTree:
        """KD-tree over :attr:`points` (built on first use; cached)."""
        return cKDTree(self.points)

    @functools.cached_property
    def column_feature(self) -> np.ndarray:
        """Index in :attr:`features` of each column of :attr:`points` (a categorical predictor has several)."""
        return np.repeat(np.arange(len(self.features)), [len(self.categories.get(f, [None])) for f in self.features])

    @property
    def feature_weights(self) -> dict[str, float]:
        """Weight per predictor (the columns of a categorical predictor share its weight)."""
        first_columns = np.searchsorted(self.column_feature, np.arange(len(self.features)))
        return {f: float(self.weights[k]) for f, k in zip(self.features, first_columns, strict=True)}

    def transform(self, X: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
        """Standardised, weighted columns of raw predictor rows ``X`` (rows, features).

        With ``which`` (bool per predictor), ``X`` holds only those predictors' columns and the result
        only their columns of :attr:`points`, value for value the same as in the full transform.
        """
        if which is None:
            names, columns = self.features, slice(None)
        else:
            names = [f for f, keep in zip(self.features, which, strict=True) if keep]
            columns = np.asarray(which, dtype=bool)[self.column_feature]
        return (
            (_encode(np.asarray(X, dtype=np.float64), names, self.categories) - self.center[columns])
            / self.scale[columns]
            * self.weights[columns]
        )

    def nearest_distance(self, rows: np.ndarray, groups: RowGroups | None = None) -> np.ndarray:
        """Distance [standardised, weighted units] of distinct raw rows without NaN to the nearest training row.

        By the grouped search where the rows share coarse columns and it pays (``groups``, from
        :func:`uflux_xr.grid.nearest.group_rows`), by the KD-tree elsewhere; both exact, and the distance
        computed by one arithmetic from the nearest row.
        """
        width = 0 if groups is None else int(groups.coarse[self.column_feature].sum())
        if not grouped_search_pays(groups, len(self.points), width):
            queries = self.transform(rows)
            _, nearest = self.tree.query(queries, k=1, workers=1)
            return distance_to_rows(self.points, nearest, queries)
        assert groups is not None
        coarse, fine = groups.coarse, ~groups.coarse
        coarse_columns = coarse[self.column_feature]
        coarse_queries = self.transform(rows[groups.first][:, coarse], coarse)
        fine_queries = self.transform(rows[:, fine], fine)
        nearest = grouped_nearest(
            groups, coarse_queries, fine_queries, self.points[:, coarse_columns], self.points[:, ~coarse_columns]
        )
        left = nearest < 0
        if left.any():  # the coarse part prunes too little here: the KD-tree is faster for the rest
            _, nearest[left] = self.tree.query(self.transform(rows[left]), k=1, workers=1)
        return distance_to_rows(
            self.points,
            nearest,
            fine_queries,
            groups=groups,
            coarse_queries=coarse_queries,
            column_is_coarse=coarse_columns,
        )

    def di(self, X: np.ndarray) -> np.ndarray:
        """DI [1] of raw predictor rows ``X`` (rows, :attr:`features`); NaN where a predictor is missing."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ValueError(f"expected an array of shape (n, {len(self.features)}) for {self.features}, got {X.shape}")
        return dissimilarity_of_rows([self], X)[0]

    def aoa(self, di: np.ndarray) -> np.ndarray:
        """AOA flag of DI values: 1 inside (DI <= threshold), 0 outside, -1 where DI is NaN (int8)."""
        return aoa_flag(di, self.threshold)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the reference to an ``.npz`` file (arrays and a JSON header; no pickle), atomically (a local
        path or a URL)."""
        header = {
            "features": self.features,
            "categories": self.categories,
            "mean_distance": self.mean_distance,
            "threshold": self.threshold,
            "convention": self.convention,
        }
        arrays = {k: getattr(self, k) for k in ("center", "scale", "weights", "points", "train_di")}
        if self.folds is not None:
            arrays["folds"] = np.asarray(self.folds).astype(str)
        buffer = io.BytesIO()
        np.savez(buffer, header=np.array(json.dumps(header)), **arrays)

        def fill(fh) -> None:
            fh.write(buffer.getvalue())

        written = write_atomic(path, fill)
        self.path = str(written.resolve()) if isinstance(written, Path) else os.fspath(written)
        return written

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainingDissimilarity:
        """Read a reference written by :meth:`save`."""
        with np.load(io.BytesIO(read_bytes(path)), allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            arrays = {k: z[k] for k in z.files if k != "header"}
        return cls(**header, **arrays, path=os.fspath(path) if is_url(path) else str(Path(path).resolve()))


def aoa_flag(di: np.ndarray, threshold: float) -> np.ndarray:
    """AOA flag of DI values [1]: 1 where DI <= ``threshold``, 0 above, -1 where DI is NaN (int8, no wider copy)."""
    di = np.asarray(di)
    flag = (di <= threshold).astype(np.int8)
    flag[np.isnan(di)] = -1
    return flag


def dissimilarity_of_rows(references: Sequence[TrainingDissimilarity], X: np.ndarray) -> list[np.ndarray]:
    """DI [1] of raw predictor rows ``X`` against each of several references with the same :attr:`features`.

    What the references share is done once: the rows with a missing predictor (NaN), the distinct rows
    (identical rows have the identical nearest distance; on fine grids whose climate comes from a coarse
    reanalysis most rows repeat) and their groups for the grouped search.
    """
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    out = [np.full(X.shape[0], np.nan) for _ in references]
    complete = np.isfinite(X).all(axis=1)
    if complete.any():
        rows = X[complete]
        # distinct bit patterns in the rows' own precision (float32 grids: half the bytes to hash), and
        # only the distinct rows in float64
        first, inverse = unique_rows(_row_words(rows))
        distinct = rows[first].astype(np.float64)
        groups = group_rows(distinct)
        for reference, di in zip(references, out, strict=True):
            di[complete] = (reference.nearest_distance(distinct, groups) / reference.mean_distance)[inverse]
    return out


def _row_words(rows: np.ndarray) -> np.ndarray:
    """Each row's bytes as uint64 words (a float32 row of odd length padded with a zero column)."""
    if rows.dtype.itemsize * rows.shape[1] % 8:
        padded = np.zeros((rows.shape[0], rows.shape[1] + 1), dtype=rows.dtype)
        padded[:, :-1] = rows
        rows = padded
    return np.ascontiguousarray(rows).view(np.uint64)


def train_dissimilarity(
    train: pd.DataFrame,
    features: Sequence[str],
    *,
    weights: Mapping[str, float] | Sequence[float] | None = None,
    folds: str | Sequence | np.ndarray | None = None,
    categorical: Sequence[str] = (),
    threshold: str = "cast",
    source: str = "training table",
) -> TrainingDissimilarity:
    """The training side of the DI (CAST's ``trainDI``).

    Parameters
    ----------
    train : pandas.DataFrame
        Training rows holding the ``features`` columns; rows with a missing
        predictor are left out (CAST cannot use them either).
    features : sequence of str
        Predictors that span the space.
    weights : mapping or sequence of float, optional
        Weight per predictor (the model's variable importance, any scale:
        DI does not change when all weights are multiplied by one number);
        negative weights become 0.  None: all 1 (CAST without a model).
    folds : str or array-like, optional
        A column of ``train`` or one label per row: rows of a fold are not
        each other's neighbours in the training DI (use the site for towers).
    categorical : sequence of str
        Predictors that are class codes (IGBP): one 0/1 column per level.
    threshold : str
        ``"cast"`` or ``"cast-boxplot"`` (see the module docstring).
    source : str
        Where ``train`` came from, for error messages.

    Returns
    -------
    TrainingDissimilarity

    Raises
    ------
    ApplicabilityError
        Fewer than 2 complete rows, a predictor without variance, a fold
        holding every row, or a bad weight.
    """
    if threshold not in THRESHOLD_CONVENTIONS:
        raise ValueError(f"threshold must be one of {THRESHOLD_CONVENTIONS}, got {threshold!r}")
    features = list(features)
    missing = [f for f in features if f not in train.columns]
    if missing:
        raise ApplicabilityError(f"{source} lacks predictor column(s) {missing}; it has {list(train.columns)}")
    unknown = sorted(set(categorical) - set(features))
    if unknown:
        raise ApplicabilityError(f"categorical predictor(s) {unknown} are not among the features {features}")
    labels = train[folds].to_numpy() if isinstance(folds, str) else None if folds is None else np.asarray(folds)
    if labels is not None and len(labels) != len(train):
        raise ApplicabilityError(f"folds has {len(labels)} labels for {len(train)} rows of the {source}")
    raw = train[features].to_numpy(dtype=np.float64)
    complete = np.isfinite(raw).all(axis=1)
    if (~complete).any():
        log.info(
            "%s: %d of %d rows have a missing predictor and are left out of the DI", source, (~complete).sum(), len(raw)
        )
    raw = raw[complete]
    if labels is not None:
        labels = labels[complete]
    if len(raw) < 2:
        raise ApplicabilityError(f"{source}: {len(raw)} complete row(s); the DI needs at least 2 training rows")
    categories = {f: sorted(np.unique(raw[:, features.index(f)]).tolist()) for f in categorical}
    encoded = _encode(raw, features, categories)
    center = encoded.mean(axis=0)
    scale = encoded.std(axis=0, ddof=1)
    columns = _column_names(features, categories)
    flat = [c for c, s in zip(columns, scale, strict=True) if not s > 0]
    if flat:
        raise ApplicabilityError(
            f"{source}: predictor column(s) {flat} have no variance in the training rows, so they cannot be "
            "standardised (CAST stops here too); leave them out of the DI features"
        )
    column_weights = _column_weights(weights, features, categories)
    points = (encoded - center) / scale * column_weights
    mean_distance = mean_pairwise_distance(points)
    if not mean_distance > 0:
        raise ApplicabilityError(f"{source}: every training row is at the same place in predictor space")
    nearest = _nearest_other(points, labels, source)
    train_di = nearest / mean_distance
    return TrainingDissimilarity(
        features=features,
        categories=categories,
        center=center,
        scale=scale,
        weights=column_weights,
        points=points,
        mean_distance=float(mean_distance),
        train_di=train_di,
        threshold=di_threshold(train_di, threshold),
        convention=threshold,
        folds=labels,
    )


def di_threshold(train_di: np.ndarray, convention: str = "cast") -> float:
    """AOA threshold [1] from the training DIs (NaN ignored), by a CAST convention.

    ``"cast"``: Q75 + 1.5 IQR (R ``quantile`` type 7 = numpy's default
    ``linear``), capped at the largest training DI.  ``"cast-boxplot"``: the
    upper whisker of ``grDevices::boxplot.stats`` (coef 1.5, Tukey's hinges).
    """
    di = np.sort(np.asarray(train_di, dtype=np.float64)[np.isfinite(train_di)])
    if di.size == 0:
        raise ApplicabilityError("no finite training DI to derive a threshold from")
    if convention == "cast":
        q25, q75 = np.quantile(di, [0.25, 0.75])
        return float(min(q75 + 1.5 * (q75 - q25), di[-1]))
    if convention == "cast-boxplot":
        lower, upper = _tukey_hinges(di)
        return float(di[di <= upper + 1.5 * (upper - lower)].max())
    raise ValueError(f"threshold convention must be one of {THRESHOLD_CONVENTIONS}, got {convention!r}")


def _tukey_hinges(sorted_values: np.ndarray) -> tuple[float, float]:
    """Lower and upper hinge of R's ``fivenum`` (used by ``boxplot.stats``)."""
    n = sorted_values.size
    n4 = np.floor((n + 3) / 2) / 2
    positions = np.array([n4, n + 1 - n4]) - 1  # 1-based in R
    lo = sorted_values[np.floor(positions).astype(int)]
    hi = sorted_values[np.ceil(positions).astype(int)]
    hinges = 0.5 * (lo + hi)
    return float(hinges[0]), float(hinges[1])


def _column_names(features: list[str], categories: dict[str, list[float]]) -> list[str]:
    names = []
    for f in features:
        names += [f"{f}={level:g}" for level in categories[f]] if f in categories else [f]
    return names


def _encode(raw: np.ndarray, features: list[str], categories: dict[str, list[float]]) -> np.ndarray:
    """Raw predictor rows with each categorical predictor as one 0/1 column per training level."""
    if not categories:
        return raw
    parts = []
    for j, f in enumerate(features):
        if f in categories:
            levels = np.asarray(categories[f])
            # an unseen level (or NaN) is 0 in every column, as CAST sets it; NaN stays NaN so the row is skipped
            onehot = (raw[:, j : j + 1] == levels[None, :]).astype(np.float64)
            onehot[np.isnan(raw[:, j])] = np.nan
            parts.append(onehot)
        else:
            parts.append(raw[:, j : j + 1])
    return np.concatenate(parts, axis=1)


def _column_weights(weights, features: list[str], categories: dict[str, list[float]]) -> np.ndarray:
    if weights is None:
        per_feature = np.ones(len(features))
    elif isinstance(weights, Mapping):
        absent = [f for f in features if f not in weights]
        if absent:
            raise ApplicabilityError(f"weights lack predictor(s) {absent}")
        per_feature = np.array([float(weights[f]) for f in features])
    else:
        per_feature = np.asarray(weights, dtype=np.float64)
        if per_feature.shape != (len(features),):
            raise ApplicabilityError(f"{per_feature.size} weights for {len(features)} predictors {features}")
    if not np.isfinite(per_feature).all():
        raise ApplicabilityError(f"weights must be finite, got {dict(zip(features, per_feature, strict=True))}")
    if (per_feature < 0).any():
        log.info(
            "negative DI weights set to 0 (as CAST does): %s",
            [f for f, w in zip(features, per_feature, strict=True) if w < 0],
        )
        per_feature = np.maximum(per_feature, 0.0)
    if not (per_feature > 0).any():
        raise ApplicabilityError("every DI weight is 0: no predictor would count")
    repeats = [len(categories[f]) if f in categories else 1 for f in features]
    return np.repeat(per_feature, repeats)


_PARALLEL_KERNEL = threading.Lock()


@numba.njit(nogil=True, cache=True, fastmath=True)
def _distance_sum_after(columns: np.ndarray, i: int) -> float:  # pragma: no cover - compiled
    """Sum of the distances from row ``i`` to the rows after it, in one order.

    ``columns`` holds one predictor per row (the points transposed), so that the squared differences of
    one predictor to all later rows run over contiguous memory in vector registers.
    """
    p, n = columns.shape
    later = n - 1 - i
    if later <= 0:
        return 0.0
    squares = np.zeros(later)
    for k in range(p):
        here = columns[k, i]
        column = columns[k, i + 1 :]
        for j in range(later):
            d = column[j] - here
            squares[j] += d * d
    total = 0.0
    for j in range(later):
        total += np.sqrt(squares[j])
    return total


@numba.njit(nogil=True, cache=True, parallel=True)
def _row_distance_sums(columns: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Per row of ``columns.T``, the sum of its distances to the rows after it (the same bits whatever the
    threads).

    Row ``i`` has ``n - 1 - i`` pairs: each parallel step takes row ``i`` and row ``n - 1 - i``, so that
    the threads get equal shares.
    """
    n = columns.shape[1]
    sums = np.zeros(n)
    for i in numba.prange((n + 1) // 2):
        sums[i] = _distance_sum_after(columns, i)
        if n - 1 - i != i:
            sums[n - 1 - i] = _distance_sum_after(columns, n - 1 - i)
    return sums


def mean_pairwise_distance(points: np.ndarray, *, seed: int = 0) -> float:
    """Mean Euclidean distance between two different rows of ``points`` (exact up to :data:`MAX_EXACT_PAIRS`)."""
    n = points.shape[0]
    pairs = n * (n - 1) // 2
    if pairs <= MAX_EXACT_PAIRS:
        # numba's default threading layer must not be entered by two threads at once
        with _PARALLEL_KERNEL:
            sums = _row_distance_sums(np.ascontiguousarray(points.T, dtype=np.float64))
        return float(sums.sum() / pairs)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, SAMPLED_PAIRS)
    j = rng.integers(0, n - 1, SAMPLED_PAIRS)
    j[j >= i] += 1  # a uniformly drawn other row
    log.info("mean training distance estimated from %d random pairs of %d rows", SAMPLED_PAIRS, n)
    return float(np.sqrt(((points[i] - points[j]) ** 2).sum(axis=1)).mean())


def _nearest_other(points: np.ndarray, labels: np.ndarray | None, source: str) -> np.ndarray:
    """Distance of each row to its nearest row, itself and (with labels) its own fold excluded."""
    if labels is None:
        # the nearest row is the row itself (or a duplicate at 0, which CAST counts too)
        distance, _ = cKDTree(points).query(points, k=2, workers=-1)
        return distance[:, 1]
    folds = pd.unique(labels)
    if len(folds) < 2:
        raise ApplicabilityError(
            f"{source}: every row is in fold {folds[0]!r} (one site); the training DI needs rows of two folds"
        )
    return _nearest_in_other_folds(points, labels, points, labels)


#: Neighbours asked for first when looking for a row's nearest row of another fold (then 4x, 16x, ...).
FIRST_NEIGHBOURS = 16


def _nearest_in_other_folds(
    queries: np.ndarray, query_folds: np.ndarray, points: np.ndarray, point_folds: np.ndarray
) -> np.ndarray:
    """Distance of each query row to its nearest row of ``points`` in another fold (NaN where there is none).

    One KD-tree over all points: each query's :data:`FIRST_NEIGHBOURS` nearest rows come sorted by
    distance, so the first of another fold is the nearest of another fold; queries whose neighbours are
    all of their own fold (a tower's days resemble each other) ask for 4 times as many, and past a quarter
    of the points the rest is searched in a tree of the other folds' rows, one fold at a time.
    """
    out = np.full(len(queries), np.nan)
    point_folds = np.asarray(point_folds)
    query_folds = np.asarray(query_folds)
    tree = cKDTree(points)
    left = np.arange(len(queries))
    k = FIRST_NEIGHBOURS
    while left.size and k <= max(FIRST_NEIGHBOURS, len(points) // 4):
        distance, index = tree.query(queries[left], k=min(k, len(points)), workers=-1)
        distance, index = distance.reshape(len(left), -1), index.reshape(len(left), -1)
        other = point_folds[index] != query_folds[left, None]
        found = other.any(axis=1)
        first = other.argmax(axis=1)
        out[left[found]] = distance[found, first[found]]
        left = left[~found]
        k *= 4
    for label in pd.unique(query_folds[left]):
        rows = left[query_folds[left] == label]
        others = point_folds != label
        if others.any():
            distance, _ = cKDTree(points[others]).query(queries[rows], k=1, workers=-1)
            out[rows] = distance
    return out


def held_out_di(
    reference: TrainingDissimilarity, X: np.ndarray, row_folds: np.ndarray, reference_folds: np.ndarray
) -> np.ndarray:
    """DI [1] of held-out rows against the training rows of the other folds only.

    What a cross-validated prediction saw: the row of fold ``k`` was predicted
    by a model trained without fold ``k``.  Used to relate DI to the
    cross-validation error (:func:`fit_error_model`).

    Parameters
    ----------
    reference : TrainingDissimilarity
    X : numpy.ndarray
        Raw predictor rows (rows, ``reference.features``).
    row_folds : numpy.ndarray
        CV fold of each row of ``X``.
    reference_folds : numpy.ndarray
        CV fold of each training row of ``reference`` (``reference.points``).
    """
    out = np.full(len(X), np.nan)
    complete = np.isfinite(X).all(axis=1)
    queries = reference.transform(X[complete])
    out[complete] = (
        _nearest_in_other_folds(queries, row_folds[complete], reference.points, reference_folds)
        / reference.mean_distance
    )
    return out


@dataclass
class ErrorModel:
    """Expected prediction error [flux units] as a monotone function of DI (CAST's ``DItoErrormetric``).

    Attributes
    ----------
    di, error : numpy.ndarray
        Knots of the non-decreasing step function (isotonic regression); DI
        outside the knots gets the error of the nearest end.
    window : int
        Rows per moving window of the RMSE.
    n_rows : int
        Cross-validated rows it was fitted on.
    noise_variance : float
        Variance of the observations' own random error taken out of the
        windows' mean squared error [flux units squared] (0: none); with
        ``noise_sd``, its mean over the rows.
    noise_sd : tuple of float, optional
        ``(a, b)`` where the random error's SD was taken as ``a + b |F|`` per
        row (``a`` [flux units], ``b`` [1]; :func:`random_error_sd_by_level`).
    """

    di: np.ndarray
    error: np.ndarray
    window: int
    n_rows: int
    noise_variance: float = 0.0
    noise_sd: tuple[float, float] | None = None

    def noise_text(self, units: str) -> str:
        """How the towers' random error was treated, for a layer's comment."""
        if self.noise_sd is not None:
            a, b = self.noise_sd
            return (
                f"the towers' random error taken out row by row (SD {a:.4g} {units} + {b:.4g} x |flux|, "
                f"from the residuals' nugget per flux level; mean variance {self.noise_variance:.4g} {units} squared)"
            )
        if self.noise_variance > 0:
            return f"the towers' random-error variance ({self.noise_variance:.4g} {units} squared) taken out"
        return "the towers' own random error included (the error against tower values)"

    def __call__(self, di: np.ndarray) -> np.ndarray:
        """Expected RMSE at ``di`` [flux units]; NaN where DI is NaN."""
        di = np.asarray(di, dtype=np.float64)
        return np.where(np.isnan(di), np.nan, np.interp(di, self.di, self.error))


def fit_error_model(
    di: np.ndarray,
    observed: np.ndarray,
    predicted: np.ndarray,
    *,
    window: int | None = None,
    noise_variance: float | np.ndarray = 0.0,
    noise_sd: tuple[float, float] | None = None,
) -> ErrorModel:
    """Relate the cross-validation error to DI, as CAST's ``DItoErrormetric`` does.

    Rows are sorted by DI; the RMSE over a centred moving window of ``window``
    rows (CAST: ``zoo::rollapply``, default 5 rows) is regressed on the DI of
    the window's centre with a monotone non-decreasing fit.  CAST fits a
    shape-constrained spline (``scam``, ``bs="mpi"``); this uses isotonic
    regression, which needs no smoothing choices, and keeps every held-out row
    (CAST keeps those inside the AOA), so the relation reaches the DIs of cells
    outside it.

    Parameters
    ----------
    di : numpy.ndarray
        Cross-validated DI of each held-out row (:func:`held_out_di`).
    observed, predicted : numpy.ndarray
        Tower value and cross-validated prediction [flux units].
    window : int, optional
        Rows per window; default max(5, n / 100), so that each window's RMSE
        rests on enough rows of a tower-day table.
    noise_variance : float or numpy.ndarray
        The observations' random-error variance [flux units squared], one for
        all rows or one per row: taken out of each window's mean squared
        error, so that the relation estimates the error against the true flux
        rather than against a noisy tower (:func:`random_error_variance`,
        :func:`random_error_sd_by_level`).
    noise_sd : tuple of float, optional
        The ``(a, b)`` that ``noise_variance`` came from, kept for the record.
    """
    from sklearn.isotonic import IsotonicRegression

    ok = np.isfinite(di) & np.isfinite(observed) & np.isfinite(predicted)
    order = np.argsort(di[ok], kind="stable")
    d = di[ok][order]
    noise = np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), di.shape)[ok][order]
    sq = (observed[ok][order] - predicted[ok][order]) ** 2 - noise
    n = d.size
    window = int(window or max(5, n // 100))
    if n < window:
        raise ApplicabilityError(f"{n} cross-validated rows; the DI-error relation needs at least {window}")
    rolling = np.sqrt(np.maximum(np.convolve(sq, np.ones(window) / window, mode="valid"), 0.0))
    centre = d[window // 2 : window // 2 + rolling.size]
    fit = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(centre, rolling)
    return ErrorModel(
        di=np.asarray(fit.X_thresholds_, dtype=np.float64),
        error=np.asarray(fit.y_thresholds_, dtype=np.float64),
        window=window,
        n_rows=n,
        noise_variance=float(np.mean(noise)) if n else 0.0,
        noise_sd=noise_sd,
    )


def _lag_pairs(residuals: pd.DataFrame, lag: int) -> pd.DataFrame:
    """Residual pairs ``lag`` steps apart at one site: ``residual``, ``residual_later`` (and the other columns)."""
    step = residuals.groupby("site")["time"].diff().median()
    later = residuals[["site", "time", "residual"]].assign(time=residuals["time"] - lag * step)
    return residuals.merge(later, on=["site", "time"], suffixes=("", "_later"))


def _residual_pairs(residuals: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Pairs one and two steps apart of the rows complete in ``columns``; None where either is empty."""
    ordered = residuals.dropna(subset=list(columns)).sort_values(["site", "time"])
    if ordered.empty:
        return None
    pairs = _lag_pairs(ordered, 1), _lag_pairs(ordered, 2)
    return None if any(p.empty for p in pairs) else pairs


def _nugget(lag1: pd.DataFrame, lag2: pd.DataFrame) -> float:
    """2 gamma(1) - gamma(2), kept within [0, gamma(1)] [residual units squared]."""
    gamma = [0.5 * float(np.mean((p["residual_later"] - p["residual"]).to_numpy() ** 2)) for p in (lag1, lag2)]
    return float(min(max(2 * gamma[0] - gamma[1], 0.0), gamma[0]))


def random_error_variance(residuals: pd.DataFrame) -> float:
    """Variance of the towers' random error [flux units squared]: the nugget of the residuals' variogram in time.

    A model's error at a tower changes slowly (it follows the weather and the
    season); the tower's random error does not repeat from one step to the
    next.  The semivariogram of the residuals at one site, gamma(k) = half the
    mean squared difference of residuals k steps apart, is then the noise
    variance plus a part that grows with k; extrapolating gamma(1) and
    gamma(2) linearly to lag 0 (2 gamma(1) - gamma(2), the nugget) estimates
    the noise variance.  Hollinger & Richardson (2005) estimate tower random
    error from pairs of observations one day apart; using residuals, the pairs
    need not share conditions, and the extrapolation removes what the model
    error changes in a step.  The part of the model error that changes from
    one day to the next (it follows the weather) cannot be told from noise
    this way, so the nugget tends to be somewhat too large.

    Parameters
    ----------
    residuals : pandas.DataFrame
        ``site``, ``time`` and ``residual`` (observed - predicted) per held-out row.
    """
    pairs = _residual_pairs(residuals, ["residual"])
    return 0.0 if pairs is None else _nugget(*pairs)


def random_error_sd_by_level(residuals: pd.DataFrame, n_bins: int = 8) -> tuple[float, float]:
    """The towers' random error SD as ``a + b |F|`` [flux units]: nuggets per flux level, fitted linearly.

    Tower random error grows with the flux's magnitude, linearly in its SD
    (Richardson et al. 2006, Agric. For. Meteorol. 136: the SD of paired
    observations against |F|).  The residual pairs one and two steps apart
    (:func:`random_error_variance`) are split into ``n_bins`` quantile bins of
    the first row's ``level`` (|predicted flux|); each bin's nugget gives an SD
    at the bin's mean level, and ``a`` and ``b`` are the least-squares line
    through them, weighted by the bin's pairs (both kept >= 0; with a
    negative slope, a constant SD).

    Parameters
    ----------
    residuals : pandas.DataFrame
        ``site``, ``time``, ``residual`` (observed - predicted) and ``level``
        (|predicted|) per held-out row.
    n_bins : int
        Flux-level bins.

    Returns
    -------
    (float, float)
        ``a`` [flux units] and ``b`` [1]; (0, 0) where no pairs are found.
    """
    pairs = _residual_pairs(residuals, ["residual", "level"])
    if pairs is None:
        return 0.0, 0.0
    lag1, lag2 = pairs
    edges = np.unique(np.quantile(lag1["level"], np.linspace(0.0, 1.0, n_bins + 1)))
    levels, sds, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        first, second = ((p[(p["level"] >= lo) & (p["level"] <= hi)]) for p in (lag1, lag2))
        if len(first) < 10 or len(second) < 10:
            continue
        levels.append(float(first["level"].mean()))
        sds.append(np.sqrt(_nugget(first, second)))
        counts.append(len(first))
    if not levels:
        return 0.0, 0.0
    x, y, w = np.asarray(levels), np.asarray(sds), np.asarray(counts, dtype=np.float64)
    mean_x, mean_y = np.average(x, weights=w), np.average(y, weights=w)
    spread = float(np.sum(w * (x - mean_x) ** 2))
    slope = float(np.sum(w * (x - mean_x) * (y - mean_y))) / spread if spread > 0 else 0.0
    if slope <= 0:
        return float(mean_y), 0.0
    intercept = float(mean_y - slope * mean_x)
    if intercept < 0:  # through the origin instead
        return 0.0, float(np.sum(w * x * y) / np.sum(w * x * x))
    return intercept, slope


def permutation_importance(model, table: pd.DataFrame, *, n_rows: int = 5000, seed: int = 0) -> dict[str, float]:
    """Increase of the mean squared error when one predictor is shuffled [target units squared], per predictor.

    The model-agnostic counterpart of the variable importance CAST weights by
    (caret's ``varImp`` of a random forest is a permutation importance too);
    on up to ``n_rows`` training rows, seeded.  Negative values are 0.
    """
    rows = table[[model.target, *model.features]].dropna()
    if len(rows) > n_rows:
        rows = rows.sample(n_rows, random_state=seed)
    X = rows[model.features].to_numpy(dtype=np.float32)
    y = rows[model.target].to_numpy(dtype=np.float64)
    rng = np.random.default_rng(seed)
    # the table, then one copy per predictor with that column shuffled, predicted in one call
    copies = [X]
    for j in range(X.shape[1]):
        shuffled = X.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        copies.append(shuffled)
    errors = ((model.predict_array(np.concatenate(copies)) - np.tile(y, len(copies))) ** 2).reshape(len(copies), -1)
    mse = errors.mean(axis=1)
    return {name: max(float(mse[j + 1] - mse[0]), 0.0) for j, name in enumerate(model.features)}


def importance_weights(models: Sequence, table: pd.DataFrame) -> dict[str, float]:
    """DI weights of an ensemble for one flux: each member's permutation importance as shares of its
    sum, averaged over the members (a predictor a member does not use counts 0 for it)."""
    features = sorted({f for m in models for f in m.features})
    shares = []
    for m in models:
        imp = permutation_importance(m, table)
        total = sum(imp.values())
        shares.append([imp.get(f, 0.0) / total if total > 0 else 1.0 / len(m.features) for f in features])
    return dict(zip(features, np.mean(shares, axis=0).tolist(), strict=True))


# ----------------------------------------------------------------------------------------------------------------
# xarray adapter: DI of a cube, chunk by chunk


#: Load a saved reference once per process (its KD-tree is built on first use, where the grouped search
#: does not serve a chunk).
cached_reference: LoadedOnce[TrainingDissimilarity] = LoadedOnce(TrainingDissimilarity.load)


def di_block(*blocks: np.ndarray, references: Sequence, features: Sequence[str]) -> np.ndarray:
    """Numpy core: DI [1] of one block for each reference, stacked on a last axis (float32).

    ``blocks`` are the blocks of ``features`` (every reference's predictors) then the mask block;
    ``references`` are :class:`TrainingDissimilarity` objects or paths of saved ones.  References with the
    same predictors share one search for the block's distinct rows (:func:`dissimilarity_of_rows`).
    """
    columns, mask = blocks[: len(features)], blocks[len(features)]
    shape = np.broadcast_shapes(*(b.shape for b in blocks))
    out = np.full((*shape, len(references)), np.nan, dtype=np.float32)
    valid = np.broadcast_to(mask.astype(bool), shape)
    if not valid.any():
        return out
    loaded = [cached_reference(r) if isinstance(r, str) else r for r in references]
    position = {f: j for j, f in enumerate(features)}
    by_features: dict[tuple[str, ...], list[int]] = {}
    for k, reference in enumerate(loaded):
        by_features.setdefault(tuple(reference.features), []).append(k)
    for names, ks in by_features.items():
        X = np.stack([np.broadcast_to(columns[position[f]], shape)[valid] for f in names], axis=1)
        for k, di in zip(ks, dissimilarity_of_rows([loaded[k] for k in ks], X), strict=True):
            out[valid, k] = di
    return out


def dissimilarity_layers(
    cube: xr.Dataset,
    references: Mapping[str, TrainingDissimilarity],
    *,
    mask: xr.DataArray | None = None,
    error_models: Mapping[str, ErrorModel | None] | None = None,
    units: Mapping[str, str] | None = None,
) -> xr.Dataset:
    """DI and AOA layers (and the expected error) of several fluxes at once, lazily and chunk by chunk.

    One task per chunk scores every flux: the predictors are gathered once and fluxes with the same
    predictors share the search for the chunk's distinct rows.

    Parameters
    ----------
    cube : xarray.Dataset
        Holds every predictor of the references (derived ones such as
        ``DOY_SIN`` are made from the time axis), dask-backed or not.
    references : mapping of str to TrainingDissimilarity
        Per flux name (the prefix of its layers; ``""`` for none), from
        :func:`train_dissimilarity`; saved ones (with a ``path``) are loaded
        by workers from the file, once per process, instead of travelling in every task.
    mask : xarray.DataArray, optional
        Cells to score (True); others are NaN.
    error_models : mapping of str to ErrorModel, optional
        Per flux: adds ``<name>_error``, the expected RMSE of a prediction at the cell's DI [``units``].
    units : mapping of str to str, optional
        Units of each flux (for ``<name>_error``).

    Returns
    -------
    xarray.Dataset
        Per flux ``<name>_DI`` float32 [1] and ``<name>_AOA`` int8 (1 inside, 0 outside, -1 where DI is
        missing: written as the fill value), and ``<name>_error`` float32 where an error model is given.
    """
    error_models = error_models or {}
    units = units or {}
    ydim, xdim = spatial_dims(cube)
    features = sorted({f for reference in references.values() for f in reference.features})
    arrays = resolve_features(cube, features)
    if mask is None:
        mask = xr.ones_like(cube[ydim] * cube[xdim], dtype=bool)
    stacked = xr.apply_ufunc(
        di_block,
        *[arrays[f] for f in features],
        mask,
        output_core_dims=[["reference"]],
        kwargs={"references": [r.path or r for r in references.values()], "features": features},
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"reference": len(references)}},
        keep_attrs=False,
    )
    dims = [d for d in ("time", ydim, xdim) if d in stacked.dims]
    layers = {}
    for k, (name, reference) in enumerate(references.items()):
        di = stacked.isel(reference=k, drop=True).transpose(*dims)
        layers.update(_layers_of_flux(di, reference, name, error_models.get(name), units.get(name, "1")))
    return xr.Dataset(layers)


def _layers_of_flux(
    di: xr.DataArray, reference: TrainingDissimilarity, name: str, error_model: ErrorModel | None, units: str
) -> dict[str, xr.DataArray]:
    """The DI layer of one flux with its attributes, its AOA flag and, with an error model, its error layer."""
    prefix = f"{name}_" if name else ""
    what = f" of the {name} models" if name else ""
    di.attrs = {
        "long_name": f"dissimilarity index{what} (distance in predictor space to the nearest training row)",
        "units": "1",
        "comment": (
            "Meyer & Pebesma (2021), as CAST computes it: distance to the nearest training row in standardised, "
            f"importance-weighted predictor space divided by the mean distance between training rows "
            f"({reference.mean_distance:.6g}); predictors {' '.join(reference.features)}"
        ),
    }
    # from the threshold alone: a bound method of the reference would carry its training rows into every task
    flag = xr.apply_ufunc(
        aoa_flag, di, kwargs={"threshold": reference.threshold}, dask="parallelized", output_dtypes=[np.int8]
    )
    flag.attrs = {
        "long_name": f"area of applicability{what}",
        "units": "1",
        "flag_values": np.array([0, 1], dtype=np.int8),
        "flag_meanings": "outside_area_of_applicability inside_area_of_applicability",
        "comment": (
            f"1 where {prefix}DI <= {reference.threshold:.6g} (threshold, CAST convention "
            f"{reference.convention!r}, from {reference.train_di.size} training rows)"
        ),
    }
    flag.encoding["_FillValue"] = np.int8(-1)
    out = {f"{prefix}DI": di, f"{prefix}AOA": flag}
    if error_model is not None:
        error = xr.apply_ufunc(
            lambda d: error_model(d).astype(np.float32), di, dask="parallelized", output_dtypes=[np.float32]
        )
        error.attrs = {
            "long_name": f"expected error of the {name or 'predicted'} value (RMSE at this cell's DI)",
            "units": units,
            "comment": (
                f"Monotone relation between DI and the RMSE of leave-one-site-out predictions "
                f"({error_model.n_rows} held-out rows, moving windows of {error_model.window}; CAST's "
                f"DItoErrormetric idea, isotonic fit), {error_model.noise_text(units)}. A 90 % prediction interval of "
                f"the ensemble mean is "
                f"mean +/- 1.645 * sqrt(sd**2 + {prefix}error**2), sd the ensemble standard deviation. The error "
                "depends on DI alone while real errors grow with the flux: the interval tends to be too wide for "
                "small fluxes and too narrow for large ones."
            ),
        }
        out[f"{prefix}error"] = error
    return out


def dissimilarity(
    cube: xr.Dataset,
    reference: TrainingDissimilarity,
    *,
    mask: xr.DataArray | None = None,
    name: str = "",
    error_model: ErrorModel | None = None,
    units: str = "1",
) -> xr.Dataset:
    """DI and AOA of every cell of a cube (and the expected error), lazily and chunk by chunk.

    Parameters
    ----------
    cube : xarray.Dataset
        Holds every predictor of ``reference`` (derived ones such as
        ``DOY_SIN`` are made from the time axis), dask-backed or not.
    reference : TrainingDissimilarity
        From :func:`train_dissimilarity`; with a ``path`` (saved), workers load
        it from the file once each instead of receiving it in every task.
    mask : xarray.DataArray, optional
        Cells to score (True); others are NaN.
    name : str
        Prefix of the variable names (``"GPP"`` gives ``GPP_DI`` and ``GPP_AOA``).
    error_model : ErrorModel, optional
        Adds ``<name>_error``: the expected RMSE of a prediction at the cell's DI [``units``].
    units : str
        Units of the flux ``name`` (for ``<name>_error``).

    Returns
    -------
    xarray.Dataset
        ``<name>_DI`` float32 [1] and ``<name>_AOA`` int8 (1 inside, 0 outside,
        -1 where DI is missing: written as the fill value), and ``<name>_error``
        float32 [``units``] with an error model.  Several fluxes:
        :func:`dissimilarity_layers`, which scores them in one pass.
    """
    return dissimilarity_layers(
        cube, {name: reference}, mask=mask, error_models={name: error_model}, units={name: units}
    )


@dataclass
class AOAResult:
    """What :func:`aoa` returns.

    Attributes
    ----------
    DI, AOA : pandas.Series or xarray.DataArray
        Per row (or cell) of ``new``: the dissimilarity index [1] and the area
        of applicability (1 inside, 0 outside; -1 / NaN where a predictor is missing).
    threshold : float
        DI threshold [1].
    train_di : numpy.ndarray
        DI of each complete training row.
    reference : TrainingDissimilarity
        The training side, reusable on other data (:meth:`TrainingDissimilarity.di`).
    """

    DI: pd.Series | xr.DataArray
    AOA: pd.Series | xr.DataArray
    threshold: float
    train_di: np.ndarray
    reference: TrainingDissimilarity


def aoa(
    train: pd.DataFrame,
    new: pd.DataFrame | xr.Dataset,
    features: Sequence[str],
    weights: Mapping[str, float] | Sequence[float] | None = None,
    folds: str | Sequence | np.ndarray | None = None,
    *,
    categorical: Sequence[str] = (),
    threshold: str = "cast",
) -> AOAResult:
    """Dissimilarity index and area of applicability of ``new`` with respect to ``train`` (CAST's ``aoa``).

    Parameters
    ----------
    train : pandas.DataFrame
        Training table with the ``features`` columns.
    new : pandas.DataFrame or xarray.Dataset
        Rows, or a cube (lazily, chunk by chunk) to score.
    features : sequence of str
        Predictors.
    weights : mapping or sequence, optional
        Per-predictor weights (variable importance); None: unweighted.
    folds : str or array-like, optional
        Column name or labels of ``train``: rows of one fold never count as
        each other's neighbours in the training DI (the site, for towers).
    categorical : sequence of str
        Class-code predictors to one-hot encode.
    threshold : str
        ``"cast"`` (default) or ``"cast-boxplot"``.

    Returns
    -------
    AOAResult
        ``DI`` and ``AOA`` shaped like ``new`` (Series on its index, or
        DataArrays on the cube's grid), ``threshold`` and ``train_di``.

    Examples
    --------
    >>> result = ux.aoa(table, cube, ["TA", "SW_IN", "NIRv"], folds="site")  # doctest: +SKIP
    >>> float(result.AOA.where(result.AOA >= 0).mean())  # share of cells inside  # doctest: +SKIP
    """
    reference = train_dissimilarity(
        train, features, weights=weights, folds=folds, categorical=categorical, threshold=threshold
    )
    if isinstance(new, xr.Dataset):
        scored = dissimilarity(new, reference)
        di, flag = scored["DI"], scored["AOA"]
    else:
        absent = [f for f in reference.features if f not in new.columns]
        if absent:
            raise ApplicabilityError(f"new data lacks predictor column(s) {absent}")
        values = reference.di(new[reference.features].to_numpy(dtype=np.float64))
        di = pd.Series(values, index=new.index, name="DI")
        flag = pd.Series(reference.aoa(values), index=new.index, name="AOA")
    return AOAResult(DI=di, AOA=flag, threshold=reference.threshold, train_di=reference.train_di, reference=reference)
