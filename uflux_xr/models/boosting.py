"""Gradient-boosted trees: XGBoost and LightGBM kinds.

XGBoost models are stored in its UBJSON format and LightGBM models in its text
format; both are the libraries' own portable formats, read without pickle.
Prediction uses XGBoost's thread-safe ``inplace_predict``; LightGBM gets one
Booster per thread because concurrent ``predict`` calls on one Booster are not
documented as safe.

LightGBM keeps its thread count in one process-wide variable that every
training or prediction call sets from its own ``num_threads``, and sizes
per-thread buffers from it before its parallel loops read it again
(``OMP_SET_NUM_THREADS`` / ``OMP_NUM_THREADS()`` in LightGBM's
``openmp_wrapper``).  Two calls in two threads with different thread counts
can therefore index past a buffer: a fold training with one thread beside a
fold predicting with all cores crashed the process (SIGSEGV).  Every LightGBM
call here goes through :data:`LIGHTGBM_THREADS`, which lets calls run
together only while they ask for the same thread count.

XGBoost predicts on a CUDA GPU (``device="cuda"``) when one is present: the
device is chosen by the ``UFLUX_XGBOOST_DEVICE`` environment variable
(``auto``, the default: the GPU when XGBoost can use one, else the CPU;
``cpu``; or ``cuda``, which fails clearly without a GPU).  Tree traversal on
the GPU gives the same predictions as on the CPU (to float32 rounding), so a
product does not depend on where its chunks ran.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Iterator

import lightgbm as lgb
import numpy as np
import xgboost as xgb

from uflux_xr.models.dedup import lightgbm_coder, xgboost_coder
from uflux_xr.models.registry import ModelKind, register_model

log = logging.getLogger(__name__)

DEVICE_VARIABLE = "UFLUX_XGBOOST_DEVICE"

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


@functools.cache
def cuda_available() -> bool:
    """True when XGBoost is built with CUDA and can predict on a GPU of this machine (probed once per process)."""
    if not xgb.build_info().get("USE_CUDA"):
        return False
    import json
    import warnings

    import numpy as np

    X = np.zeros((4, 1), dtype=np.float32)
    params = {"device": "cuda", "fail_on_invalid_gpu_id": True}
    try:
        # Without a GPU XGBoost warns ("No visible GPU is found") from its C++ logger, which only
        # the global verbosity silences (the booster's own verbosity is set too late), and falls back
        # to the CPU; the Python-level warning filter covers the builds that warn through Python.
        with warnings.catch_warnings(), xgb.config_context(verbosity=0):
            warnings.simplefilter("ignore")
            booster = xgb.train(params, xgb.DMatrix(X, label=np.arange(4.0)), 1)
    except xgb.core.XGBoostError:
        return False
    device = json.loads(booster.save_config())["learner"]["generic_param"]["device"]
    return device.startswith("cuda")


def xgboost_device() -> str:
    """Where XGBoost predicts: "cuda" or "cpu", from ``UFLUX_XGBOOST_DEVICE`` (auto|cpu|cuda).

    Raises
    ------
    RuntimeError
        ``cuda`` was asked for and no GPU is usable, or the value is unknown.
    """
    wanted = os.environ.get(DEVICE_VARIABLE, "auto").strip().lower()
    if wanted not in ("auto", "cpu", "cuda"):
        raise RuntimeError(f"{DEVICE_VARIABLE}={wanted!r}: expected auto, cpu or cuda")
    if wanted == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if wanted == "cuda":
        raise RuntimeError(f"{DEVICE_VARIABLE}=cuda but XGBoost cannot use a CUDA GPU on this machine")
    return "cpu"


class XGBoostRuntime:
    """A fitted XGBoost booster plus a single-thread twin for use inside dask tasks,
    and a GPU twin used instead of both when :func:`xgboost_device` is "cuda"."""

    def __init__(self, raw: bytes):
        self.raw = bytes(raw)
        self.booster = xgb.Booster(model_file=bytearray(self.raw))
        self._single: xgb.Booster | None = None
        self._gpu: xgb.Booster | None = None
        self._lock = threading.Lock()

    def gpu(self) -> xgb.Booster:
        with self._lock:
            if self._gpu is None:
                twin = xgb.Booster(model_file=bytearray(self.raw))
                # verbosity 0: host arrays on a CUDA booster make XGBoost warn on every call.
                twin.set_param({"device": "cuda", "verbosity": 0})
                self._gpu = twin
                log.info("XGBoost predicts on the GPU (device=cuda)")
            return self._gpu

    def single_thread(self) -> xgb.Booster:
        with self._lock:
            if self._single is None:
                twin = xgb.Booster(model_file=bytearray(self.raw))
                twin.set_param({"nthread": 1})
                self._single = twin
            return self._single

    def predict(self, X, n_threads=None, device=None):
        if (device or xgboost_device()) == "cuda":
            return self.gpu().inplace_predict(X, validate_features=False)
        booster = self.single_thread() if n_threads == 1 else self.booster
        return booster.inplace_predict(X, validate_features=False)

    def contributions(self, X, n_threads=None):
        """TreeSHAP contributions (XGBoost ``pred_contribs``), bias last; on the CPU."""
        booster = self.single_thread() if n_threads == 1 else self.booster
        matrix = xgb.DMatrix(X, missing=np.nan, nthread=n_threads or -1)
        return booster.predict(matrix, pred_contribs=True, validate_features=False)


class ThreadCountGate:
    """Lets native calls run at once only while they ask for the same thread count.

    A call with another count waits until the running ones are done.  Calls of
    one count do not wait for each other, so dask tasks that all predict with
    one thread, or folds that all train and predict with one thread, keep
    running in parallel.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count: object = None
        self._running = 0

    @contextlib.contextmanager
    def __call__(self, count: object) -> Iterator[None]:
        with self._changed:
            while self._running and self._count != count:
                self._changed.wait()
            self._count = count
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                if not self._running:
                    self._changed.notify_all()


