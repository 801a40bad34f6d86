"""One interface for every model kind: how to build, fit, save, load and predict.

A *kind* is registered under a name (``xgboost``, ``lightgbm``,
``random_forest``; the cascade forest registers as ``deepforest``).  Each kind
writes its fitted estimator as plain files into a model archive (see
:mod:`uflux_xr.models.fluxmodel`) and reads them back without unpickling.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from uflux_xr.core.suggest import did_you_mean


@dataclass(frozen=True)
class ModelKind:
    """How uflux-xr handles one family of estimators.

    Attributes
    ----------
    name : str
        Registry name used in configs and ``ux.train(model=...)``.
    build : callable
        ``build(random_state, **params) -> estimator`` with scikit-learn ``fit(X, y)``.
    freeze : callable
        ``freeze(fitted_estimator) -> runtime``: the object used for prediction.  A
        trained model and a reloaded one hold the same runtime object, so they
        predict identically.
    dump : callable
        ``dump(runtime) -> dict[str, bytes]``: file name -> content for the archive.
    load : callable
        ``load(files: dict[str, bytes]) -> runtime``; must not unpickle.
    predict : callable
        ``predict(runtime, X: float32 array (n, f), n_threads: int | None) -> (n,) array``;
        must be safe to call from several threads at once with ``n_threads=1``.
    defaults : dict
        Default hyper-parameters.
    coder : callable, optional
        ``coder(runtime, n_features) -> IntervalCoder | None``: the model's split thresholds for
        exact deduplicated inference (:mod:`uflux_xr.models.dedup`); None where values matter
        beyond their comparisons with thresholds.
    contributions : callable, optional
        ``contributions(runtime, X, n_threads) -> (n, f + 1) array``: exact per-feature
        contributions (TreeSHAP) with the expected output in the last column, summing to the
        prediction; None where the kind has none (:mod:`uflux_xr.grid.explain` then explains a surrogate).
    bins : tuple of (str, int), optional
        The hyper-parameter holding the number of histogram bins per feature and its default
        (XGBoost ``max_bin`` 256, LightGBM ``max_bin`` 255, the cascade forest ``n_bins`` 255);
        None where the kind splits on raw values.  A config's ``max_bin`` sets it.
    parameters : callable, optional
        ``parameters() -> collection of str``: every hyper-parameter name ``build`` accepts, the
        library's aliases included; :func:`check_params` refuses the others.  None: not checked.
    check_nested : callable, optional
        ``check_nested(params)``: checks option mappings inside the hyper-parameters (the cascade
        forest's ``predictor_kwargs``), raising :class:`UnknownParameterError`.
    """

    name: str
    build: Callable[..., Any]
    freeze: Callable[[Any], Any]
    dump: Callable[[Any], dict[str, bytes]]
    load: Callable[[dict[str, bytes]], Any]
    predict: Callable[..., np.ndarray]  # (runtime, X, n_threads=None); lambdas with defaults defeat a stricter type
    defaults: dict
    coder: Callable[[Any, int], Any] | None = None
    contributions: Callable[..., np.ndarray] | None = None
    bins: tuple[str, int] | None = None
    parameters: Callable[[], Collection[str]] | None = None
    check_nested: Callable[[dict], None] | None = None


class UnknownParameterError(ValueError):
    """A hyper-parameter the model kind does not have (a misspelling would otherwise train on the default)."""


_KINDS: dict[str, ModelKind] = {}


def register_model(kind: ModelKind) -> ModelKind:
    """Register a model kind (replacing one of the same name)."""
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> ModelKind:
    """The registered kind called ``name``.

    Raises
    ------
    ValueError
        Naming the known kinds when ``name`` is not registered.
    """
    _ensure_builtin()
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {sorted(_KINDS)}") from None


def trained_kind(name: str) -> ModelKind:
    """The kind a model name of a config or of :func:`uflux_xr.models.train` fits (``hybrid``: the cascade forest)."""
    return get_kind("deepforest" if name == "hybrid" else name)


def reduced_bins(name: str, params: dict) -> tuple[str, int, int] | None:
    """``(parameter, bins, default bins)`` when ``params`` give model ``name`` fewer bins than its default.

    None when they do not, or when the kind has no bins.
    """
    kind = trained_kind(name)
    if kind.bins is None or kind.bins[0] not in params:
        return None
    native, default = kind.bins
    count = int(params[native])
    return (native, count, default) if count < default else None


def check_params(name: str, params: dict) -> None:
    """Refuse hyper-parameters that model kind ``name`` does not have.

    Parameters
    ----------
    name : str
        A model name of a config or of :func:`uflux_xr.models.train` (``hybrid``: the cascade forest).
    params : dict
        Hyper-parameters as given by the user (``random_state`` is always accepted).

    Raises
    ------
    UnknownParameterError
        Naming each unknown parameter, the kind and the closest valid name.
    """
    kind = trained_kind(name)
    if kind.parameters is None:
        return
    unknown_parameters(f"model kind {kind.name!r}", params, kind.parameters())
    if kind.check_nested is not None:
        kind.check_nested(params)


def unknown_parameters(owner: str, params: dict, known: Collection[str]) -> None:
    """Raise :class:`UnknownParameterError` for names of ``params`` not in ``known`` (``owner``: who has them)."""
    known = set(known) | {"random_state"}
    unknown = [str(p) for p in params if p not in known]
    if not unknown:
        return
    parts = [f"{p!r}{did_you_mean(p, known)}" for p in unknown]
    raise UnknownParameterError(
        f"{owner} has no hyper-parameter {', '.join(parts)}: it would be ignored and the model trained with "
        "its default. Correct the spelling or remove it"
    )


def available_models() -> list[str]:
    """Names of the registered model kinds."""
    _ensure_builtin()
    return sorted(_KINDS)


def _ensure_builtin() -> None:
    # Importing registers the built-in kinds; done lazily to avoid import cycles.
    from uflux_xr.models import boosting, cascade, forest  # noqa: F401
