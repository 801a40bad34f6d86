"""Exact distance from many rows to their nearest training row, fast where the rows share a coarse part.

The dissimilarity index (:mod:`uflux_xr.grid.applicability`) needs, for every
cell of a product, the distance to the nearest training row in standardised,
weighted predictor space.  On a fine grid whose weather comes from a coarse
reanalysis (ERA5-Land's 9 km given to 100 m cells by nearest neighbour), the
rows of a chunk fall into few *groups* that share every value of their coarse
columns (the weather, the day of year, the land-cover class) and differ only
in a few field-scale columns (the vegetation indices).  For a query ``q`` of
group ``g`` and a training row ``t``, the squared distance splits exactly::

    |q - t|^2 = c_g(t) + |q_fine - t_fine|^2,    c_g(t) = |g_coarse - t_coarse|^2

``c_g`` is computed once per group for every training row, and it bounds the
distance from below: a training row with ``c_g(t)`` at or above the best
squared distance found so far cannot be closer.  Per group the search

1. measures every query against the :data:`SEED_ROWS` training rows of
   smallest ``c_g`` (an upper bound of each query's nearest distance);
2. walks the training rows whose ``c_g`` is below the largest such bound in
   increasing ``c_g``, measuring the fine part, and stops for a query as soon
   as ``c_g`` alone reaches its best.

The result is the same nearest row as an exhaustive search (ties within float
rounding aside).  Its distance is then recomputed from the two full rows, one
column after the other in the order of the training columns (:func:`distance_to_rows`),
as for rows found by the KD-tree, so the two searches give the same bits for
the same nearest row and a cell's DI does not depend on which search its chunk took.

The grouped search pays ``groups x training rows x coarse columns`` for the
``c_g`` and, per query, the training rows its walk measures; a KD-tree pays
per query.  :func:`grouped_search_pays` says where the first does not pay
(use the tree): no coarse column, or too many groups
(:data:`GROUPED_WORK_PER_QUERY`); and the search leaves its remaining rows to
the tree where the walks turn out long (:data:`MAX_VISITS`), which happens
where the coarse part is a small share of the distances.  On a UK 100 m chunk
(1.2 M land cell-days, 12,000 training rows, 18 columns, 5 fluxes) it takes
1/8 of the KD-tree's time (``benchmarks/di_profile.py``; figures in
``benchmarks/README.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from uflux_xr.models.dedup import unique_rows

#: Training rows of smallest coarse distance each query is measured against first (its upper bound).
SEED_ROWS = 4
#: Rows (a strided sample of the distinct rows) that decide which columns are coarse.
COARSE_SAMPLE = 65_536
#: A column is coarse when its distinct values in the sample number at most this share of the sample.
COARSE_SHARE = 1 / 64
#: The grouped search is used when groups x training rows x coarse columns is at most this many times the
#: number of distinct query rows: about where computing the groups' coarse distances costs as much as the
#: KD-tree's queries (a KD-tree query over 12,000 rows in 18 dimensions takes ~1-2 us on the 2-core VM).
GROUPED_WORK_PER_QUERY = 1000
#: Queries searched before the grouped search judges its own pace (then after every group).
PROBE_ROWS = 1_000
#: Training rows a query's walk may measure on average (besides its seeds) before the grouped search
#: leaves the rest to the KD-tree: where the fine part, not the shared one, separates the rows, the
#: shared part prunes little (a walk costs ~3 ns per row, a KD-tree query ~1-2 us on the 2-core VM).
MAX_VISITS = 200


@dataclass(frozen=True)
class RowGroups:
    """Query rows grouped by the values of their coarse columns.

    Attributes
    ----------
    coarse : numpy.ndarray
        bool per raw column: the columns a group shares.
    first : numpy.ndarray
        int64 (groups,): a row of each group (its coarse values are the group's).
    inverse : numpy.ndarray
        int64 (rows,): the group of each row.
    order : numpy.ndarray
        int64 (rows,): the rows sorted by group.
    starts : numpy.ndarray
        int64 (groups + 1,): group ``g`` is ``order[starts[g]:starts[g + 1]]``.
    """

    coarse: np.ndarray
    first: np.ndarray
    inverse: np.ndarray
    order: np.ndarray
    starts: np.ndarray

    @property
    def n_groups(self) -> int:
        return len(self.first)


def coarse_columns(rows: np.ndarray) -> np.ndarray:
    """Columns of ``rows`` (n, p) that take few distinct values (:data:`COARSE_SHARE` of a sample): bool (p,)."""
    n = rows.shape[0]
    sample = rows[:: max(1, n // COARSE_SAMPLE)]
    limit = max(1, int(len(sample) * COARSE_SHARE))
    return np.array([np.unique(sample[:, j]).size <= limit for j in range(rows.shape[1])], dtype=bool)


def group_rows(rows: np.ndarray) -> RowGroups | None:
    """Distinct finite float64 rows (n, p) grouped by their coarse columns (:func:`coarse_columns`); None
    without any."""
    coarse = coarse_columns(rows)
    if not coarse.any() or len(rows) == 0:
        return None
    first, inverse = unique_rows(np.ascontiguousarray(rows[:, coarse]).view(np.uint64))
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(first) + 1)).astype(np.int64)
    return RowGroups(coarse=coarse, first=first, inverse=inverse, order=order, starts=starts)


def grouped_search_pays(groups: RowGroups | None, n_training: int, coarse_width: int) -> bool:
    """Whether the grouped search beats a KD-tree for these groups (:data:`GROUPED_WORK_PER_QUERY`).

    Parameters
    ----------
    groups : RowGroups or None
        From :func:`group_rows`.
    n_training : int
        Training rows the queries are measured against.
    coarse_width : int
        Columns of the coarse part in the space searched (a categorical column becomes several).
    """
    if groups is None:
        return False
    return groups.n_groups * n_training * coarse_width <= GROUPED_WORK_PER_QUERY * len(groups.order)


@numba.njit(nogil=True, cache=True)
def _smallest(values, k):  # pragma: no cover - compiled
    """Indices of the ``k`` smallest values, in one pass (an insertion into ``k`` sorted places; faster
    than a partition for small ``k``, as most values fail the first comparison)."""
    top = np.full(k, np.inf)
    at = np.zeros(k, np.int64)
    for t in range(values.size):
        v = values[t]
        if v < top[k - 1]:
            j = k - 1
            while j > 0 and top[j - 1] > v:
                top[j] = top[j - 1]
                at[j] = at[j - 1]
                j -= 1
            top[j] = v
            at[j] = t
    return at


@numba.njit(nogil=True, cache=True)
def _grouped_nearest(
    starts, coarse_queries, fine_queries, coarse_columns, fine_points, seeds, probe_rows, max_visits
):  # pragma: no cover - compiled
    """Index of the nearest training row of each query (queries in group order); see the module docstring.

    ``coarse_columns`` is the training rows' coarse part transposed (coarse columns, training rows).
    Whenever, after a group and ``probe_rows`` queries or more, the walks so far have measured more than
    ``max_visits`` training rows per query on average, the search stops: the queries of the groups left
    get -1.
    """
    n_groups, n_coarse = coarse_queries.shape
    n_points = coarse_columns.shape[1]
    n_fine = fine_queries.shape[1]
    nearest = np.empty(fine_queries.shape[0], np.int64)
    best = np.empty(fine_queries.shape[0])
    shared = np.empty(n_points)
    n_seeds = min(seeds, n_points)
    visits = 0
    for g in range(n_groups):
        done = starts[g]
        if done >= probe_rows and visits > max_visits * done:
            nearest[done:] = -1
            return nearest
        # column by column over all training rows: the inner loop runs over rows and vectorises
        shared[:] = 0.0
        for k in range(n_coarse):
            here = coarse_queries[g, k]
            column = coarse_columns[k]
            for t in range(n_points):
                d = here - column[t]
                shared[t] += d * d
        seed_rows = _smallest(shared, n_seeds)
        bound = 0.0
        for i in range(starts[g], starts[g + 1]):
            top, at = np.inf, -1
            for t in seed_rows:
                s = shared[t]
                for k in range(n_fine):
                    d = fine_queries[i, k] - fine_points[t, k]
                    s += d * d
                if s < top:
                    top, at = s, t
            best[i], nearest[i] = top, at
            bound = max(bound, top)
        candidates = np.nonzero(shared < bound)[0]
        candidates = candidates[np.argsort(shared[candidates])]
        for i in range(starts[g], starts[g + 1]):
            top, at = best[i], nearest[i]
            for t in candidates:
                s = shared[t]
                if s >= top:
                    break  # the fine part is >= 0: no later row can be closer
                for k in range(n_fine):
                    d = fine_queries[i, k] - fine_points[t, k]
                    s += d * d
                visits += 1
                if s < top:
                    top, at = s, t
            nearest[i] = at
    return nearest


def grouped_nearest(
    groups: RowGroups,
    coarse_queries: np.ndarray,
    fine_queries: np.ndarray,
    coarse_points: np.ndarray,
    fine_points: np.ndarray,
) -> np.ndarray:
    """Index of the nearest training row of each query row, by the grouped search.

    Parameters
    ----------
    groups : RowGroups
        From :func:`group_rows`.
    coarse_queries : numpy.ndarray
        float64 (groups, c): each group's coarse part, in the space of the points.
    fine_queries : numpy.ndarray
        float64 (rows, f): each row's fine part, rows in their original order.
    coarse_points, fine_points : numpy.ndarray
        float64 (training rows, c) and (training rows, f): the training rows' parts.

    Returns
    -------
    numpy.ndarray
        int64 (rows,): the nearest training row of each query row, or -1 for the rows the search left
        to a KD-tree: where the shared part does not keep the fine part's work small (once the walks of
        :data:`PROBE_ROWS` queries or more have measured over :data:`MAX_VISITS` training rows each on
        average).
    """
    nearest = np.empty(len(groups.order), np.int64)
    nearest[groups.order] = _grouped_nearest(
        groups.starts,
        np.ascontiguousarray(coarse_queries, dtype=np.float64),
        np.ascontiguousarray(fine_queries[groups.order], dtype=np.float64),
        np.ascontiguousarray(np.asarray(coarse_points, dtype=np.float64).T),
        np.ascontiguousarray(fine_points, dtype=np.float64),
        SEED_ROWS,
        PROBE_ROWS,
        MAX_VISITS,
    )
    return nearest


@numba.njit(nogil=True, cache=True)
def _split_distances(coarse_queries, group, fine_queries, points, column_is_coarse, nearest):  # pragma: no cover
    position = np.empty(column_is_coarse.size, np.int64)
    n_coarse = n_fine = 0
    for k in range(column_is_coarse.size):
        if column_is_coarse[k]:
            position[k] = n_coarse
            n_coarse += 1
        else:
            position[k] = n_fine
            n_fine += 1
    out = np.empty(fine_queries.shape[0])
    for i in range(fine_queries.shape[0]):
        s = 0.0
        for k in range(column_is_coarse.size):
            if column_is_coarse[k]:
                d = coarse_queries[group[i], position[k]] - points[nearest[i], k]
            else:
                d = fine_queries[i, position[k]] - points[nearest[i], k]
            s += d * d
        out[i] = np.sqrt(s)
    return out


def distance_to_rows(
    points: np.ndarray,
    nearest: np.ndarray,
    queries: np.ndarray,
    *,
    groups: RowGroups | None = None,
    coarse_queries: np.ndarray | None = None,
    column_is_coarse: np.ndarray | None = None,
) -> np.ndarray:
    """Euclidean distance of each query row to ``points[nearest]``, summed column after column.

    One arithmetic for both searches, so that the same nearest row gives the same bits.

    Parameters
    ----------
    points : numpy.ndarray
        float64 (training rows, columns).
    nearest : numpy.ndarray
        int64 (rows,): a training row per query row.
    queries : numpy.ndarray
        float64 (rows, columns) full query rows, or with ``groups`` their fine
        part (rows, fine columns).
    groups, coarse_queries, column_is_coarse : optional
        For queries split as the grouped search takes them: the groups, each
        group's coarse part (groups, coarse columns) and which columns of
        ``points`` are coarse.
    """
    if groups is None:
        column_is_coarse = np.zeros(points.shape[1], dtype=bool)
        coarse_queries = np.zeros((1, 0))
        group = np.zeros(len(queries), np.int64)
    else:
        group = groups.inverse
    return _split_distances(
        np.ascontiguousarray(coarse_queries, dtype=np.float64),
        group,
        np.ascontiguousarray(queries, dtype=np.float64),
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(column_is_coarse, dtype=np.bool_),
        np.ascontiguousarray(nearest, dtype=np.int64),
    )
