"""Exact deduplicated inference for tree ensembles.

A tree ensemble sees a feature only through the side of each split threshold a
value falls on.  Code every value by the interval between the model's sorted
thresholds that holds it, and two rows with equal codes follow the same path
through every tree: their predictions are identical, to the last bit.  On a
fine grid whose climate comes from a coarse reanalysis (nearest-neighbour
regridding), thousands of cells share their codes, so predicting one row per
distinct code vector and scattering the results back does a fraction of the
work (see issue #15 and ``benchmarks/uk_100m.py``).

How a value compares with a threshold differs between libraries, and the
interval code must follow it:

=================  ===========================  ==================  ============
model              goes left when               compared as         code
=================  ===========================  ==================  ============
XGBoost            ``x < t``                    float32             ``#{t <= x}``
LightGBM           ``x <= t``                   float64             ``#{t < x}``
scikit-learn tree  ``x <= t``                   float64 (x float32) ``#{t < x}``
cascade forest     bin ``searchsorted(e, x)``   float64             ``#{e <= x}``
=================  ===========================  ==================  ============

NaN gets its own code (every library sends it one way per node).  LightGBM
also reads values within ±1e-35 of zero as 0 (and as missing where a split's
``missing_type`` is ``Zero``); extra boundaries give that band its own code.
Models whose prediction depends on values beyond such comparisons (LightGBM
linear trees, categorical splits) have no coder and are predicted plainly.

The unique rows are found with an open-addressing hash of the packed codes
(numba): ``np.unique(axis=0)`` sorts rows and costs most of a predict.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Literal

import numba
import numpy as np

log = logging.getLogger(__name__)

#: LightGBM's kZeroThreshold: values with ``|x| <= 1e-35`` count as zero (and as missing under
#: ``missing_type=Zero``), LightGBM include/LightGBM/meta.h.
LIGHTGBM_ZERO = 1e-35


@dataclass(frozen=True)
class IntervalCoder:
    """The split thresholds of a fitted tree model, per feature, and how values compare with them.

    Attributes
    ----------
    thresholds : tuple of numpy.ndarray
        Per feature, the sorted distinct thresholds (``dtype``) the model compares that feature with.
    dtype : numpy.dtype
        The precision the model compares in: float32 (XGBoost) or float64.
    side : {"left", "right"}
        ``numpy.searchsorted`` side that gives the interval code: "right" for models that go left
        when ``x < t``, "left" for models that go left when ``x <= t``.
    """

    thresholds: tuple[np.ndarray, ...]
    dtype: np.dtype
    side: Literal["left", "right"]

    @property
    def n_features(self) -> int:
        return len(self.thresholds)

    @property
    def bits(self) -> tuple[int, ...]:
        """Bits per feature code: values take codes 0..len(t), NaN takes len(t) + 1."""
        return tuple(max(1, math.ceil(math.log2(t.size + 2))) for t in self.thresholds)

    @functools.cached_property
    def signature(self) -> tuple:
        """Per feature, what its code depends on (thresholds, precision, side): equal signatures give
        equal codes, so models with equal ones can share a chunk's codes (:class:`ChunkCodes`)."""
        return tuple((self.dtype.str, self.side, t.tobytes()) for t in self.thresholds)

    def codes_of_columns(self, columns) -> np.ndarray:
        """Packed interval codes of rows given as one 1-D array per feature: uint64 (n, words), C order.

        A value's code is ``searchsorted(thresholds, value, side)`` in the coder's precision and
        NaN's is ``len(thresholds) + 1``, packed at the feature's bits (:attr:`bits`).
        """
        if len(columns) != self.n_features:
            raise ValueError(f"expected {self.n_features} feature columns, got {len(columns)}")
        layout = _pack_layout(self.bits)
        words = 1 + max(w for w, _ in layout) if layout else 1
        n = len(columns[0]) if columns else 0
        keys = np.zeros((n, words), dtype=np.uint64)
        for column, t, (word, shift) in zip(columns, self.thresholds, layout, strict=True):
            values = np.ascontiguousarray(column).astype(self.dtype, copy=False)
            _code_column(values, t, self.side == "right", keys, word, shift)
        return keys

    def codes(self, X: np.ndarray) -> np.ndarray:
        """Packed interval codes of the rows of ``X`` (n, features): uint64 (n, words), C order."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected an array of shape (n, {self.n_features}), got {X.shape}")
        return self.codes_of_columns([X[:, j] for j in range(self.n_features)])


@numba.njit(nogil=True, cache=True)
def _code_column(values, thresholds, right, keys, word, shift):
    """OR each value's interval code, shifted by ``shift``, into ``keys[:, word]``.

    The code is numpy's ``searchsorted`` (side "right" when ``right``: the count of thresholds
    <= the value, else of thresholds < it) and NaN's is ``len(thresholds) + 1``.  A value equal
    to the one before reuses its code: on a fine grid with nearest-regridded climate most
    climate values repeat their neighbour (-0.0 and 0.0 compare equal, and code alike)."""
    m = thresholds.size
    nan_code = np.uint64(m + 1)
    step = np.uint64(shift)
    previous = values[0] if values.size else 0.0
    previous_code = np.uint64(0)
    known = False
    for i in range(values.size):
        v = values[i]
        if np.isnan(v):
            code = nan_code
        elif known and v == previous:
            code = previous_code
        else:
            lo, hi = 0, m
            while lo < hi:
                mid = (lo + hi) // 2
                if thresholds[mid] < v or (right and thresholds[mid] == v):
                    lo = mid + 1
                else:
                    hi = mid
            code = np.uint64(lo)
            previous, previous_code, known = v, code, True
        keys[i, word] |= code << step


def _pack_layout(bits: tuple[int, ...]) -> list[tuple[int, int]]:
    """(word, bit shift) of each feature's code in 64-bit words, filled in order."""
    layout, word, used = [], 0, 0
    for b in bits:
        if b > 64:
            raise ValueError(f"a feature code needs {b} bits")
        if used + b > 64:
            word, used = word + 1, 0
        layout.append((word, used))
        used += b
    return layout


