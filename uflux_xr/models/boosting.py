"""Gradient-boosted trees: XGBoost and LightGBM kinds.

XGBoost models are stored in its UBJSON format and LightGBM models in its text
format; both are the libraries' own portable formats, read without pickle.
Prediction uses XGBoost's thread-safe ``inplace_predict``; LightGBM gets one
Booster per thread because concurrent ``predict`` calls on one Booster are not
documented as safe.
"""

from __future__ import annotations

import threading

import lightgbm as lgb
import xgboost as xgb

from uflux_xr.models.registry import ModelKind, register_model

XGBOOST_DEFAULTS = {
    "n_estimators": 300,
    "max_depth": 6,
    "learning_rate": 0.08,
    "subsample": 0.8,
    "colsample_bytree": 0.9,
    "min_child_weight": 2.0,
    "tree_method": "hist",
}

LIGHTGBM_DEFAULTS = {
    "n_estimators": 300,
    "num_leaves": 48,
    "learning_rate": 0.08,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.9,
    "min_child_samples": 10,
}


class XGBoostRuntime:
    """A fitted XGBoost booster plus a single-thread twin for use inside dask tasks."""

    def __init__(self, raw: bytes):
        self.raw = bytes(raw)
        self.booster = xgb.Booster(model_file=bytearray(self.raw))
        self._single = None
        self._lock = threading.Lock()

    def single_thread(self) -> xgb.Booster:
        with self._lock:
            if self._single is None:
                twin = xgb.Booster(model_file=bytearray(self.raw))
                twin.set_param({"nthread": 1})
                self._single = twin
            return self._single

    def predict(self, X, n_threads=None):
        booster = self.single_thread() if n_threads == 1 else self.booster
        return booster.inplace_predict(X, validate_features=False)


class LightGBMRuntime:
    """A LightGBM model string with one Booster per thread."""

    def __init__(self, model_str: str):
        self.model_str = model_str
        self._local = threading.local()

    def predict(self, X, n_threads=None):
        booster = getattr(self._local, "booster", None)
        if booster is None:
            booster = self._local.booster = lgb.Booster(model_str=self.model_str)
        return booster.predict(X, **({"num_threads": n_threads} if n_threads else {}))


def _xgb_build(random_state=0, **params):
    return xgb.XGBRegressor(random_state=random_state, **params)


def _lgb_build(random_state=0, **params):
    return lgb.LGBMRegressor(random_state=random_state, **{"verbose": -1, **params})


register_model(
    ModelKind(
        name="xgboost",
        build=_xgb_build,
        freeze=lambda est: XGBoostRuntime(est.get_booster().save_raw("ubj")),
        dump=lambda rt: {"xgboost.ubj": rt.raw},
        load=lambda files: XGBoostRuntime(files["xgboost.ubj"]),
        predict=lambda rt, X, n_threads=None: rt.predict(X, n_threads),
        defaults=XGBOOST_DEFAULTS,
    )
)

register_model(
    ModelKind(
        name="lightgbm",
        build=_lgb_build,
        freeze=lambda est: LightGBMRuntime(est.booster_.model_to_string()),
        dump=lambda rt: {"lightgbm.txt": rt.model_str.encode()},
        load=lambda files: LightGBMRuntime(files["lightgbm.txt"].decode()),
        predict=lambda rt, X, n_threads=None: rt.predict(X, n_threads),
        defaults=LIGHTGBM_DEFAULTS,
    )
)
