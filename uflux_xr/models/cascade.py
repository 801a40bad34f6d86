"""Cascade forest regressor: the DF21 algorithm (Zhou & Feng 2019; deep-forest
``CascadeForestRegressor``) on histogram forests.

Algorithm, as DF21 does it:

1. Bin every feature into at most ``n_bins`` quantile bins (from at most
   ``bin_subsample`` rows).
2. Layer 0 holds ``n_estimators`` random forests and ``n_estimators``
   extra-trees forests of ``n_trees`` trees each, grown on bootstrap samples.
   Each forest's out-of-bag (OOB) prediction is a new feature; the layer's OOB
   score is the MSE of their mean.  (``validation="kfold"`` uses out-of-fold
   predictions of ``n_folds`` sub-forests instead.)
3. Layer k is trained on the binned raw features plus the binned OOB
   predictions of layer k−1 (a binner per layer).
4. Layers are added until the OOB MSE has not improved by ``delta`` on the best
   so far for ``n_tolerant_rounds`` layers, or ``max_layers`` is reached; the
   layers after the best one are dropped.
5. The prediction is the mean of the last kept layer's forests, or, with
   ``use_predictor``, a final ``predictor`` (``forest``, ``xgboost``,
   ``lightgbm``) trained on the binned raw features plus the best layer's
   binned OOB predictions.

What differs from DF21, by design: trees split on uint8 bins with histograms
that only visit occupied bins and are grown in parallel threads without the
GIL (numba), which is where the speed comes from; the number of trees, forests
and layers follow DF21's defaults.  ``max_features`` is "sqrt" for both forest
types, as in DF21.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from uflux_xr.models.compactforest import CompactForest
from uflux_xr.models.dedup import binner_coder
from uflux_xr.models.histforest import Binner, HistForest, fit_forest
from uflux_xr.models.registry import ModelKind, get_kind, register_model, unknown_parameters

log = logging.getLogger(__name__)

PREDICTORS = ("forest", "xgboost", "lightgbm")
# What the forest predictor takes from predictor_kwargs (see CascadeForestRegressor._fit_predictor).
FOREST_PREDICTOR_PARAMETERS = ("n_estimators", "max_features", "min_samples_leaf", "max_depth", "max_leaf_nodes")


def _n_threads(n_jobs) -> int:
    import os

    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return max(1, int(n_jobs))


class CascadeForestRegressor(RegressorMixin, BaseEstimator):
    """DF21 cascade forest regressor with a scikit-learn API.

    Parameters
    ----------
    n_bins : int
        Bins per feature [2–255]; missing values get one more bin.
    bin_subsample : int
        Rows used to find the bin edges.
    max_layers : int
        Maximum number of cascade layers.
    n_estimators : int
        Random forests per layer; as many extra-trees forests are added (DF21's
        convention), so a layer holds ``2 * n_estimators`` forests.
    n_trees : int
        Trees per forest.
    max_depth : int or None
        Maximum tree depth (None: grow until leaves are pure or too small).
    min_samples_leaf : int
        Minimum training rows per leaf.
    max_leaf_nodes : int or None
        Maximum leaves per tree (None: no limit).  With a limit trees grow
        best-first, as scikit-learn's trees do with ``max_leaf_nodes``; it
        bounds the model's size directly (a tree of L leaves has 2L − 1 nodes).
    max_features : str, int, float or None
        Features tried per split ("sqrt" as DF21).
    use_predictor : bool
        Fit a final predictor on the last layer's output.
    predictor : {"forest", "xgboost", "lightgbm"}
        Final predictor type (UFLUX uses "xgboost").
    predictor_kwargs : dict or None
        Parameters of the final predictor, overriding DF21's defaults
        (``n_estimators = n_trees``; forest: ``max_depth``, ``min_samples_leaf``,
        ``max_leaf_nodes``).
    n_tolerant_rounds : int
        Layers without improvement before stopping.
    validation : {"oob", "kfold"}
        How each forest's held-out predictions (the next layer's features and
        the early-stopping score) are made: out-of-bag rows of each tree, as
        DF21 does, or ``n_folds``-fold cross-fitting as the original gcForest
        did (each forest is then ``n_folds`` sub-forests whose trees are pooled
        for prediction, ``n_folds`` times the cost).
    n_folds : int
        Folds for ``validation="kfold"``.
    delta : float
        Minimum decrease of the OOB MSE that counts as an improvement.
    random_state : int or None
        Seed; the same seed and data give the same model (for any ``n_jobs``).
    n_jobs : int or None
        Threads for fitting and predicting (None: 1; -1: all cores).

    Attributes
    ----------
    n_layers_ : int
        Layers kept after early stopping.
    oob_mse_ : list of float
        OOB MSE of every layer fitted (including the ones dropped).
    """

    def __init__(
        self,
        n_bins=255,
        bin_subsample=200_000,
        max_layers=20,
        n_estimators=2,
        n_trees=100,
        max_depth=None,
        min_samples_leaf=1,
        max_leaf_nodes=None,
        max_features="sqrt",
        use_predictor=False,
        predictor="forest",
        predictor_kwargs=None,
        n_tolerant_rounds=2,
        validation="oob",
        n_folds=5,
        delta=1e-5,
        random_state=None,
        n_jobs=None,
    ):
        self.n_bins = n_bins
        self.bin_subsample = bin_subsample
        self.max_layers = max_layers
        self.n_estimators = n_estimators
        self.n_trees = n_trees
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_leaf_nodes = max_leaf_nodes
        self.max_features = max_features
        self.use_predictor = use_predictor
        self.predictor = predictor
        self.predictor_kwargs = predictor_kwargs
        self.n_tolerant_rounds = n_tolerant_rounds
        self.validation = validation
        self.n_folds = n_folds
        self.delta = delta
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- fitting -------------------------------------------------------------

    def _validate(self):
        checks = [
            (isinstance(self.max_layers, int) and self.max_layers >= 1, "max_layers must be an integer >= 1"),
            (isinstance(self.n_estimators, int) and self.n_estimators >= 1, "n_estimators must be an integer >= 1"),
            (isinstance(self.n_trees, int) and self.n_trees >= 1, "n_trees must be an integer >= 1"),
            (
                isinstance(self.n_tolerant_rounds, int) and self.n_tolerant_rounds >= 1,
                "n_tolerant_rounds must be an integer >= 1",
            ),
            (
                self.max_depth is None or (isinstance(self.max_depth, int) and self.max_depth >= 1),
                "max_depth must be None or an integer >= 1",
            ),
            (
                isinstance(self.min_samples_leaf, int) and self.min_samples_leaf >= 1,
                "min_samples_leaf must be an integer >= 1",
            ),
            (
                self.max_leaf_nodes is None or (isinstance(self.max_leaf_nodes, int) and self.max_leaf_nodes >= 2),
                "max_leaf_nodes must be None or an integer >= 2",
            ),
            (self.predictor in PREDICTORS, f"predictor must be one of {PREDICTORS}"),
            (self.validation in ("oob", "kfold"), "validation must be 'oob' or 'kfold'"),
            (isinstance(self.n_folds, int) and self.n_folds >= 2, "n_folds must be an integer >= 2"),
            (self.delta >= 0, "delta must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def _seed(self, *parts: int) -> int:
        base = 0 if self.random_state is None else int(self.random_state)
        return int(np.random.default_rng([base, *parts]).integers(0, 2**31 - 1))

    def _fit_layer(self, xt, y, layer, threads):
        """Fit the forests of one layer; returns (forests, held-out predictions (n, forests))."""
        forests, held_out = [], []
        for i in range(2 * self.n_estimators):
            options = {
                "n_trees": self.n_trees,
                "extra": i >= self.n_estimators,
                "max_features": self.max_features,
                "min_samples_leaf": self.min_samples_leaf,
                "max_depth": self.max_depth,
                "max_leaf_nodes": self.max_leaf_nodes,
                "n_threads": threads,
            }
            if self.validation == "oob":
                forest, pred = fit_forest(xt, y, seed=self._seed(layer, i), **options)
            else:
                forest, pred = self._fit_kfold_forest(xt, y, layer, i, options)
            forests.append(forest)
            held_out.append(pred)
        return forests, np.column_stack(held_out)

    def _fit_kfold_forest(self, xt, y, layer, i, options):
        """One forest per fold on the other folds; out-of-fold predictions; trees pooled."""
        n = y.size
        folds = np.array_split(np.random.default_rng(self._seed(layer, i, 7)).permutation(n), self.n_folds)
        pred = np.empty(n)
        parts = []
        for k, test in enumerate(folds):
            train = np.setdiff1d(np.arange(n), test, assume_unique=True)
            forest, _ = fit_forest(
                np.ascontiguousarray(xt[:, train]), y[train], seed=self._seed(layer, i, k), **options
            )
            pred[test] = forest.predict_binned(np.ascontiguousarray(xt[:, test].T), options["n_threads"])
            parts.append(forest)
        return HistForest.concatenate(parts), pred

    def fit(self, X, y):
        """Fit the cascade.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
            Predictors; NaN is allowed (it gets its own bin).
        y : array-like (n_samples,)
            Target; must be finite.
        """
        self._validate()
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).ravel()
        if X.ndim != 2 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X {X.shape} and y {y.shape} do not match")
        if X.shape[0] < 2 * self.min_samples_leaf or X.shape[0] < 4:
            raise ValueError(f"too few samples ({X.shape[0]}) to fit a cascade forest")
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinite values")
        threads = _n_threads(self.n_jobs)
        self.n_features_in_ = X.shape[1]

        self.binners_ = [Binner.fit(X, self.n_bins, self.bin_subsample, self._seed(999))]
        x_raw = self.binners_[0].transform(X)
        self.layers_: list[list[HistForest | CompactForest]] = []
        self.oob_mse_: list[float] = []
        best_mse, best_layer, best_aug, stall = np.inf, -1, None, 0
        aug = None
        for layer in range(self.max_layers):
            if aug is None:
                xb = x_raw
            else:
                aug_binner = Binner.fit(aug, self.n_bins, self.bin_subsample, self._seed(layer, 999))
                xb = np.hstack([x_raw, aug_binner.transform(aug)])
            forests, aug_new = self._fit_layer(np.ascontiguousarray(xb.T), y, layer, threads)
            mse = float(np.mean((aug_new.mean(axis=1) - y) ** 2))
            self.oob_mse_.append(mse)
            log.debug("cascade layer %d: OOB MSE %.6g", layer, mse)
            if layer > 0:
                self.binners_.append(aug_binner)
            self.layers_.append(forests)
            if mse <= best_mse - self.delta or layer == 0:
                best_mse, best_layer, best_aug, stall = mse, layer, aug_new, 0
            else:
                stall += 1
                if stall >= self.n_tolerant_rounds:
                    break
            aug = aug_new
        # Keep the layers up to the best one (DF21 drops the non-improving tail).
        self.layers_ = self.layers_[: best_layer + 1]
        self.binners_ = self.binners_[: best_layer + 1]
        self.n_layers_ = best_layer + 1

        self.predictor_ = None
        if self.use_predictor:
            pred_binner = Binner.fit(best_aug, self.n_bins, self.bin_subsample, self._seed(best_layer + 1, 999))
            xp = np.hstack([x_raw, pred_binner.transform(best_aug)])
            self.predictor_binner_ = pred_binner
            self.predictor_ = self._fit_predictor(xp, y, threads)
        # Laid out for prediction: same trees, same predictions, several times faster and smaller.
        self.layers_ = [[_compact(f) for f in forests] for forests in self.layers_]
        if isinstance(self.predictor_, HistForest):
            self.predictor_ = _compact(self.predictor_)
        return self

    def _fit_predictor(self, xp, y, threads):
        kwargs = dict(self.predictor_kwargs or {})
        n_estimators = kwargs.pop("n_estimators", self.n_trees)
        seed = self._seed(12345)
        if self.predictor == "forest":
            forest, _ = fit_forest(
                np.ascontiguousarray(xp.T),
                y,
                n_trees=n_estimators,
                max_features=kwargs.pop("max_features", "sqrt"),
                min_samples_leaf=kwargs.pop("min_samples_leaf", self.min_samples_leaf),
                max_depth=kwargs.pop("max_depth", self.max_depth),
                max_leaf_nodes=kwargs.pop("max_leaf_nodes", self.max_leaf_nodes),
                seed=seed,
                n_threads=threads,
            )
            unknown_parameters("the cascade forest's forest predictor", kwargs, FOREST_PREDICTOR_PARAMETERS)
            return forest
        if self.predictor == "xgboost":
            import xgboost as xgb

            model = xgb.XGBRegressor(
                n_estimators=n_estimators, tree_method="hist", random_state=seed, n_jobs=threads, **kwargs
            )
            model.fit(xp.astype(np.float32), y)
            return _XGBPredictor(bytes(model.get_booster().save_raw("ubj")))
        import lightgbm as lgb

        model = lgb.LGBMRegressor(
            n_estimators=n_estimators, random_state=seed, n_jobs=threads, **{"verbose": -1, **kwargs}
        )
        model.fit(xp.astype(np.float32), y)
        return _LGBPredictor(model.booster_.model_to_string())

    # -- prediction ----------------------------------------------------------

    def _layer_outputs(self, X, n_threads):
        x_raw = self.binners_[0].transform(X)
        aug = None
        for k, forests in enumerate(self.layers_):
            xb = x_raw if k == 0 else np.hstack([x_raw, self.binners_[k].transform(aug)])
            xb = np.ascontiguousarray(xb)
            aug = np.column_stack([f.predict_binned(xb, n_threads) for f in forests])
        return x_raw, aug

    def predict(self, X, n_threads: int | None = None):
        """Predict the target for ``X``.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        n_threads : int, optional
            Threads for this call (default: ``n_jobs``); 1 inside dask tasks.
            Safe to call from several threads at once.
        """
        check_is_fitted(self, "layers_")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected X with {self.n_features_in_} features, got shape {X.shape}")
        threads = _n_threads(self.n_jobs) if n_threads is None else max(1, int(n_threads))
        x_raw, aug = self._layer_outputs(X, threads)
        if self.predictor_ is None:
            return aug.mean(axis=1)
        xp = np.hstack([x_raw, self.predictor_binner_.transform(aug)])
        if isinstance(self.predictor_, HistForest | CompactForest):
            return self.predictor_.predict_binned(np.ascontiguousarray(xp), threads)
        return self.predictor_.predict(xp.astype(np.float32), threads)

    # -- storage (no pickle) -------------------------------------------------

    def to_files(self) -> dict[str, bytes]:
        """The fitted model as plain files: JSON structure, npz arrays, predictor in its own format."""
        check_is_fitted(self, "layers_")
        arrays: dict[str, Any] = {}  # Any: numpy's stubs type savez's keyword arrays like its allow_pickle flag
        for k, b in enumerate(self.binners_):
            arrays.update(b.to_arrays(f"binner{k}_"))
        for k, forests in enumerate(self.layers_):
            for i, f in enumerate(forests):
                arrays.update(_compact(f).to_arrays(f"layer{k}_forest{i}_"))
        structure = {
            "params": _json_params(self.get_params()),
            "n_features_in": self.n_features_in_,
            "n_layers": self.n_layers_,
            "forests_per_layer": 2 * self.n_estimators,
            "oob_mse": self.oob_mse_,
            "predictor": None,
            "layout": FOREST_LAYOUT,
        }
        files = {}
        if self.predictor_ is not None:
            arrays.update(self.predictor_binner_.to_arrays("predictor_binner_"))
            if isinstance(self.predictor_, HistForest | CompactForest):
                arrays.update(_compact(self.predictor_).to_arrays("predictor_forest_"))
                structure["predictor"] = "forest"
            elif isinstance(self.predictor_, _XGBPredictor):
                files["predictor.ubj"] = self.predictor_.raw
                structure["predictor"] = "xgboost"
            else:
                files["predictor.txt"] = self.predictor_.model_str.encode()
                structure["predictor"] = "lightgbm"
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        files["cascade.json"] = json.dumps(structure).encode()
        files["cascade.npz"] = buf.getvalue()
        return files

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> CascadeForestRegressor:
        """Rebuild a fitted model from :meth:`to_files` output; reads JSON and numeric arrays only."""
        structure = json.loads(files["cascade.json"])
        with np.load(io.BytesIO(files["cascade.npz"]), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        model = cls(**structure["params"])
        model.n_features_in_ = structure["n_features_in"]
        model.n_layers_ = structure["n_layers"]
        model.oob_mse_ = structure["oob_mse"]
        model.binners_ = [Binner.from_arrays(arrays, f"binner{k}_") for k in range(model.n_layers_)]
        # Files written before the compact layout hold HistForest node arrays.
        read = CompactForest.from_arrays if structure.get("layout") == FOREST_LAYOUT else _read_hist_forest
        model.layers_ = [
            [read(arrays, f"layer{k}_forest{i}_") for i in range(structure["forests_per_layer"])]
            for k in range(model.n_layers_)
        ]
        model.predictor_ = None
        kind = structure["predictor"]
        if kind is not None:
            model.predictor_binner_ = Binner.from_arrays(arrays, "predictor_binner_")
            if kind == "forest":
                model.predictor_ = read(arrays, "predictor_forest_")
            elif kind == "xgboost":
                model.predictor_ = _XGBPredictor(files["predictor.ubj"])
            else:
                model.predictor_ = _LGBPredictor(files["predictor.txt"].decode())
        return model


#: How forests are stored in ``cascade.npz`` (:meth:`CompactForest.to_arrays`).
FOREST_LAYOUT = "compact-preorder-1"


def _compact(forest: HistForest | CompactForest) -> CompactForest:
    return forest if isinstance(forest, CompactForest) else CompactForest.from_hist(forest)


def _read_hist_forest(arrays: dict, prefix: str) -> CompactForest:
    return CompactForest.from_hist(HistForest.from_arrays(arrays, prefix))


def _json_params(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        out[k] = v.item() if isinstance(v, np.generic) else v
    return out


class _XGBPredictor:
    """Final XGBoost predictor kept as UBJSON bytes; thread-safe prediction."""

    def __init__(self, raw: bytes):
        from uflux_xr.models.boosting import XGBoostRuntime

        self.raw = bytes(raw)
        self._runtime = XGBoostRuntime(self.raw)

    def predict(self, X, n_threads=None):
        return self._runtime.predict(X, 1 if n_threads == 1 else None)


class _LGBPredictor:
    """Final LightGBM predictor kept as its model string; one Booster per thread."""

    def __init__(self, model_str: str):
        from uflux_xr.models.boosting import LightGBMRuntime

        self.model_str = model_str
        self._runtime = LightGBMRuntime(model_str)

    def predict(self, X, n_threads=None):
        return self._runtime.predict(X, n_threads)


#: Registry defaults: DF21's, with all cores for fitting.
DEEPFOREST_DEFAULTS = {"n_jobs": -1}


def _check_predictor_kwargs(params: dict) -> None:
    """Check ``predictor_kwargs`` against the final predictor they go to."""
    kwargs = params.get("predictor_kwargs") or {}
    predictor = params.get("predictor", "forest")
    listed = get_kind(predictor).parameters if predictor in ("xgboost", "lightgbm") else None
    known = listed() if listed is not None else FOREST_PREDICTOR_PARAMETERS
    unknown_parameters(f"predictor_kwargs of the cascade forest's {predictor} predictor", kwargs, known)


register_model(
    ModelKind(
        name="deepforest",
        build=lambda random_state=0, **params: CascadeForestRegressor(random_state=random_state, **params),
        freeze=lambda est: est,
        dump=lambda est: est.to_files(),
        load=CascadeForestRegressor.from_files,
        predict=lambda est, X, n_threads=None: est.predict(X, n_threads=n_threads),
        defaults=DEEPFOREST_DEFAULTS,
        # Every layer and the final predictor see the raw features only through the first binner.
        coder=lambda est, n_features: binner_coder(est.binners_[0].edges),
        bins=("n_bins", 255),
        parameters=lambda: CascadeForestRegressor().get_params().keys(),
        check_nested=_check_predictor_kwargs,
    )
)