def coder_from_thresholds(per_feature: list, dtype, side: Literal["left", "right"], extra=()) -> IntervalCoder:
    """An :class:`IntervalCoder` from the thresholds found per feature (plus ``extra`` boundaries for all)."""
    dtype = np.dtype(dtype)
    out = []
    for values in per_feature:
        t = np.asarray([*values, *extra], dtype=np.float64).astype(dtype)
        out.append(np.unique(t[np.isfinite(t)]))
    return IntervalCoder(tuple(out), dtype, side)


# ------------------------------------------------------------------ per library


def xgboost_coder(raw: bytes, n_features: int) -> IntervalCoder | None:
    """Coder of an XGBoost model (its JSON form), or None for categorical splits or a linear booster."""
    import xgboost as xgb

    model = json.loads(xgb.Booster(model_file=bytearray(raw)).save_raw("json"))
    booster = model["learner"]["gradient_booster"]
    if booster["name"] == "dart":
        booster = booster["gbtree"]
    if booster.get("name") != "gbtree":
        return None
    per_feature: list[list[float]] = [[] for _ in range(n_features)]
    for tree in booster["model"]["trees"]:
        if any(tree.get("split_type", [])) or tree.get("categories_nodes"):
            return None
        left = np.asarray(tree["left_children"])
        internal = left >= 0
        feature = np.asarray(tree["split_indices"])[internal]
        value = np.asarray(tree["split_conditions"], dtype=np.float64)[internal]
        for j in np.unique(feature):
            per_feature[int(j)].extend(value[feature == j])
    return coder_from_thresholds(per_feature, np.float32, "right")


