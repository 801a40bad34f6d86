"""Histogram random forests and extra-trees on binned features, with out-of-bag
predictions: the building block of the cascade forest.

Features are binned to at most 255 ordinal bins (uint8; NaN gets its own last
bin) once, as DF21 does; trees then split on bin thresholds.  A node's
histogram only visits the bins its rows occupy, so deep nodes with few rows
cost what they hold, not 256 bins.  Each tree is grown on a bootstrap sample
(multiplicities as weights); rows it never drew are its out-of-bag rows.

The loops are compiled with numba (``nogil``), so trees are built and
predicted in parallel Python threads, and a forest is a handful of flat
arrays: easy to store without pickle and safe to share between threads.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

MISSING_BIN_LIMIT = 255  # bins 0..n_bins-1 hold values; bin n_bins holds NaN


# ---------------------------------------------------------------------------
# Binning
# ---------------------------------------------------------------------------


@dataclass
class Binner:
    """Per-feature bin edges from quantiles of (a subsample of) the training data.

    ``transform`` maps a value v to ``searchsorted(edges, v, side="right")``, so
    bins are ordered like values; NaN maps to bin ``n_bins``.
    """

    edges: list[np.ndarray]
    n_bins: int

    @classmethod
    def fit(cls, X: np.ndarray, n_bins: int = 255, subsample: int = 200_000, seed: int = 0) -> Binner:
        if not 2 <= n_bins <= MISSING_BIN_LIMIT:
            raise ValueError(f"n_bins must be in [2, 255], got {n_bins}")
        X = np.asarray(X, dtype=np.float64)
        if X.shape[0] > subsample:
            rows = np.random.default_rng(seed).choice(X.shape[0], subsample, replace=False)
            X = X[rows]
        edges = []
        for j in range(X.shape[1]):
            col = X[:, j][np.isfinite(X[:, j])]
            uniq = np.unique(col)
            if uniq.size <= n_bins:
                e = (uniq[:-1] + uniq[1:]) / 2.0  # one bin per distinct value
            else:
                q = np.quantile(col, np.linspace(0.0, 1.0, n_bins + 1)[1:-1], method="midpoint")
                e = np.unique(q)
            edges.append(e.astype(np.float64))
        return cls(edges, n_bins)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Bin codes (n, features) as uint8, C-contiguous."""
        X = np.asarray(X, dtype=np.float64)
        if X.shape[1] != len(self.edges):
            raise ValueError(f"expected {len(self.edges)} features, got {X.shape[1]}")
        out = np.empty(X.shape, dtype=np.uint8)
        for j, e in enumerate(self.edges):
            col = X[:, j]
            codes = np.searchsorted(e, col, side="right")
            codes[np.isnan(col)] = self.n_bins
            out[:, j] = codes
        return out

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        counts = np.array([len(e) for e in self.edges], dtype=np.int64)
        flat = np.concatenate(self.edges) if self.edges else np.empty(0)
        return {f"{prefix}edges": flat, f"{prefix}counts": counts, f"{prefix}nbins": np.array([self.n_bins])}

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str) -> Binner:
        counts = arrays[f"{prefix}counts"]
        bounds = np.concatenate([[0], np.cumsum(counts)])
        flat = arrays[f"{prefix}edges"]
        return cls(
            [flat[a:b].copy() for a, b in zip(bounds[:-1], bounds[1:], strict=True)], int(arrays[f"{prefix}nbins"][0])
        )


