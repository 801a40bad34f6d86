"""The grouped nearest-row search against an exhaustive one, on rows shaped like a fine grid under a coarse climate."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uflux_xr.grid import applicability, nearest
from uflux_xr.grid.applicability import (
    TrainingDissimilarity,
    dissimilarity,
    dissimilarity_layers,
    dissimilarity_of_rows,
    mean_pairwise_distance,
    permutation_importance,
    train_dissimilarity,
)
from uflux_xr.grid.nearest import coarse_columns, group_rows, grouped_search_pays

FEATURES = ["TA", "SW_IN", "IGBP", "NIRv", "EVI2"]


def _fine_grid_rows(rng, n_climate=30, per_cell=400, igbp_levels=(1.0, 4.0, 10.0, 12.0)):
    """Rows of 100 m cells: the weather of a climate cell shared by its cells, land cover from a few
    classes, vegetation indices of every cell (and some cells repeated, as in a real chunk)."""
    climate = np.column_stack([rng.normal(12, 6, n_climate), rng.uniform(20, 300, n_climate)])
    cell_climate = np.repeat(climate, per_cell, axis=0)
    igbp = rng.choice(igbp_levels, len(cell_climate))
    nirv = rng.uniform(0.02, 0.5, len(cell_climate))
    evi2 = 0.8 * nirv + rng.normal(0, 0.05, len(cell_climate))
    rows = np.column_stack([cell_climate, igbp, nirv, evi2])
    return np.concatenate([rows, rows[rng.integers(0, len(rows), len(rows) // 3)]])


def _training_table(rng, n_sites=12, days=60, igbp_levels=(1.0, 4.0, 10.0, 12.0)):
    n = n_sites * days
    return pd.DataFrame(
        {
            "TA": rng.normal(11, 7, n),
            "SW_IN": rng.uniform(10, 320, n),
            "IGBP": np.repeat(rng.choice(igbp_levels, n_sites), days),
            "NIRv": rng.uniform(0.0, 0.55, n),
            "EVI2": rng.uniform(0.0, 0.6, n),
            "site": np.repeat([f"S{k}" for k in range(n_sites)], days),
        }
    )


def _exhaustive(reference, rows):
    """Nearest distance of each row by a full distance matrix, float64 (an independent reading)."""
    queries = reference.transform(rows)
    out = np.empty(len(rows))
    for start in range(0, len(rows), 2000):
        block = queries[start : start + 2000]
        out[start : start + 2000] = np.sqrt(((block[:, None, :] - reference.points[None]) ** 2).sum(-1)).min(1)
    return out


@pytest.mark.parametrize("weights", [None, {"TA": 3.0, "SW_IN": 1.0, "IGBP": 0.5, "NIRv": 2.0, "EVI2": 0.1}])
def test_grouped_search_finds_the_exhaustive_nearest_row(weights):
    rng = np.random.default_rng(40)
    reference = train_dissimilarity(_training_table(rng), FEATURES, weights=weights, folds="site", categorical=["IGBP"])
    rows = _fine_grid_rows(rng)
    distinct = np.unique(rows, axis=0)
    groups = group_rows(distinct)
    # the climate and the land cover are coarse; the vegetation indices are not
    np.testing.assert_array_equal(groups.coarse, [True, True, True, False, False])
    assert groups.n_groups <= 30 * 4
    assert grouped_search_pays(groups, len(reference.points), int(groups.coarse[reference.column_feature].sum()))
    got = reference.nearest_distance(distinct, groups)
    want = _exhaustive(reference, distinct)
    # float64 sums of the same squares in another order: equal to rounding
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    # the same nearest rows as the KD-tree, and the same arithmetic afterwards: the same bits
    np.testing.assert_array_equal(got, reference.nearest_distance(distinct, None))


def test_grouped_search_edge_cases_every_column_coarse_and_few_training_rows():
    rng = np.random.default_rng(41)
    # every query column coarse (no fine part left), and fewer training rows than SEED_ROWS
    table = pd.DataFrame({"a": rng.normal(size=9), "b": rng.normal(size=9), "site": list("AAABBBCCC")})
    reference = train_dissimilarity(table, ["a", "b"], folds="site")
    # 80 levels per column: each column coarse in 6,400 distinct rows, so every row is a group of its own
    a, b = np.meshgrid(rng.normal(size=80), rng.normal(size=80))
    distinct = np.column_stack([a.ravel(), b.ravel()])
    groups = group_rows(distinct)
    assert groups is not None and groups.coarse.all() and groups.n_groups == len(distinct)
    np.testing.assert_allclose(
        reference.nearest_distance(distinct, groups), _exhaustive(reference, distinct), rtol=1e-12
    )
    # rows without a coarse column: no groups, the KD-tree answers
    continuous = rng.normal(size=(3000, 2))
    assert not coarse_columns(continuous).any() and group_rows(continuous) is None
    np.testing.assert_allclose(
        reference.nearest_distance(continuous, None), _exhaustive(reference, continuous), rtol=1e-12
    )


def test_grouped_search_declines_where_groups_are_too_many():
    groups = nearest.RowGroups(
        coarse=np.array([True, False]),
        first=np.arange(900),
        inverse=np.arange(1000) % 900,
        order=np.arange(1000),
        starts=np.arange(901),
    )
    # 900 groups x 12,000 training rows x 1 column = 1.08e7 > 1000 x 1000 rows
    assert not grouped_search_pays(groups, 12_000, 1)
    assert grouped_search_pays(groups, 1_000, 1)
    assert not grouped_search_pays(None, 10, 1)


def test_di_and_aoa_of_a_fine_grid_equal_the_exhaustive_ones_for_several_fluxes():
    """The issue's check: DI within float rounding of the exact DI, and the AOA identical outside a band
    of that width around the threshold; several references share one pass."""
    rng = np.random.default_rng(42)
    table = _training_table(rng)
    references = [
        train_dissimilarity(table, FEATURES, weights=w, folds="site", categorical=["IGBP"])
        for w in ([1, 1, 1, 1, 1], [5, 0.2, 0.1, 2, 2], [0.1, 3, 0, 0.5, 0.5])
    ]
    rows = _fine_grid_rows(rng)
    rows[rng.integers(0, len(rows), 50), 3] = np.nan  # cells with a missing index
    got = dissimilarity_of_rows(references, rows)
    complete = np.isfinite(rows).all(axis=1)
    for reference, di in zip(references, got, strict=True):
        assert np.isnan(di[~complete]).all()
        exact = _exhaustive(reference, rows[complete]) / reference.mean_distance
        np.testing.assert_allclose(di[complete], exact, rtol=1e-12, atol=0)
        outside_band = np.abs(exact - reference.threshold) > 1e-12 * reference.threshold
        np.testing.assert_array_equal(
            reference.aoa(di[complete])[outside_band], (exact <= reference.threshold)[outside_band].astype(np.int8)
        )
        assert 0 < (exact <= reference.threshold).mean() < 1  # both sides of the threshold are tested
        np.testing.assert_array_equal(di, reference.di(rows))  # one reference alone: the same bits


def test_layers_of_several_fluxes_equal_each_flux_alone(tmp_path):
    rng = np.random.default_rng(43)
    table = _training_table(rng)
    gpp = train_dissimilarity(table, FEATURES, folds="site", categorical=["IGBP"])
    le = train_dissimilarity(table, ["TA", "SW_IN", "NIRv"], weights=[1, 4, 1], folds="site")
    le.save(tmp_path / "LE.npz")
    time = pd.date_range("2020-06-01", periods=3)
    shape = (3, 20, 30)
    cube = xr.Dataset(
        {
            # the weather on 4 x 5 blocks of cells, as a coarse reanalysis regridded by nearest neighbour
            "TA": (("time", "y", "x"), np.kron(rng.normal(12, 6, (3, 5, 6)), np.ones((1, 4, 5)))),
            "SW_IN": (("time", "y", "x"), np.kron(rng.uniform(20, 300, (3, 5, 6)), np.ones((1, 4, 5)))),
            "IGBP": (("y", "x"), rng.choice([1.0, 4.0, 10.0], shape[1:])),
            "NIRv": (("time", "y", "x"), rng.uniform(0.02, 0.5, shape)),
            "EVI2": (("time", "y", "x"), rng.uniform(0.0, 0.6, shape)),
        },
        coords={"time": time, "y": np.arange(20.0), "x": np.arange(30.0)},
    ).chunk({"time": 1, "y": 10, "x": 15})
    both = dissimilarity_layers(cube, {"GPP": gpp, "LE": TrainingDissimilarity.load(tmp_path / "LE.npz")})
    for name, reference in (("GPP", gpp), ("LE", le)):
        alone = dissimilarity(cube, reference, name=name)
        np.testing.assert_array_equal(both[f"{name}_DI"].values, alone[f"{name}_DI"].values)
        np.testing.assert_array_equal(both[f"{name}_AOA"].values, alone[f"{name}_AOA"].values)
        assert both[f"{name}_DI"].dims == ("time", "y", "x")
        assert both[f"{name}_AOA"].attrs["flag_meanings"].startswith("outside")


def test_nearest_row_of_another_fold_equals_one_tree_per_fold(monkeypatch):
    rng = np.random.default_rng(44)
    # tight sites: a row's first neighbours are all of its own site, which the widening search must pass
    centres = rng.normal(size=(6, 3)) * 5
    points = np.repeat(centres, 50, axis=0) + rng.normal(scale=0.05, size=(300, 3))
    folds = np.repeat(np.array(list("ABCDEF")), 50)
    monkeypatch.setattr(applicability, "FIRST_NEIGHBOURS", 4)
    got = applicability._nearest_in_other_folds(points, folds, points, folds)
    d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    d[folds[:, None] == folds[None, :]] = np.inf
    np.testing.assert_allclose(got, d.min(1), rtol=1e-12)
    # a query whose fold is the only one: no other row, NaN
    lone = applicability._nearest_in_other_folds(points[:2], np.array(["A", "A"]), points[:50], folds[:50])
    assert np.isnan(lone).all()


def test_mean_distance_does_not_depend_on_the_thread_count():
    rng = np.random.default_rng(45)
    points = rng.normal(size=(1501, 7))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = mean_pairwise_distance(points)
    finally:
        numba.set_num_threads(threads)
    assert mean_pairwise_distance(points) == one  # the same bits: each row's sum runs in one order
    d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    np.testing.assert_allclose(one, d[np.triu_indices(len(points), 1)].mean(), rtol=1e-12)


class _Linear:
    """A model whose permutation importance is known: y = 3 a + 0 b."""

    target, features = "y", ["a", "b"]

    @staticmethod
    def predict_array(X):
        return 3.0 * X[:, 0].astype(np.float64)


def test_permutation_importance_by_hand():
    rng = np.random.default_rng(46)
    table = pd.DataFrame({"a": rng.normal(size=4000), "b": rng.normal(size=4000)})
    table["y"] = 3.0 * table["a"].astype(np.float32).astype(np.float64)
    imp = permutation_importance(_Linear(), table, n_rows=4000, seed=1)
    # shuffling a: E[(3 a - 3 a')^2] = 9 * 2 var(a) = 18; b is not used
    assert imp["b"] == 0.0
    assert imp["a"] == pytest.approx(18.0, rel=0.1)


def test_grouped_search_hands_the_rest_to_the_kdtree_where_walks_are_long(monkeypatch):
    rng = np.random.default_rng(47)
    # the shared part (weather, land cover) weighs little: it prunes little
    reference = train_dissimilarity(
        _training_table(rng), FEATURES, weights=[0.01, 0.01, 0.01, 1, 1], folds="site", categorical=["IGBP"]
    )
    distinct = np.unique(_fine_grid_rows(rng), axis=0)
    groups = group_rows(distinct)
    expected = reference.nearest_distance(distinct, None)  # KD-tree
    monkeypatch.setattr(nearest, "PROBE_ROWS", 1000)
    monkeypatch.setattr(nearest, "MAX_VISITS", 0)
    coarse = groups.coarse[reference.column_feature]
    found = nearest.grouped_nearest(
        groups,
        reference.transform(distinct[groups.first][:, groups.coarse], groups.coarse),
        reference.transform(distinct[:, ~groups.coarse], ~groups.coarse),
        reference.points[:, coarse],
        reference.points[:, ~coarse],
    )
    left = found < 0
    assert 0 < left.mean() < 1  # the probe's groups were searched, the rest was left
    np.testing.assert_array_equal(reference.nearest_distance(distinct, groups), expected)