def lightgbm_coder(model_str: str, n_features: int) -> IntervalCoder | None:
    """Coder of a LightGBM model (its text form), or None for categorical splits or linear trees."""
    per_feature: list[list[float]] = [[] for _ in range(n_features)]
    features: list[int] = []
    for line in model_str.splitlines():
        if line.startswith("is_linear=") and line.strip() != "is_linear=0":
            return None
        if line.startswith("split_feature="):
            features = [int(v) for v in line.split("=", 1)[1].split()]
        elif line.startswith("threshold="):
            values = [float(v) for v in line.split("=", 1)[1].split()]
            for j, v in zip(features, values, strict=True):
                per_feature[j].append(v)
        elif line.startswith("decision_type="):
            if any(int(v) & 1 for v in line.split("=", 1)[1].split()):  # bit 0: categorical split
                return None
        elif line.startswith("end of trees"):
            break
    # The band LightGBM counts as zero gets its own codes, [-z, z] under "#{t < x}".  For float32
    # input the test runs in float32 (|x| <= 1e-35f, measured: x = float32(1e-35) > 1e-35 predicts
    # as 0), so both the float64 and the float32 band edges are boundaries.
    extra = []
    for z in (LIGHTGBM_ZERO, float(np.float32(LIGHTGBM_ZERO))):
        extra += [np.nextafter(-z, -np.inf), z]
    return coder_from_thresholds(per_feature, np.float64, "left", extra=extra)


def sklearn_trees_coder(trees, n_features: int) -> IntervalCoder:
    """Coder of scikit-learn regression trees (``Tree`` objects): ``x <= t`` in float64."""
    per_feature: list[list[float]] = [[] for _ in range(n_features)]
    for tree in trees:
        internal = tree.children_left >= 0
        feature, value = tree.feature[internal], tree.threshold[internal]
        for j in np.unique(feature):
            per_feature[int(j)].extend(value[feature == j])
    return coder_from_thresholds(per_feature, np.float64, "left")


def binner_coder(edges: list[np.ndarray]) -> IntervalCoder:
    """Coder of a :class:`~uflux_xr.models.histforest.Binner`: its codes are its bins."""
    return IntervalCoder(tuple(np.asarray(e, dtype=np.float64) for e in edges), np.dtype(np.float64), "right")


# ------------------------------------------------------------------ unique rows


@numba.njit(nogil=True, cache=True)
def _unique_keys(keys):
    """First row of each distinct key row, and each row's distinct-key index (open addressing)."""
    n, w = keys.shape
    size = 16
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.full(size, -1, np.int64)
    first = np.empty(n, np.int64)
    inverse = np.empty(n, np.int64)
    n_unique = 0
    for i in range(n):
        h = np.uint64(0x9E3779B97F4A7C15)
        for k in range(w):
            h = (h ^ keys[i, k]) * np.uint64(0xBF58476D1CE4E5B9)
            h = h ^ (h >> np.uint64(29))
        slot = h & mask
        while True:
            u = table[slot]
            if u < 0:
                table[slot] = n_unique
                first[n_unique] = i
                inverse[i] = n_unique
                n_unique += 1
                break
            r = first[u]
            same = True
            for k in range(w):
                if keys[r, k] != keys[i, k]:
                    same = False
                    break
            if same:
                inverse[i] = u
                break
            slot = (slot + np.uint64(1)) & mask
    return first[:n_unique].copy(), inverse


def unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of packed codes.

    Parameters
    ----------
    keys : numpy.ndarray
        uint64 (n, words), from :meth:`IntervalCoder.codes`.

    Returns
    -------
    first : numpy.ndarray
        int64 index of the first row of each distinct key, in order of appearance.
    inverse : numpy.ndarray
        int64 (n,): for each row, the position of its key in ``first``.
    """
    return _unique_keys(np.ascontiguousarray(keys, dtype=np.uint64))


# ------------------------------------------------------------------ prediction


#: Chunks a process dedups for each model before deciding whether dedup pays there.
PROBE_CHUNKS = 2
#: Dedup stays on when its measured time is below this share of the estimated plain time.
KEEP_IF_BELOW = 0.9


@dataclass
class DedupStats:
    """What deduplication did for one model in this process."""

    chunks: int = 0
    rows: int = 0
    unique_rows: int = 0
    plain_rows: int = 0
    code_seconds: float = 0.0
    predict_seconds: float = 0.0
    plain_seconds: float = 0.0
    enabled: bool | None = None  # None: still probing
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def unique_fraction(self) -> float:
        return self.unique_rows / self.rows if self.rows else float("nan")

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "lock"}


_stats: dict[str, DedupStats] = {}
_stats_lock = threading.Lock()


def _stats_for(key: str) -> DedupStats:
    with _stats_lock:
        return _stats.setdefault(key, DedupStats())


def dedup_stats() -> dict[str, dict]:
    """Per model (its file path or label), what deduplication did in this process so far."""
    with _stats_lock:
        return {k: v.as_dict() for k, v in _stats.items()}


def reset_dedup_stats() -> None:
    """Forget the counts and decisions of :func:`dedup_stats` (a new run decides afresh)."""
    with _stats_lock:
        _stats.clear()


def merge_stats(parts) -> dict[str, dict]:
    """Sum :func:`dedup_stats` dictionaries from several processes (workers)."""
    out: dict[str, dict] = {}
    for part in parts:
        for key, s in part.items():
            m = out.setdefault(key, {k: 0 for k in s if k != "enabled"} | {"enabled": []})
            for k, v in s.items():
                if k == "enabled":
                    m[k].append(v)
                else:
                    m[k] += v
    return out


def _use_dedup(stats: DedupStats, coder: IntervalCoder | None, mode, n_rows: int) -> bool:
    """Whether this call deduplicates: a coder, not switched off (by the caller or by ``"auto"``'s
    measurement), and at least two rows."""
    on = coder is not None and mode is not False and (mode is True or stats.enabled is not False)
    return on and n_rows >= 2


def _record_plain(stats: DedupStats, rows: int, seconds: float) -> None:
    with stats.lock:
        stats.plain_rows += rows
        stats.plain_seconds += seconds


def _record_dedup(stats: DedupStats, key: str, mode, rows: int, unique: int, code_s: float, predict_s: float) -> None:
    """Count a deduplicated call and, in ``"auto"`` mode after :data:`PROBE_CHUNKS` chunks, decide."""
    with stats.lock:
        stats.chunks += 1
        stats.rows += rows
        stats.unique_rows += unique
        stats.code_seconds += code_s
        stats.predict_seconds += predict_s
        if mode == "auto" and stats.enabled is None and stats.chunks >= PROBE_CHUNKS:
            # A plain predict would cost the unique rows' predict time scaled to all rows.
            plain = stats.predict_seconds / max(stats.unique_rows, 1) * stats.rows
            stats.enabled = stats.code_seconds + stats.predict_seconds < KEEP_IF_BELOW * plain
            log.debug(
                "dedup for %s: %.1f %% unique rows, %s",
                key,
                100 * stats.unique_fraction,
                "kept" if stats.enabled else "switched off (it does not pay here)",
            )


def predict_dedup(predict, coder: IntervalCoder | None, X: np.ndarray, *, key: str, mode="auto") -> np.ndarray:
    """``predict(X)`` computed once per distinct interval-code row and scattered back.

    Parameters
    ----------
    predict : callable
        ``predict(X) -> (n,)`` of the model (one thread).
    coder : IntervalCoder or None
        The model's coder; None predicts plainly.
    X : numpy.ndarray
        Rows to predict (n, features).
    key : str
        Names the model in :func:`dedup_stats`.
    mode : {"auto", True, False}
        ``True`` always dedups, ``False`` never, ``"auto"`` dedups the first
        :data:`PROBE_CHUNKS` chunks of each model in a process and keeps doing
        so only where it measured faster than a plain predict would be.

    Returns
    -------
    numpy.ndarray
        The predictions, identical to ``predict(X)``.
    """
    stats = _stats_for(key)
    if not _use_dedup(stats, coder, mode, X.shape[0]):
        t0 = time.perf_counter()
        out = predict(X)
        _record_plain(stats, X.shape[0], time.perf_counter() - t0)
        return out
    assert coder is not None
    t0 = time.perf_counter()
    first, inverse = unique_rows(coder.codes(X))
    t1 = time.perf_counter()
    out = np.asarray(predict(X[first]))[inverse]
    _record_dedup(stats, key, mode, X.shape[0], first.size, t1 - t0, time.perf_counter() - t1)
    return out


class ChunkCodes:
    """One chunk's feature columns, with their complete rows and interval codes shared by its models.

    The models of a chunk that see the same features (an ensemble member's fluxes, the members
    of a kind) are coded together: each feature once, with the union of those models'
    thresholds, and the distinct rows of the union codes found once.  A union interval lies
    inside one interval of every model's own thresholds, so rows with equal union codes have
    equal codes for each model; each model then refines the union's distinct rows (a few per
    cent of the chunk) by its own codes and predicts its own distinct rows only.  One task's
    object: not thread-safe.

    Parameters
    ----------
    columns : mapping
        Each feature's float32 values at the chunk's cells (equal lengths), by any hashable key.
    coders : iterable of (features, IntervalCoder)
        The coders of the models that will ask :meth:`unique`, each with its feature keys.
    """

    def __init__(self, columns, coders=()):
        self.columns = dict(columns)
        self._rows: dict[tuple, np.ndarray] = {}
        self._unique: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        found: dict[tuple, list[IntervalCoder]] = {}
        for features, coder in coders:
            found.setdefault(self._group(features, coder), []).append(coder)
        self._unions = {key: _union(coders) for key, coders in found.items()}

    @staticmethod
    def _group(features, coder: IntervalCoder) -> tuple:
        return (tuple(features), coder.dtype.str, coder.side)

    def rows(self, features) -> np.ndarray:
        """Indices (int64) of the cells where every one of ``features`` is finite."""
        features = tuple(features)
        if features not in self._rows:
            finite = np.logical_and.reduce([np.isfinite(self.columns[f]) for f in features])
            self._rows[features] = np.flatnonzero(finite)
        return self._rows[features]

    def matrix(self, features, index: np.ndarray | None = None) -> np.ndarray:
        """float32 (rows, features) of the complete rows, or of ``rows(features)[index]``."""
        rows = self.rows(features)
        rows = rows if index is None else rows[index]
        return np.stack([self.columns[f][rows] for f in features], axis=1).astype(np.float32, copy=False)

    def unique(self, coder: IntervalCoder, features) -> tuple[np.ndarray, np.ndarray, float]:
        """:func:`unique_rows` of the complete rows of ``features`` under ``coder`` (positions in
        :meth:`rows`), and the seconds this call spent (0 where a model with the same coder asked first)."""
        features = tuple(features)
        key = (features, coder.signature)
        if key in self._unique:
            return (*self._unique[key], 0.0)
        started = time.perf_counter()
        union = self._unions.get(self._group(features, coder), coder)
        union_key = (features, union.signature)
        if union_key not in self._unique:
            rows = self.rows(features)
            self._unique[union_key] = unique_rows(union.codes_of_columns([self.columns[f][rows] for f in features]))
        if union_key != key:  # refine the union's distinct rows by the model's own codes
            first_union, inverse_union = self._unique[union_key]
            first, inverse = unique_rows(coder.codes(self.matrix(features, first_union)))
            self._unique[key] = (first_union[first], inverse[inverse_union])
        return (*self._unique[key], time.perf_counter() - started)


def _union(coders: list[IntervalCoder]) -> IntervalCoder:
    """One coder whose thresholds are the union of ``coders``' (same features, precision and side)."""
    first = coders[0]
    if all(c.signature == first.signature for c in coders):
        return first
    thresholds = tuple(np.unique(np.concatenate(t)) for t in zip(*(c.thresholds for c in coders), strict=True))
    return IntervalCoder(thresholds, first.dtype, first.side)


def predict_chunk_rows(predict, coder: IntervalCoder | None, chunk: ChunkCodes, features, *, key: str, mode="auto"):
    """``predict`` of the complete rows of ``features`` in ``chunk``, deduplicated as :func:`predict_dedup`
    (same modes and counts), with the codes and distinct rows shared through ``chunk``.

    Returns
    -------
    numpy.ndarray
        The predictions at ``chunk.rows(features)``, identical to ``predict(chunk.matrix(features))``.
    """
    stats = _stats_for(key)
    n_rows = chunk.rows(features).size
    if not _use_dedup(stats, coder, mode, n_rows):
        X = chunk.matrix(features)
        t0 = time.perf_counter()
        out = predict(X)
        _record_plain(stats, n_rows, time.perf_counter() - t0)
        return out
    assert coder is not None
    first, inverse, code_s = chunk.unique(coder, features)
    t1 = time.perf_counter()
    out = np.asarray(predict(chunk.matrix(features, first)))[inverse]
    _record_dedup(stats, key, mode, n_rows, first.size, code_s, time.perf_counter() - t1)
    return out