# ---------------------------------------------------------------------------
# numba cores
# ---------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _node_split(xt, idx, pw, py, lo, hi, sw, ss, max_features, min_samples_leaf, extra, order, h_w, h_s, h_n, touched):
    """Best split of the node holding rows ``idx[lo:hi]``: (gain, feature, bin threshold).

    ``gain`` is the decrease of the node's weighted sum of squared errors, the
    quantity scikit-learn's best-first builder ranks nodes by; feature -1 when
    no split is allowed.  The histogram buffers are left zeroed.
    """
    n_features = xt.shape[0]
    n_rows = hi - lo
    parent_score = ss * ss / sw
    best_gain = 1e-12 * abs(parent_score) + 1e-300
    best_f = -1
    best_t = -1
    # Random order of features; stop after max_features non-constant ones.
    for k in range(n_features - 1, 0, -1):
        j = np.random.randint(0, k + 1)
        order[k], order[j] = order[j], order[k]
    tried = 0
    for k in range(n_features):
        if tried >= max_features:
            break
        f = order[k]
        row = xt[f]
        n_touched = 0
        for i in range(lo, hi):
            b = row[idx[i]]
            if h_n[b] == 0:
                touched[n_touched] = b
                n_touched += 1
            h_n[b] += 1
            h_w[b] += pw[i]
            h_s[b] += pw[i] * py[i]
        if n_touched > 1:
            tried += 1
            if extra:
                # Extra-trees: one threshold drawn uniformly between the node's min and max bin.
                bmin = touched[0]
                bmax = touched[0]
                for m in range(1, n_touched):
                    b = touched[m]
                    if b < bmin:
                        bmin = b
                    if b > bmax:
                        bmax = b
                t = np.random.randint(bmin, bmax)
                wl = 0.0
                sl = 0.0
                nl = 0
                for m in range(n_touched):
                    b = touched[m]
                    if b <= t:
                        wl += h_w[b]
                        sl += h_s[b]
                        nl += h_n[b]
                nr = n_rows - nl
                if nl >= min_samples_leaf and nr >= min_samples_leaf:
                    wr = sw - wl
                    gain = sl * sl / wl + (ss - sl) * (ss - sl) / wr - parent_score
                    if gain > best_gain:
                        best_gain, best_f, best_t = gain, f, t
            else:
                # Bins in increasing order, without allocating: insertion sort when
                # few bins are occupied, otherwise a scan of all bins.
                if n_touched <= 24:
                    for m in range(1, n_touched):
                        key = touched[m]
                        q = m - 1
                        while q >= 0 and touched[q] > key:
                            touched[q + 1] = touched[q]
                            q -= 1
                        touched[q + 1] = key
                    n_sorted = n_touched
                else:
                    n_sorted = 0
                    for b in range(256):
                        if h_n[b] > 0:
                            touched[n_sorted] = b
                            n_sorted += 1
                wl = 0.0
                sl = 0.0
                nl = 0
                for m in range(n_sorted - 1):
                    b = touched[m]
                    wl += h_w[b]
                    sl += h_s[b]
                    nl += h_n[b]
                    nr = n_rows - nl
                    if nl < min_samples_leaf:
                        continue
                    if nr < min_samples_leaf:
                        break
                    wr = sw - wl
                    gain = sl * sl / wl + (ss - sl) * (ss - sl) / wr - parent_score
                    if gain > best_gain:
                        best_gain, best_f, best_t = gain, f, b
        for m in range(n_touched):
            b = touched[m]
            h_n[b] = 0
            h_w[b] = 0.0
            h_s[b] = 0.0
    return best_gain, best_f, best_t


@numba.njit(nogil=True, cache=True)
def _node_stats(pw, py, lo, hi, min_samples_leaf, max_depth, depth):
    """(weight, weighted sum, splittable) of the node holding rows ``lo:hi``.

    A node is not split when it has fewer than two leaves' worth of rows, sits
    at ``max_depth`` or has a constant target.
    """
    sw = 0.0
    ss = 0.0
    for i in range(lo, hi):
        sw += pw[i]
        ss += pw[i] * py[i]
    if hi - lo < 2 * min_samples_leaf or (max_depth >= 0 and depth >= max_depth):
        return sw, ss, False
    y0 = py[lo]
    for i in range(lo + 1, hi):
        if py[i] != y0:
            return sw, ss, True
    return sw, ss, False


@numba.njit(nogil=True, cache=True)
def _partition(xt, idx, pw, py, lo, hi, f, t):
    """Reorder rows ``lo:hi`` so rows with bin <= ``t`` of feature ``f`` come first; returns the split point."""
    row = xt[f]
    i = lo
    j = hi - 1
    while i <= j:
        if row[idx[i]] <= t:
            i += 1
        else:
            idx[i], idx[j] = idx[j], idx[i]
            pw[i], pw[j] = pw[j], pw[i]
            py[i], py[j] = py[j], py[i]
            j -= 1
    return i


