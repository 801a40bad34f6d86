"""Exact deduplicated inference: predictions equal plain predictions to the bit (issue #15).

Equality here is ``np.array_equal``, not a tolerance: a deduplicated prediction
runs the same arithmetic as the plain one on an identical row (the row's
representative), so any difference is a bug in the interval coding.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uflux_xr.grid.upscale import dedup_report, upscale
from uflux_xr.models import train
from uflux_xr.models.dedup import (
    KEEP_IF_BELOW,
    PROBE_CHUNKS,
    dedup_stats,
    predict_dedup,
    reset_dedup_stats,
    unique_rows,
)

FEATURES = ["a", "b", "c", "d", "e"]
KINDS = {
    "xgboost": {"n_estimators": 40},
    "lightgbm": {"n_estimators": 40},
    "random_forest": {"n_estimators": 15, "n_jobs": 1},
    "deepforest": {"n_trees": 8, "max_layers": 2, "n_jobs": 1},
}


def _table(seed=0, n=2500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    X[:, 3] = np.round(X[:, 3], 1)  # few distinct values: thresholds between them
    X[:, 4] = rng.integers(0, 6, n)  # a class code, as IGBP
    X[rng.random(X.shape) < 0.03] = np.nan  # missing values in training too: NaN branches
    y = 2 * np.nan_to_num(X[:, 0]) + np.sin(np.nan_to_num(X[:, 1])) + np.nan_to_num(X[:, 4]) + rng.normal(0, 0.1, n)
    table = pd.DataFrame(X, columns=FEATURES)
    table["GPP"], table["site"] = y, "S"
    return table


@pytest.fixture(scope="module")
def models():
    table = _table()
    return {kind: train(table, "GPP", FEATURES, model=kind, **params) for kind, params in KINDS.items()}


def _hard_rows(model, seed=1) -> np.ndarray:
    """Rows on the model's thresholds, one float32 step either side, NaN, ±0, tiny values, repeats."""
    rng = np.random.default_rng(seed)
    coder = model.interval_coder
    X = np.round(rng.normal(size=(6000, 5)), 1).astype(np.float32)
    for j, t in enumerate(coder.thresholds):
        values = np.resize(t.astype(np.float32), 1000)
        rng.shuffle(values)
        X[:1000, j] = values
        X[1000:2000, j] = np.nextafter(values, np.float32(np.inf))
        X[2000:3000, j] = np.nextafter(values, np.float32(-np.inf))
    X[rng.random(X.shape) < 0.05] = np.nan
    X[3000:3100] = 0.0
    X[3100:3200, 2] = -0.0
    X[3200:3300, 2] = 1e-36
    X[3300:3400, 2] = -1e-36
    rng.shuffle(X)
    return X


@pytest.mark.parametrize("kind", list(KINDS))
def test_dedup_equals_plain_exactly(models, kind):
    model = models[kind]
    X = _hard_rows(model)
    plain = model.predict_array(X, n_threads=1)
    deduped = model.predict_array(X, n_threads=1, dedup=True)
    assert np.isfinite(plain).all()
    assert np.array_equal(plain, deduped)
    first, _ = unique_rows(model.interval_coder.codes(X))
    assert first.size < X.shape[0]  # the repeats were found


@pytest.mark.parametrize("kind", ["xgboost", "random_forest", "deepforest"])
def test_the_tie_rows_decide_the_comparison_side(models, kind):
    """The coding's side matters: with the other side, rows exactly on a threshold are merged with the
    wrong neighbours and predictions change.  So the equality above exercises ties.  (LightGBM's
    thresholds sit just above midpoints in float64 and no float32 input equals one: its side cannot be
    observed from float32 rows.)"""
    model = models[kind]
    coder = model.interval_coder
    wrong = dataclasses.replace(coder, side="left" if coder.side == "right" else "right")
    X = _hard_rows(model)
    plain = model.predict_array(X, n_threads=1)
    mixed = predict_dedup(lambda r: model.predict_array(r, n_threads=1), wrong, X, key="wrong side", mode=True)
    assert not np.array_equal(plain, mixed)


def test_lightgbm_zero_as_missing_band():
    """With zero_as_missing, LightGBM sends |x| <= 1e-35 the missing way: that band has its own code."""
    table = _table(seed=3)
    table.loc[table.index[::4], "c"] = 0.0
    model = train(table, "GPP", FEATURES, model="lightgbm", n_estimators=40, zero_as_missing=True)
    rng = np.random.default_rng(4)
    X = np.round(rng.normal(size=(4000, 5)), 1).astype(np.float32)
    X[:, 2] = rng.choice(np.array([0.0, -0.0, 1e-36, -1e-36, 1e-35, 2e-35, -2e-35, 1e-30, np.nan], np.float32), 4000)
    plain = model.predict_array(X, n_threads=1)
    assert np.array_equal(plain, model.predict_array(X, n_threads=1, dedup=True))


