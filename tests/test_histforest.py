import numpy as np
import pytest

from uflux_xr.models.histforest import Binner, HistForest, fit_forest, resolve_max_features


def data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 5))
    y = np.where(X[:, 0] > 0.5, 3.0, -1.0) + 2 * X[:, 1] + 0.1 * rng.normal(size=n)
    return X, y


def test_binner_orders_values_and_reserves_a_nan_bin():
    X = np.array([[0.1, 5.0], [0.3, 5.0], [0.2, np.nan], [0.9, 7.0]])
    b = Binner.fit(X, n_bins=255)
    codes = b.transform(X)
    assert codes.dtype == np.uint8
    assert list(codes[:, 0]) == [0, 2, 1, 3]  # few distinct values: one bin each, in order
    assert codes[2, 1] == 255  # NaN
    many = np.random.default_rng(0).normal(size=(10_000, 1))
    coarse = Binner.fit(many, n_bins=16).transform(many)
    assert coarse.max() == 15 and len(np.unique(coarse)) == 16
    counts = np.bincount(coarse[:, 0])
    assert counts.min() > 0.8 * counts.mean()  # quantile bins are balanced
    restored = Binner.from_arrays(b.to_arrays("b_"), "b_")
    np.testing.assert_array_equal(restored.transform(X), codes)
    with pytest.raises(ValueError, match="n_bins"):
        Binner.fit(X, n_bins=300)


def test_forest_learns_and_oob_is_out_of_bag():
    X, y = data()
    b = Binner.fit(X)
    xt = np.ascontiguousarray(b.transform(X).T)
    forest, oob = fit_forest(xt, y, n_trees=30, seed=1)
    inbag = forest.predict_binned(b.transform(X))
    mse_in, mse_oob = np.mean((inbag - y) ** 2), np.mean((oob - y) ** 2)
    assert mse_oob < 0.1 * np.var(y)  # learns the step and the slope
    assert mse_in < mse_oob  # out-of-bag predictions are honest, in-bag ones are optimistic
    Xt, yt = data(seed=5)
    assert np.mean((forest.predict_binned(b.transform(Xt)) - yt) ** 2) == pytest.approx(mse_oob, rel=0.5)


def test_determinism_thread_independence_and_options():
    X, y = data(1500)
    xt = np.ascontiguousarray(Binner.fit(X).transform(X).T)
    a, oob_a = fit_forest(xt, y, n_trees=12, seed=3, n_threads=1)
    b, oob_b = fit_forest(xt, y, n_trees=12, seed=3, n_threads=2)
    np.testing.assert_array_equal(oob_a, oob_b)
    np.testing.assert_array_equal(a.value, b.value)
    c, _ = fit_forest(xt, y, n_trees=12, seed=4)
    assert c.value.size != a.value.size or not np.array_equal(c.value, a.value)
    extra, _ = fit_forest(xt, y, n_trees=12, seed=3, extra=True)
    assert not np.array_equal(extra.feature, a.feature)
    assert a.n_trees == 12
    shallow, _ = fit_forest(xt, y, n_trees=5, seed=3, max_depth=3)
    assert _max_depth(shallow) <= 3 < _max_depth(a)
    big_leaves, _ = fit_forest(xt, y, n_trees=5, seed=3, min_samples_leaf=50)
    assert big_leaves.value.size < 0.1 * a.value.size / 12 * 5


def _max_depth(forest: HistForest) -> int:
    deepest = 0
    for t in range(forest.n_trees):
        base = forest.offsets[t]
        stack = [(0, 0)]
        while stack:
            node, depth = stack.pop()
            deepest = max(deepest, depth)
            left = forest.left[base + node]
            if left >= 0:
                stack += [(left, depth + 1), (left + 1, depth + 1)]
    return deepest


def _leaves(forest: HistForest) -> list[int]:
    return [int((forest.left[lo:hi] < 0).sum()) for lo, hi in zip(forest.offsets[:-1], forest.offsets[1:], strict=True)]


def test_max_leaf_nodes_grows_best_first_as_scikit_learn():
    """A leaf limit grows the tree best-first, as scikit-learn's BestFirstTreeBuilder.

    Features are small integers, so each value is its own bin and both trees see
    the same candidate splits; with every feature tried and no bootstrap both
    split the open node whose split lowers the squared error most.
    """
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(2)
    X = rng.integers(0, 60, size=(4000, 4)).astype(float)
    y = np.sin(X[:, 0] / 9) + X[:, 1] / 30 + 0.3 * rng.normal(size=4000)
    xb = Binner.fit(X).transform(X)
    assert all(len(np.unique(xb[:, j])) == 60 for j in range(4))  # one bin per value
    xt = np.ascontiguousarray(xb.T)
    for limit in (2, 7, 40):
        ours, _ = fit_forest(xt, y, n_trees=1, max_features=None, max_leaf_nodes=limit, bootstrap=False, seed=1)
        reference = DecisionTreeRegressor(max_leaf_nodes=limit, random_state=0).fit(X, y)
        assert _leaves(ours) == [limit] and ours.n_nodes == 2 * limit - 1
        # Leaf values are stored as float32: compare at its resolution over the target's scale.
        np.testing.assert_allclose(ours.predict_binned(xb), reference.predict(X), rtol=0, atol=1e-6 * np.ptp(y))


def test_max_leaf_nodes_bounds_trees_and_only_changes_when_to_stop():
    X, y = data(1500)
    xt = np.ascontiguousarray(Binner.fit(X).transform(X).T)
    for extra in (False, True):
        limited, oob = fit_forest(xt, y, n_trees=6, seed=3, max_leaf_nodes=16, extra=extra)
        assert max(_leaves(limited)) <= 16 and min(_leaves(limited)) == 16
        assert np.mean((oob - y) ** 2) < 0.35 * np.var(y)  # 16 leaves still learn the step and slope
        shallow, _ = fit_forest(xt, y, n_trees=6, seed=3, max_leaf_nodes=16, max_depth=2, extra=extra)
        assert _max_depth(shallow) <= 2 and max(_leaves(shallow)) <= 4  # the depth limit still holds
    # A limit above the leaves of a fully grown tree only changes the order of growth: the tree
    # still grows until every leaf is pure, with as many leaves, and fits the training rows alike.
    # (Which of several equally good features splits a two-row node follows the random feature
    # order, so the two trees need not agree away from the training rows.)
    full, _ = fit_forest(xt, y, n_trees=3, seed=3, bootstrap=False)
    unbounded, _ = fit_forest(xt, y, n_trees=3, seed=3, bootstrap=False, max_leaf_nodes=10**6)
    assert _leaves(unbounded) == _leaves(full)
    xb = np.ascontiguousarray(xt.T)
    np.testing.assert_array_equal(unbounded.predict_binned(xb), full.predict_binned(xb))


def test_max_features_resolution():
    assert resolve_max_features("sqrt", 12) == 3
    assert resolve_max_features(None, 12) == 12
    assert resolve_max_features(0.5, 12) == 6
    assert resolve_max_features(20, 12) == 12
    with pytest.raises(ValueError, match="max_features"):
        resolve_max_features("all", 12)