@numba.njit(nogil=True, cache=True)
def _build_tree(xt, y, counts, max_features, min_samples_leaf, max_depth, max_leaf_nodes, extra, seed):
    """Grow one regression tree on binned features.

    Parameters
    ----------
    xt : uint8 array (features, rows)
        Binned features, one contiguous row per feature.
    y : float64 array (rows,)
    counts : int32 array (rows,)
        Bootstrap multiplicity of each row (0 = not drawn).
    max_features : int
        Features tried per node (at least one non-constant one is always tried).
    min_samples_leaf : int
        Minimum distinct rows per leaf.
    max_depth : int
        Maximum depth, -1 for none.
    max_leaf_nodes : int
        Maximum number of leaves, -1 for none.  With a limit the tree grows
        best-first, as scikit-learn's ``BestFirstTreeBuilder``: the open node
        whose best split lowers the squared error most is split next.  Without
        one it grows depth-first, every splittable node being split.
    extra : bool
        Extra-trees: one random threshold per feature instead of the best.
    seed : int

    Returns
    -------
    feature (int16), threshold (uint8 bin), left (int32, -1 at leaves; the right
    child is always ``left + 1``) and value (float32) of the nodes.
    """
    np.random.seed(seed)
    n_features = xt.shape[0]
    idx = np.flatnonzero(counts > 0).astype(np.int64)
    n = idx.size
    # Weights and targets kept in node order (permuted with idx) for sequential access.
    pw = np.empty(n, np.float64)
    py = np.empty(n, np.float64)
    for i in range(n):
        pw[i] = counts[idx[i]]
        py[i] = y[idx[i]]
    cap = 2 * n + 1
    feature = np.full(cap, -1, np.int32)
    threshold = np.zeros(cap, np.int32)
    left = np.full(cap, -1, np.int32)
    value = np.zeros(cap, np.float64)

    h_w = np.zeros(256, np.float64)
    h_s = np.zeros(256, np.float64)
    h_n = np.zeros(256, np.int64)
    touched = np.empty(256, np.int64)
    order = np.arange(n_features)

    # Open nodes: a stack (depth-first) or a frontier searched for the largest gain (best-first).
    open_node = np.empty(cap, np.int64)
    open_lo = np.empty(cap, np.int64)
    open_hi = np.empty(cap, np.int64)
    open_depth = np.empty(cap, np.int64)
    open_gain = np.empty(cap, np.float64)
    open_f = np.empty(cap, np.int64)
    open_t = np.empty(cap, np.int64)
    open_node[0], open_lo[0], open_hi[0], open_depth[0] = 0, 0, n, 0
    n_open = 1
    n_nodes = 1
    best_first = max_leaf_nodes > 0
    if best_first:
        # The frontier holds only nodes that can be split, with their best split found.
        sw, ss, splittable = _node_stats(pw, py, 0, n, min_samples_leaf, max_depth, 0)
        value[0] = ss / sw
        n_open = 0
        if splittable:
            gain, f, t = _node_split(
                xt, idx, pw, py, 0, n, sw, ss, max_features, min_samples_leaf, extra, order, h_w, h_s, h_n, touched
            )
            if f >= 0:
                open_gain[0], open_f[0], open_t[0] = gain, f, t
                n_open = 1
    n_leaves = 1

    while n_open > 0:
        if best_first:
            if n_leaves >= max_leaf_nodes:
                break
            k = 0
            for m in range(1, n_open):
                if open_gain[m] > open_gain[k]:
                    k = m
            node, lo, hi, depth = open_node[k], open_lo[k], open_hi[k], open_depth[k]
            best_f, best_t = open_f[k], open_t[k]
            n_open -= 1
            open_node[k], open_lo[k], open_hi[k], open_depth[k] = (
                open_node[n_open],
                open_lo[n_open],
                open_hi[n_open],
                open_depth[n_open],
            )
            open_gain[k], open_f[k], open_t[k] = open_gain[n_open], open_f[n_open], open_t[n_open]
        else:
            n_open -= 1
            node, lo, hi, depth = open_node[n_open], open_lo[n_open], open_hi[n_open], open_depth[n_open]
            sw, ss, splittable = _node_stats(pw, py, lo, hi, min_samples_leaf, max_depth, depth)
            value[node] = ss / sw
            if not splittable:
                continue
            gain, best_f, best_t = _node_split(
                xt, idx, pw, py, lo, hi, sw, ss, max_features, min_samples_leaf, extra, order, h_w, h_s, h_n, touched
            )
            if best_f < 0:
                continue
        mid = _partition(xt, idx, pw, py, lo, hi, best_f, best_t)
        feature[node] = best_f
        threshold[node] = best_t
        left[node] = n_nodes
        n_leaves += 1
        if best_first:
            d = depth + 1
            for child, c_lo, c_hi in ((n_nodes, lo, mid), (n_nodes + 1, mid, hi)):
                sw, ss, splittable = _node_stats(pw, py, c_lo, c_hi, min_samples_leaf, max_depth, d)
                value[child] = ss / sw
                if not splittable:
                    continue
                gain, f, t = _node_split(
                    xt,
                    idx,
                    pw,
                    py,
                    c_lo,
                    c_hi,
                    sw,
                    ss,
                    max_features,
                    min_samples_leaf,
                    extra,
                    order,
                    h_w,
                    h_s,
                    h_n,
                    touched,
                )
                if f >= 0:
                    open_node[n_open], open_lo[n_open], open_hi[n_open], open_depth[n_open] = child, c_lo, c_hi, d
                    open_gain[n_open], open_f[n_open], open_t[n_open] = gain, f, t
                    n_open += 1
        else:
            open_node[n_open], open_lo[n_open], open_hi[n_open], open_depth[n_open] = n_nodes + 1, mid, hi, depth + 1
            n_open += 1
            open_node[n_open], open_lo[n_open], open_hi[n_open], open_depth[n_open] = n_nodes, lo, mid, depth + 1
            n_open += 1
        n_nodes += 2

    return (
        feature[:n_nodes].astype(np.int16),
        threshold[:n_nodes].astype(np.uint8),
        left[:n_nodes].copy(),
        value[:n_nodes].astype(np.float32),
    )