def test_unique_rows_matches_numpy():
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 4, size=(20_000, 3)).astype(np.uint64)
    keys[:, 1] <<= np.uint64(62)  # high bits, to exercise the hash mixing
    first, inverse = unique_rows(keys)
    expected = np.unique(keys, axis=0)
    assert first.size == expected.shape[0]
    assert np.array_equal(keys[first][inverse], keys)  # every row maps to an equal key
    assert np.array_equal(np.sort(first), first)  # first appearances, in order


def test_auto_switches_itself_off_where_every_row_is_unique(models):
    """All rows unique: dedup costs coding on top of the same predict, so after the probe chunks
    the measured time exceeds KEEP_IF_BELOW x the plain estimate whatever the machine's speed."""
    model = models["xgboost"]
    reset_dedup_stats()
    X = np.random.default_rng(6).normal(size=(3000, 5)).astype(np.float32)
    for _ in range(PROBE_CHUNKS + 2):
        out = predict_dedup(lambda r: model.predict_array(r, n_threads=1), model.interval_coder, X, key="k")
        assert np.array_equal(out, model.predict_array(X, n_threads=1))
    stats = dedup_stats()["k"]
    assert KEEP_IF_BELOW < 1
    assert stats["enabled"] is False
    assert stats["chunks"] == PROBE_CHUNKS and stats["unique_rows"] == stats["rows"]
    assert stats["plain_rows"] == 2 * X.shape[0]