#: The one gate of every LightGBM call of this process (see the module's docstring).
LIGHTGBM_THREADS = ThreadCountGate()


def _lightgbm_thread_key(n_threads, call: str) -> object:
    """What a LightGBM ``call`` ("fit" or "predict") sets its process-wide thread count from: a positive
    count as itself; anything else by that call's own rule (the sklearn wrapper's for fitting, the OpenMP
    default for prediction), so equal keys always mean equal counts."""
    if isinstance(n_threads, int | np.integer) and n_threads > 0:
        return int(n_threads)
    return (call, n_threads)


_LIGHTGBM_THREAD_ALIASES = ("num_threads", "num_thread", "nthread", "nthreads")


class GatedLGBMRegressor(lgb.LGBMRegressor):
    """:class:`lightgbm.LGBMRegressor` whose ``fit`` passes through :data:`LIGHTGBM_THREADS`."""

    def fit(self, *args, **kwargs):
        params = self.get_params()
        # LightGBM takes num_threads or one of its aliases over n_jobs.
        threads = next((params[k] for k in _LIGHTGBM_THREAD_ALIASES if params.get(k) is not None), params["n_jobs"])
        with LIGHTGBM_THREADS(_lightgbm_thread_key(threads, "fit")):
            return super().fit(*args, **kwargs)


class LightGBMRuntime:
    """A LightGBM model string with one Booster per thread."""

    def __init__(self, model_str: str):
        self.model_str = model_str
        self._local = threading.local()

    def _booster(self) -> lgb.Booster:
        booster = getattr(self._local, "booster", None)
        if booster is None:
            booster = self._local.booster = lgb.Booster(model_str=self.model_str)
        return booster

    def _predict(self, X, n_threads, **options):
        with LIGHTGBM_THREADS(_lightgbm_thread_key(n_threads or None, "predict")):
            return self._booster().predict(X, **options, **({"num_threads": n_threads} if n_threads else {}))

    def predict(self, X, n_threads=None):
        return self._predict(X, n_threads)

    def contributions(self, X, n_threads=None):
        """TreeSHAP contributions (LightGBM ``pred_contrib``), bias last."""
        return self._predict(X, n_threads, pred_contrib=True)


@functools.cache
def xgboost_parameters() -> frozenset[str]:
    """XGBoost's hyper-parameter names: the scikit-learn wrapper's and the booster's, aliases included.

    The booster's are read from the configuration a trained booster saves (``eta``, ``lambda``,
    ``min_split_loss``, ``nthread``, ... appear there beside their canonical names), so the list is
    the installed library's own.
    """
    import json

    names = set(xgb.XGBRegressor().get_params())
    booster = xgb.train({"tree_method": "hist"}, xgb.DMatrix(np.zeros((2, 1)), label=np.zeros(2)), 1)

    def walk(section: dict) -> None:
        for value in section.values():
            if isinstance(value, dict):
                if not any(isinstance(v, dict | list) for v in value.values()):
                    names.update(value)
                walk(value)

    walk(json.loads(booster.save_config()))
    return frozenset(names)


@functools.cache
def lightgbm_parameters() -> frozenset[str]:
    """LightGBM's hyper-parameter names: the scikit-learn wrapper's, and every parameter of the library
    with all its aliases as the installed library lists them (``LGBM_DumpParamAliases``)."""
    from lightgbm.basic import _ConfigAliases

    names = set(lgb.LGBMRegressor().get_params())
    for name, aliases in _ConfigAliases._get_all_param_aliases().items():
        names.add(name)
        names.update(aliases)
    return frozenset(names)


def _xgb_build(random_state=0, **params):
    return xgb.XGBRegressor(random_state=random_state, **params)


def _lgb_build(random_state=0, **params):
    return GatedLGBMRegressor(random_state=random_state, **{"verbose": -1, **params})


register_model(
    ModelKind(
        name="xgboost",
        build=_xgb_build,
        freeze=lambda est: XGBoostRuntime(est.get_booster().save_raw("ubj")),
        dump=lambda rt: {"xgboost.ubj": rt.raw},
        load=lambda files: XGBoostRuntime(files["xgboost.ubj"]),
        predict=lambda rt, X, n_threads=None: rt.predict(X, n_threads),
        defaults=XGBOOST_DEFAULTS,
        coder=lambda rt, n_features: xgboost_coder(rt.raw, n_features),
        contributions=lambda rt, X, n_threads=None: rt.contributions(X, n_threads),
        bins=("max_bin", 256),
        parameters=xgboost_parameters,
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
        coder=lambda rt, n_features: lightgbm_coder(rt.model_str, n_features),
        contributions=lambda rt, X, n_threads=None: rt.contributions(X, n_threads),
        bins=("max_bin", 255),
        parameters=lightgbm_parameters,
    )
)
