import zipfile

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, cross_val_score

import uflux_xr as ux
from uflux_xr.models.cascade import CascadeForestRegressor

from .conftest import FEATURES, assert_product_matches_table, predict_concurrently

FAST = {"n_trees": 12, "max_layers": 4, "random_state": 0}


def data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 6))
    y = 10 * np.sin(np.pi * X[:, 0] * X[:, 1]) + 20 * (X[:, 2] - 0.5) ** 2 + 10 * X[:, 3] + rng.normal(size=n)
    return X, y


@pytest.fixture(scope="module")
def xy():
    return data()


@pytest.fixture(scope="module")
def fitted(xy):
    return CascadeForestRegressor(**FAST).fit(*xy)


def test_learns_and_is_deterministic(xy, fitted):
    X, y = xy
    Xt, yt = data(1000, seed=1)
    assert fitted.score(Xt, yt) > 0.8
    again = CascadeForestRegressor(**FAST).fit(X, y)
    np.testing.assert_array_equal(again.predict(Xt), fitted.predict(Xt))
    threads = CascadeForestRegressor(**{**FAST, "n_jobs": 2}).fit(X, y)
    np.testing.assert_array_equal(threads.predict(Xt), fitted.predict(Xt))
    other = CascadeForestRegressor(**{**FAST, "random_state": 1}).fit(X, y)
    assert not np.array_equal(other.predict(Xt), fitted.predict(Xt))


def test_early_stopping_stops_and_keeps_the_best_layer(xy):
    X, y = xy
    model = CascadeForestRegressor(n_trees=12, max_layers=20, n_tolerant_rounds=2, random_state=0).fit(X, y)
    fitted_layers = len(model.oob_mse_)
    assert fitted_layers < 20
    best = int(np.argmin(model.oob_mse_))
    assert model.n_layers_ == best + 1 == len(model.layers_)
    assert fitted_layers == model.n_layers_ + 2  # stopped after 2 layers without improvement
    strict = CascadeForestRegressor(n_trees=12, max_layers=20, delta=1e9, n_tolerant_rounds=1, random_state=0).fit(X, y)
    assert strict.n_layers_ == 1 and len(strict.oob_mse_) == 2  # no layer improves by 1e9


@pytest.mark.parametrize(
    ("option", "value", "check"),
    [
        ("n_estimators", 1, lambda m: all(len(layer) == 2 for layer in m.layers_)),
        ("n_estimators", 3, lambda m: all(len(layer) == 6 for layer in m.layers_)),
        ("n_trees", 5, lambda m: m.layers_[0][0].n_trees == 5),
        ("max_layers", 1, lambda m: m.n_layers_ == 1 and len(m.oob_mse_) == 1),
        ("max_depth", 2, lambda m: m.layers_[0][0].n_nodes <= 7 * m.layers_[0][0].n_trees),
        ("min_samples_leaf", 200, lambda m: m.layers_[0][0].n_nodes < 30 * m.layers_[0][0].n_trees),
        ("max_leaf_nodes", 8, lambda m: all(f.n_nodes <= 15 * f.n_trees for layer in m.layers_ for f in layer)),
        ("n_bins", 4, lambda m: max(len(e) for e in m.binners_[0].edges) <= 3),
        ("bin_subsample", 50, lambda m: max(len(e) for e in m.binners_[0].edges) <= 49),
    ],
)
def test_options_change_behaviour(xy, option, value, check):
    X, y = xy
    model = CascadeForestRegressor(**{**FAST, option: value}).fit(X, y)
    assert check(model)


@pytest.mark.parametrize("predictor", ["forest", "xgboost", "lightgbm"])
def test_predictors_and_kwargs(xy, fitted, predictor):
    X, y = xy
    kwargs = {"n_estimators": 7}
    model = CascadeForestRegressor(**FAST, use_predictor=True, predictor=predictor, predictor_kwargs=kwargs).fit(X, y)
    assert model.predictor_ is not None
    assert not np.allclose(model.predict(X[:50]), fitted.predict(X[:50]))
    if predictor == "forest":
        assert model.predictor_.n_trees == 7
    restored = CascadeForestRegressor.from_files(model.to_files())
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert kwargs == {"n_estimators": 7}  # the caller's dict is not consumed


def test_kfold_validation(xy, fitted):
    X, y = xy
    model = CascadeForestRegressor(**FAST, validation="kfold", n_folds=3).fit(X, y)
    assert model.layers_[0][0].n_trees == 3 * FAST["n_trees"]  # one sub-forest per fold, trees pooled
    assert model.oob_mse_[0] != fitted.oob_mse_[0]
    Xt, yt = data(1000, seed=1)
    assert model.score(Xt, yt) > 0.8
    again = CascadeForestRegressor(**FAST, validation="kfold", n_folds=3).fit(X, y)
    np.testing.assert_array_equal(again.predict(Xt), model.predict(Xt))
    restored = CascadeForestRegressor.from_files(model.to_files())
    np.testing.assert_array_equal(restored.predict(Xt), model.predict(Xt))
    with pytest.raises(ValueError, match="validation must be"):
        CascadeForestRegressor(validation="holdout").fit(X, y)


def test_bad_parameters(xy):
    X, y = xy
    with pytest.raises(ValueError, match="predictor must be one of"):
        CascadeForestRegressor(predictor="svm").fit(X, y)
    with pytest.raises(ValueError, match="n_trees"):
        CascadeForestRegressor(n_trees=0).fit(X, y)
    with pytest.raises(ValueError, match="max_leaf_nodes must be None or an integer >= 2"):
        CascadeForestRegressor(max_leaf_nodes=1).fit(X, y)
    with pytest.raises(ValueError, match="NaN"):
        CascadeForestRegressor(**FAST).fit(X, np.where(y > 5, np.nan, y))
    with pytest.raises(ValueError, match="expected X with 6 features"):
        CascadeForestRegressor(**FAST).fit(X, y).predict(X[:, :3])


def test_scikit_learn_compatibility(xy):
    X, y = xy
    est = CascadeForestRegressor(**FAST)
    assert clone(est).get_params() == est.get_params()
    est.set_params(n_trees=8)
    assert est.n_trees == 8
    groups = np.arange(len(y)) % 4
    scores = cross_val_score(
        CascadeForestRegressor(n_trees=8, max_layers=2, random_state=0), X, y, groups=groups, cv=GroupKFold(n_splits=4)
    )
    assert scores.shape == (4,) and (scores > 0.7).all()


def test_concurrent_single_thread_predictions(fitted, xy):
    X, _ = xy
    reference = fitted.predict(X)
    for out in predict_concurrently(lambda: fitted.predict(X, n_threads=1)):
        np.testing.assert_array_equal(out, reference)


def test_default_model_save_load_upscale_and_cv(world, table, tmp_path):
    model = ux.train(table, "GPP", FEATURES, n_trees=10, max_layers=3)
    assert model.kind == "deepforest"
    path = model.save(tmp_path / "gpp.uxm")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
    assert {"metadata.json", "cascade.json", "cascade.npz"} <= names
    loaded = ux.load_model(path)
    np.testing.assert_array_equal(loaded.predict(table), model.predict(table))
    product = ux.upscale({"GPP": [loaded]}, world.cube.chunk({"time": 60}), derived=False).compute()
    assert_product_matches_table(product, "GPP", model, world, table)
    cv = ux.cross_validate(table, "GPP", FEATURES, cv="kfold", n_splits=3, n_trees=10, max_layers=2)
    assert cv.model == "deepforest" and cv.metrics.loc[0, "nse"] > 0.7