def _coarse_cube() -> xr.Dataset:
    """A small cube whose climate repeats over 4 x 4 blocks of cells (nearest-regridded), with NaNs."""
    rng = np.random.default_rng(7)
    nt, ny, nx = 9, 12, 16
    coarse = rng.normal(size=(3, nt, ny // 4, nx // 4)).astype(np.float32)
    fine = np.repeat(np.repeat(coarse, 4, axis=2), 4, axis=3)
    veg = np.round(rng.normal(size=(nt, ny, nx)), 1).astype(np.float32)
    veg[rng.random(veg.shape) < 0.05] = np.nan
    klass = rng.integers(0, 6, (ny, nx)).astype(np.float32)
    dims = ("time", "lat", "lon")
    return xr.Dataset(
        {
            "a": (dims, fine[0]),
            "b": (dims, fine[1]),
            "c": (dims, fine[2]),
            "d": (dims, veg),
            "e": (("lat", "lon"), klass),
            "land_mask": (("lat", "lon"), (rng.random((ny, nx)) < 0.8).astype(np.int8)),
        },
        coords={
            "time": pd.date_range("2020-01-01", periods=nt),
            "lat": np.linspace(50, 51, ny),
            "lon": np.linspace(0, 1, nx),
        },
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_upscale_dedup_identical_across_chunkings(models, kind):
    cube = _coarse_cube()
    model = models[kind]
    reference = upscale([model], cube.chunk({"time": 9}), dedup=False, derived=False)["GPP"].values
    reset_dedup_stats()
    for chunks in ({"time": 9}, {"time": 2, "lat": 5, "lon": 7}, {"time": 4, "lon": 8}):
        for mode in (True, "auto"):
            product = upscale([model], cube.chunk(chunks), dedup=mode, derived=False)
            assert np.array_equal(product["GPP"].values, reference, equal_nan=True), (chunks, mode)
    report = next(iter(dedup_report().values()))
    assert 0 < report["unique_rows"] < report["rows"]
    assert np.isfinite(reference).sum() > 1000


def test_upscale_rejects_an_unknown_dedup_mode(models):
    with pytest.raises(ValueError, match="dedup must be"):
        upscale([models["xgboost"]], _coarse_cube(), dedup="yes")


def _ensemble_table() -> pd.DataFrame:
    """:func:`_table` with two more targets of other forms: their models split elsewhere."""
    table = _table(seed=8)
    X = table[FEATURES].fillna(0).to_numpy()
    rng = np.random.default_rng(9)
    table["RECO"] = np.exp(0.5 * X[:, 1]) + 0.3 * X[:, 3] + rng.normal(0, 0.1, len(table))
    table["LE"] = np.abs(X[:, 2]) * (1 + X[:, 4]) + rng.normal(0, 0.1, len(table))
    return table


@pytest.mark.parametrize("chunks", [{"time": 9}, {"time": 2, "lat": 5, "lon": 7}])
def test_models_of_one_task_share_codes_and_stay_exact(chunks):
    """Several members (kinds, feature sets and feature orders) x fluxes in one upscaling task: each
    model's product equals its own plain upscale, and each finds exactly the distinct rows it finds
    alone (the union codes refined per model lose nothing and merge nothing)."""
    table = _ensemble_table()
    feature_sets = {
        "xgb": FEATURES,
        "xgb_no_c": ["a", "b", "d", "e"],
        "lgbm": ["e", "d", "c", "b", "a"],
        "rf": FEATURES,
        "cascade": FEATURES,
    }
    kinds = {
        "xgb": "xgboost",
        "xgb_no_c": "xgboost",
        "lgbm": "lightgbm",
        "rf": "random_forest",
        "cascade": "deepforest",
    }
    members = {
        label: {
            flux: train(table, flux, features, model=kinds[label], **KINDS[kinds[label]])
            for flux in ("GPP", "RECO", "LE")
        }
        for label, features in feature_sets.items()
    }
    cube = _coarse_cube().chunk(chunks)
    reset_dedup_stats()
    together = upscale(members, cube, dedup=True, derived=False).compute()
    shared = dedup_report()
    for label, member in members.items():
        for flux, model in member.items():
            alone = upscale({label: {flux: model}}, cube, dedup=False, derived=False)[flux].sel(member=label)
            assert np.array_equal(together[flux].sel(member=label).values, alone.values, equal_nan=True)
            reset_dedup_stats()
            upscale({label: {flux: model}}, cube, dedup=True, derived=False).compute()
            own = dedup_report()[model.stats_key]
            assert shared[model.stats_key]["unique_rows"] == own["unique_rows"] > 0, (label, flux)
    # The fluxes' thresholds differ, so the union codes were refined (the cascade's bins are shared).
    for label in ("xgb", "lgbm", "rf"):
        assert len({m.interval_coder.signature for m in members[label].values()}) == 3, label


def test_model_batches_keep_feature_sets_together_within_the_memory_cap():
    from uflux_xr.grid.upscale import model_batches

    @dataclasses.dataclass
    class Model:
        features: list
        baseline: object = None

    members = {"x": Model(list("ab")), "y": Model(list("ba")), "z": Model(list("ab"))}
    entries = [(f, m, model) for f in "PQR" for m, model in members.items()]  # as upscale lists them
    cells = 1000
    per_model = 4 * cells
    # Room for 6 models: the two "ab" members (6 models) in one task, "ba" in the next.
    batches = model_batches(entries, cells, max_bytes=6 * per_model)
    assert [[(f, m) for f, m, _ in b] for b in batches] == [
        [("P", "x"), ("P", "z"), ("Q", "x"), ("Q", "z"), ("R", "x"), ("R", "z")],
        [("P", "y"), ("Q", "y"), ("R", "y")],
    ]
    # Room for 4: a feature set larger than a task is split, the rest fills the next task.
    sizes = [len(b) for b in model_batches(entries, cells, max_bytes=4 * per_model)]
    assert sizes == [4, 2, 3]
    assert [len(b) for b in model_batches(entries, cells, max_bytes=1)] == [1] * 9
    assert sum(map(len, model_batches(entries, cells))) == 9
    # A hybrid's task returns its baseline too: two outputs.  Room for 6: "ab" (6 models, 3 of them
    # hybrids: 9 outputs) is split after 4 models (6 outputs); "ba" (3) fits beside the other 2 (3).
    members["x"] = Model(list("ab"), baseline="lloyd_taylor")
    entries = [(f, m, model) for f in "PQR" for m, model in members.items()]
    batches = model_batches(entries, cells, max_bytes=6 * per_model)
    assert [[(f, m) for f, m, _ in b] for b in batches] == [
        [("P", "x"), ("P", "z"), ("Q", "x"), ("Q", "z")],
        [("R", "x"), ("R", "z"), ("P", "y"), ("Q", "y"), ("R", "y")],
    ]


@pytest.mark.parametrize(("dtype", "side"), [(np.float32, "right"), (np.float64, "left"), (np.float64, "right")])
def test_interval_codes_are_numpys_searchsorted(dtype, side):
    """The coding kernel (binary search, a repeated value reusing its code) against numpy's searchsorted
    written out: runs of repeats, ties on thresholds and one step either side, NaN, ±0, beyond both ends."""
    from uflux_xr.models.dedup import IntervalCoder, _pack_layout

    rng = np.random.default_rng(11)
    t = np.unique(np.concatenate([np.round(rng.normal(size=40), 2), [0.0]]).astype(dtype))
    coder = IntervalCoder((t, t[::3].copy()), np.dtype(dtype), side)
    base = np.concatenate(
        [t, np.nextafter(t, dtype(np.inf)), np.nextafter(t, dtype(-np.inf)), [np.nan, 0.0, -0.0, -1e9, 1e9]]
    ).astype(np.float32)
    column = np.repeat(rng.permutation(base), rng.integers(1, 4, base.size))  # runs of equal values
    other = rng.permutation(column)
    keys = coder.codes_of_columns([column, other])
    for j, (values, (word, shift)) in enumerate(zip((column, other), _pack_layout(coder.bits), strict=True)):
        cast, thresholds = values.astype(dtype), coder.thresholds[j]
        expected = np.searchsorted(thresholds, cast, side=side).astype(np.uint64)
        expected[np.isnan(cast)] = thresholds.size + 1
        mask = np.uint64((1 << coder.bits[j]) - 1)
        assert np.array_equal((keys[:, word] >> np.uint64(shift)) & mask, expected)