@numba.njit(nogil=True, cache=True)
def _predict_rows(xb, feature, threshold, left, value, offsets, out):
    """Add the mean prediction of the trees in ``offsets`` to ``out`` for rows of binned ``xb``.

    Trees are the outer loop over blocks of rows, so one tree's nodes stay in
    cache while a block of rows walks it.
    """
    n_trees = offsets.size - 1
    n = xb.shape[0]
    block = 2048
    acc = np.zeros(min(block, n), np.float64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        acc[: stop - start] = 0.0
        for t in range(n_trees):
            base = offsets[t]
            for i in range(start, stop):
                node = base
                while left[node] >= 0:
                    if xb[i, feature[node]] <= threshold[node]:
                        node = base + left[node]
                    else:
                        node = base + left[node] + 1
                acc[i - start] += value[node]
        for i in range(start, stop):
            out[i] += acc[i - start] / n_trees


@numba.njit(nogil=True, cache=True)
def _predict_tree_subset(xt, rows, feature, threshold, left, value):
    """Predictions of one tree for the listed rows of feature-major binned ``xt``."""
    out = np.empty(rows.size, np.float64)
    for k in range(rows.size):
        r = rows[k]
        node = 0
        while left[node] >= 0:
            if xt[feature[node], r] <= threshold[node]:
                node = left[node]
            else:
                node = left[node] + 1
        out[k] = value[node]
    return out


# ---------------------------------------------------------------------------
# Forest
# ---------------------------------------------------------------------------


def resolve_max_features(max_features, n_features: int) -> int:
    """Number of features tried per node: ``"sqrt"``, ``"log2"``, ``None`` (all), an int or a fraction."""
    if max_features is None:
        return n_features
    if max_features == "sqrt":
        return max(1, int(math.sqrt(n_features)))
    if max_features == "log2":
        return max(1, int(math.log2(n_features)))
    if isinstance(max_features, float) and 0 < max_features <= 1:
        return max(1, int(max_features * n_features))
    if isinstance(max_features, int) and max_features >= 1:
        return min(max_features, n_features)
    raise ValueError(f"max_features must be 'sqrt', 'log2', None, an int >= 1 or a fraction, got {max_features!r}")


FOREST_FIELDS = ("feature", "threshold", "left", "value", "offsets")


@dataclass
class HistForest:
    """A fitted forest: its trees as flat node arrays with per-tree offsets.

    Node ``k`` of tree ``t`` is at ``offsets[t] + k``; ``left`` is the tree-local
    index of the left child (-1 at leaves) and the right child follows it.
    11 bytes a node: int16 feature, uint8 threshold bin, int32 left, float32 value.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    value: np.ndarray
    offsets: np.ndarray

    @property
    def n_trees(self) -> int:
        return self.offsets.size - 1

    @property
    def n_nodes(self) -> int:
        return self.value.size

    @classmethod
    def concatenate(cls, forests: list[HistForest]) -> HistForest:
        """One forest holding the trees of all ``forests`` (its prediction is the mean over all trees)."""
        sizes = np.concatenate([np.diff(f.offsets) for f in forests])
        return cls(
            **{k: np.concatenate([getattr(f, k) for f in forests]) for k in FOREST_FIELDS if k != "offsets"},
            offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        )

    def predict_binned(self, xb: np.ndarray, n_threads: int = 1) -> np.ndarray:
        """Mean tree prediction for binned rows ``xb`` (n, features), uint8."""
        xb = np.ascontiguousarray(xb, dtype=np.uint8)
        out = np.zeros(xb.shape[0], dtype=np.float64)
        if n_threads <= 1 or xb.shape[0] < 2048:
            _predict_rows(xb, self.feature, self.threshold, self.left, self.value, self.offsets, out)
            return out
        parts = np.array_split(np.arange(xb.shape[0]), n_threads)

        def work(rows):
            sub = np.zeros(rows.size)
            _predict_rows(
                xb[rows[0] : rows[-1] + 1], self.feature, self.threshold, self.left, self.value, self.offsets, sub
            )
            out[rows[0] : rows[-1] + 1] = sub

        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(work, [p for p in parts if p.size]))
        return out

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{k}": getattr(self, k) for k in FOREST_FIELDS}

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str) -> HistForest:
        return cls(**{k: arrays[f"{prefix}{k}"] for k in FOREST_FIELDS})


def fit_forest(
    xt: np.ndarray,
    y: np.ndarray,
    *,
    n_trees: int = 100,
    extra: bool = False,
    max_features="sqrt",
    min_samples_leaf: int = 1,
    max_depth: int | None = None,
    max_leaf_nodes: int | None = None,
    bootstrap: bool = True,
    seed: int = 0,
    n_threads: int = 1,
) -> tuple[HistForest, np.ndarray]:
    """Fit a random forest (``extra=False``) or extra-trees forest on binned features.

    Parameters
    ----------
    xt : numpy.ndarray
        Binned features, feature-major: uint8 array (features, rows).
    y : numpy.ndarray
        Target (rows,).
    n_trees : int
        Trees in the forest.
    extra : bool
        Extremely randomised trees (random thresholds).
    max_features : str, int, float or None
        Features tried per node (see :func:`resolve_max_features`).
    min_samples_leaf : int
        Minimum distinct training rows per leaf.
    max_depth : int or None
        Maximum tree depth.
    max_leaf_nodes : int or None
        Maximum leaves per tree, grown best-first (see :func:`_build_tree`).
    bootstrap : bool
        Grow each tree on a bootstrap sample (needed for out-of-bag predictions).
    seed : int
        Seed; tree ``i`` uses a seed derived from it, so results do not depend on
        ``n_threads``.
    n_threads : int
        Threads growing trees.

    Returns
    -------
    forest : HistForest
    oob : numpy.ndarray
        Out-of-bag prediction per row (mean over the trees that did not draw it);
        rows drawn by every tree get the forest's in-bag prediction.  With
        ``bootstrap=False`` this is the in-bag prediction.
    """
    xt = np.ascontiguousarray(xt, dtype=np.uint8)
    y = np.ascontiguousarray(y, dtype=np.float64)
    n_features, n = xt.shape
    mtry = resolve_max_features(max_features, n_features)
    rng = np.random.default_rng(seed)
    tree_seeds = rng.integers(0, 2**31 - 1, n_trees)
    if bootstrap:
        count_list = [
            np.bincount(np.random.default_rng(s).integers(0, n, n), minlength=n).astype(np.int32) for s in tree_seeds
        ]
    else:
        count_list = [np.ones(n, np.int32)] * n_trees

    def grow(t):
        return _build_tree(
            xt,
            y,
            count_list[t],
            mtry,
            int(min_samples_leaf),
            -1 if max_depth is None else int(max_depth),
            -1 if max_leaf_nodes is None else int(max_leaf_nodes),
            bool(extra),
            int(tree_seeds[t]),
        )

    if n_threads > 1:
        with ThreadPoolExecutor(n_threads) as pool:
            trees = list(pool.map(grow, range(n_trees)))
    else:
        trees = [grow(t) for t in range(n_trees)]

    oob_sum = np.zeros(n)
    oob_n = np.zeros(n)
    for t, (f, th, le, va) in enumerate(trees):
        rows = np.flatnonzero(count_list[t] == 0) if bootstrap else np.arange(n)
        if rows.size:
            oob_sum[rows] += _predict_tree_subset(xt, rows, f, th, le, va)
            oob_n[rows] += 1
    sizes = np.array([tr[0].size for tr in trees], dtype=np.int64)
    forest = HistForest(
        feature=np.concatenate([tr[0] for tr in trees]),
        threshold=np.concatenate([tr[1] for tr in trees]),
        left=np.concatenate([tr[2] for tr in trees]),
        value=np.concatenate([tr[3] for tr in trees]),
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
    )
    oob = np.divide(oob_sum, oob_n, out=np.zeros(n), where=oob_n > 0)
    never = oob_n == 0
    if never.any():
        oob[never] = forest.predict_binned(np.ascontiguousarray(xt[:, never].T))
    return forest, oob
