"""A trained flux model: the estimator with what it was trained on, saved as a
self-describing archive.

Model file format
-----------------
A zip archive holding ``metadata.json`` (format version, model kind, target and
feature names with their units, training sites, hyper-parameters, package
versions, SHA-256 of every other member) and the estimator in plain files
written by its kind (XGBoost UBJSON, LightGBM text, numpy ``.npz`` tree
arrays).  Loading parses JSON and numeric arrays only: a model file cannot run
code, unlike a pickle.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import inspect
import io
import json
import logging
import os
import platform
import zipfile
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uflux_xr.core.qc import fraction_kept
from uflux_xr.core.variables import MissingVariableError, canonical_units
from uflux_xr.io.atomic import write_atomic
from uflux_xr.io.jsonable import to_jsonable
from uflux_xr.io.storage import is_url, read_bytes, redact
from uflux_xr.models.dedup import IntervalCoder, predict_dedup
from uflux_xr.models.hybrid import FittedBaseline, fit_baseline, get_baseline, resolve_residual
from uflux_xr.models.registry import check_params, get_kind

log = logging.getLogger(__name__)

FORMAT_NAME = "uflux-xr-model"
#: Version 2 adds a hybrid model's ``baseline``; models without one are still written as version 1,
#: and a reader of version 1 refuses a hybrid file instead of predicting its residual alone.
FORMAT_VERSION = 2


#: Packages that shape a model's predictions.
MODEL_PACKAGES = ("uflux-xr", "numpy", "scikit-learn", "xgboost", "lightgbm")


def package_versions(packages=MODEL_PACKAGES) -> dict[str, str]:
    """Versions of Python and of ``packages`` (default: those that shape a model's predictions)."""
    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@dataclass
class FluxModel:
    """A fitted model of one target flux.

    Attributes
    ----------
    kind : str
        Registered model kind (``xgboost``, ``lightgbm``, ``random_forest``, ...).
    runtime : object
        The kind's prediction object.
    target : str
        Predicted variable (e.g. ``GPP``).
    features : list of str
        Predictor names, in the order the model expects them.
    units : dict
        Units of the target and of every feature.
    training_sites : list of str
        Sites whose rows trained the model.
    params : dict
        Hyper-parameters, ``random_state`` included.
    n_train : int
        Number of training rows.
    versions : dict
        Package versions at training time.
    path : str, optional
        File the model was saved to or loaded from; the upscaler loads models on
        workers from this path instead of shipping the object.
    baseline : FittedBaseline, optional
        A hybrid model's process baseline (:mod:`uflux_xr.models.hybrid`): the
        prediction is the baseline plus the estimator's output (or times it,
        for a multiplicative hybrid).
    """

    kind: str
    runtime: Any
    target: str
    features: list[str]
    units: dict[str, str]
    training_sites: list[str]
    params: dict
    n_train: int
    versions: dict = field(default_factory=package_versions)
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    path: str | None = None
    baseline: FittedBaseline | None = None

    def __repr__(self) -> str:
        hybrid = f", baseline={self.baseline.form!r}" if self.baseline is not None else ""
        return (
            f"FluxModel(kind={self.kind!r}, target={self.target!r}, features={self.features}, "
            f"n_train={self.n_train}, sites={len(self.training_sites)}{hybrid})"
        )

    @property
    def stats_key(self) -> str:
        """How :func:`uflux_xr.models.dedup.dedup_stats` names this model: its file, else a label."""
        return self.path or f"{self.target} {self.kind} model {id(self):x}"

    @functools.cached_property
    def interval_coder(self) -> IntervalCoder | None:
        """The model's split thresholds for exact deduplicated inference, or None where its kind has none."""
        make = get_kind(self.kind).coder
        return None if make is None else make(self.runtime, len(self.features))

    def predict_array(
        self,
        X: np.ndarray,
        n_threads: int | None = None,
        *,
        dedup: bool | str = False,
        residual_weight: np.ndarray | None = None,
    ) -> np.ndarray:
        """Predict from a (rows, features) array in :attr:`features` order.

        Parameters
        ----------
        X : numpy.ndarray
            Predictors, cast to float32, columns as :attr:`features`.
        n_threads : int, optional
            Threads for this call; 1 inside dask tasks (dask is the parallelism).
        dedup : bool or "auto"
            Predict each distinct row of interval codes once and scatter the
            results back (:mod:`uflux_xr.models.dedup`): identical predictions,
            less work where rows repeat.  ``"auto"`` keeps doing so only where
            it measured faster.
        residual_weight : numpy.ndarray, optional
            Per row, the share [-] of a hybrid's machine-learned part to keep
            (:func:`uflux_xr.models.hybrid.residual_weight`); ignored by a pure
            tree model.

        Returns
        -------
        numpy.ndarray
            Predictions [units of :attr:`target`], float32.
        """
        baseline, trees = self.predict_parts(X, n_threads, dedup=dedup)
        if baseline is None or self.baseline is None:
            return trees
        return self.baseline.combine(baseline, trees, residual_weight)

    def predict_parts(
        self, X: np.ndarray, n_threads: int | None = None, *, dedup: bool | str = False
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """A hybrid model's baseline [units of :attr:`target`] and its trees' output (the residual in
        target units, or the factor [-] of a multiplicative hybrid), float32; the baseline is None for a
        pure tree model (whose prediction is then the trees' output).  Arguments as :meth:`predict_array`."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ValueError(f"expected an array of shape (n, {len(self.features)}) for {self.features}, got {X.shape}")
        empty = np.empty(0, dtype=np.float32)
        if X.shape[0] == 0:
            return (None if self.baseline is None else empty), empty
        # The trees see the features only through their thresholds, so deduplication is exact for their
        # output alone; the baseline is a smooth function of its drivers and is computed for every row.
        if dedup is False:
            trees = self.predict_trees(X, n_threads)
        else:
            coder = self.interval_coder
            trees = predict_dedup(
                lambda rows: self.predict_trees(rows, n_threads), coder, X, key=self.stats_key, mode=dedup
            )
        return (None if self.baseline is None else self.baseline_values(X)), trees

    def predict_trees(self, X: np.ndarray, n_threads: int | None = None) -> np.ndarray:
        """The estimator's output alone (a hybrid's residual or factor; a pure model's prediction), float32,
        for a contiguous float32 (rows, features) array; never deduplicated."""
        return np.asarray(get_kind(self.kind).predict(self.runtime, X, n_threads), dtype=np.float32)

    def baseline_values(self, X: np.ndarray) -> np.ndarray:
        """A hybrid model's process baseline [units of :attr:`target`], float32, for a (rows, features)
        array in :attr:`features` order."""
        if self.baseline is None:
            raise ValueError(f"the {self.target} {self.kind} model has no baseline (not a hybrid model)")
        columns = {d: X[:, self.features.index(d)] for d in self.baseline.drivers}
        return self.baseline.predict(columns).astype(np.float32)

    def predict(
        self, table: pd.DataFrame, n_threads: int | None = None, *, residual_weight: np.ndarray | None = None
    ) -> np.ndarray:
        """Predict for each row of a table holding the feature columns.

        Rows with a missing feature get NaN (the upscaler does the same).  When the
        table carries ``attrs["units"]``, each feature's units must match the model's.

        Parameters
        ----------
        table : pandas.DataFrame
            The feature columns [units of :attr:`units`].
        n_threads : int, optional
            Threads for this call (default: the model kind's own).
        residual_weight : array-like, optional
            Per row, the share [-] of a hybrid's machine-learned part to keep,
            e.g. ``residual_weight(ux.aoa(...).DI, threshold)`` to fade it
            outside the area of applicability
            (:func:`uflux_xr.models.hybrid.residual_weight`).

        Returns
        -------
        numpy.ndarray
            Predictions [units of :attr:`target`], float32, one per row.
        """
        _check_columns(table, self.features, f"table for the {self.target} model")
        check_feature_units(self, table.attrs.get("units", {}), source="table")
        X = table[self.features].to_numpy(dtype=np.float32)
        ok = np.isfinite(X).all(axis=1)
        weight = None
        if residual_weight is not None:
            weight = np.asarray(residual_weight, dtype=np.float64)
            if weight.shape != (len(table),):
                raise ValueError(f"residual_weight has shape {weight.shape}, expected one value per row ({len(table)})")
            weight = weight[ok]
        out = np.full(len(table), np.nan, dtype=np.float32)
        out[ok] = self.predict_array(X[ok], n_threads, residual_weight=weight)
        return out

    def metadata(self) -> dict:
        """The JSON-serialisable description written into the model file."""
        meta = {
            "format": FORMAT_NAME,
            "format_version": 1 if self.baseline is None else FORMAT_VERSION,
            "kind": self.kind,
            "target": self.target,
            "features": list(self.features),
            "units": dict(self.units),
            "training_sites": list(self.training_sites),
            "params": to_jsonable(self.params),
            "n_train": int(self.n_train),
            "versions": self.versions,
            "created": self.created,
        }
        if self.baseline is not None:
            meta["baseline"] = self.baseline.to_dict()
        return meta

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model archive atomically (temporary file, then rename).

        Returns
        -------
        pathlib.Path
            The written file.
        """
        files = get_kind(self.kind).dump(self.runtime)
        meta = self.metadata()
        meta["files"] = {name: hashlib.sha256(blob).hexdigest() for name, blob in files.items()}

        def fill(fh) -> None:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                zf.writestr("metadata.json", json.dumps(meta, indent=2))
                for name, blob in files.items():
                    zf.writestr(name, blob)

        written = write_atomic(path, fill)  # the normal file mode: a model file is shared like the products
        # a local file by its absolute path, an object by its URL: what workers load it from
        self.path = str(written.resolve()) if isinstance(written, Path) else os.fspath(written)
        log.debug("saved %s model to %s", self.target, redact(path))
        return written


def check_feature_units(model: FluxModel, units: dict, *, source: str) -> None:
    """Raise when a feature's units in ``units`` differ from the units the model was trained on."""
    for name in model.features:
        have, want = units.get(name), model.units.get(name)
        if have is None or want is None:
            continue
        if canonical_units(have) != canonical_units(want):
            raise ValueError(
                f"{source}: feature {name!r} is in {have!r} but the {model.target} model was trained with {want!r}"
            )


def load_model(path: str | os.PathLike) -> FluxModel:
    """Load a model archive written by :meth:`FluxModel.save`.

    Raises
    ------
    ValueError
        When the file is not a uflux-xr model, has a newer format version, or a
        member's checksum does not match.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(read_bytes(path))) as zf:
            meta = json.loads(zf.read("metadata.json"))
            files = {name: zf.read(name) for name in meta.get("files", {})}
    except (zipfile.BadZipFile, KeyError) as err:
        raise ValueError(f"{path}: not a uflux-xr model archive ({err})") from None
    if meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a uflux-xr model archive (format={meta.get('format')!r})")
    if meta["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path}: model format version {meta['format_version']} is newer than this "
            f"uflux-xr supports ({FORMAT_VERSION}); upgrade uflux-xr"
        )
    for name, digest in meta["files"].items():
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise ValueError(f"{path}: member {name!r} is corrupt (checksum mismatch)")
    runtime = get_kind(meta["kind"]).load(files)
    return FluxModel(
        kind=meta["kind"],
        runtime=runtime,
        target=meta["target"],
        features=meta["features"],
        units=meta["units"],
        training_sites=meta["training_sites"],
        params=meta["params"],
        n_train=meta["n_train"],
        versions=meta["versions"],
        created=meta["created"],
        path=os.fspath(path) if is_url(path) else str(Path(path).resolve()),
        baseline=FittedBaseline.from_dict(meta["baseline"]) if "baseline" in meta else None,
    )


def _check_columns(table: pd.DataFrame, columns: list, what: str) -> None:
    """Each of ``columns`` once in ``table``, and no column asked for twice."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise MissingVariableError(f"{what} lacks column(s) {missing}; it has {list(table.columns)}")
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise ValueError(f"{what}: column(s) {twice} asked for more than once")
    repeated = sorted(set(table.columns[table.columns.duplicated()]) & set(columns))
    if repeated:
        raise ValueError(
            f"{what} has column(s) {repeated} more than once; which one is meant is ambiguous "
            "(extract_at_sites keeps a tower variable named like a feature as <name>_tower)"
        )


def training_rows(table: pd.DataFrame, target: str, features, qc_threshold: float | None = None) -> pd.DataFrame:
    """The rows of a training table a model of ``target`` learns from: target and every feature present,
    and ``<target>_QC`` [0-1] at least ``qc_threshold`` when one is given."""
    rows = table[[target, *features]].notna().all(axis=1)
    if qc_threshold is not None:
        qc = f"{target}_QC"
        if qc not in table.columns:
            raise MissingVariableError(f"qc_threshold given but the table has no {qc!r} column")
        rows &= fraction_kept(table[qc], qc_threshold)
    return table.loc[rows]


def train(
    table: pd.DataFrame,
    target: str,
    features,
    model: str = "deepforest",
    *,
    random_state: int = 0,
    qc_threshold: float | None = None,
    baseline: str | None = None,
    residual: str = "auto",
    **params,
) -> FluxModel:
    """Fit a model of ``target`` on a training table.

    Parameters
    ----------
    table : pandas.DataFrame
        Training table from :func:`uflux_xr.extract_at_sites` (``site`` column,
        features, target, optionally ``<target>_QC``).
    target : str
        Column to predict (e.g. ``GPP`` [g C m-2 d-1]).
    features : sequence of str
        Predictor columns.
    model : str
        Registered model kind: see :func:`uflux_xr.models.available_models`.
        The default, ``deepforest``, is the DF21 cascade forest UFLUX uses.
        ``hybrid`` is the cascade forest with ``baseline="auto"``.
    random_state : int
        Seed of the estimator.
    qc_threshold : float, optional
        Keep only rows whose ``<target>_QC`` [0–1] is at least this.
    baseline : str, optional
        Make a hybrid model: a process baseline (a form of
        :data:`uflux_xr.models.hybrid.BASELINES`, or ``"auto"`` for the
        target's default) fitted on these rows, and the estimator trained on
        its residual.  The baseline's drivers must be among ``features``.
        With a ``site`` column, shape parameters are fitted within sites
        (:func:`uflux_xr.models.hybrid.fit_baseline`).
    residual : {"auto", "additive", "multiplicative"}
        How the estimator completes the baseline: it learns y − baseline, or
        y / baseline weighted by baseline² (kinds whose ``fit`` takes
        ``sample_weight``: not the cascade forest).  ``auto``: multiplicative
        for the respiration baselines where the kind allows it, else additive.
    **params
        Hyper-parameters overriding the kind's defaults; a name the kind does not have
        raises :class:`uflux_xr.models.registry.UnknownParameterError`.

    Returns
    -------
    FluxModel
        The fitted model.  Rows with a missing target or feature are dropped.
    """
    if model == "hybrid":
        model, baseline = "deepforest", baseline or "auto"
    kind = get_kind(model)
    check_params(model, params)
    features = list(features)
    if target in features:
        raise ValueError(f"target {target!r} is also listed as a feature")
    _check_columns(table, [target, *features], "training table")
    data = training_rows(table, target, features, qc_threshold)
    if len(data) < 10:
        raise ValueError(f"only {len(data)} usable rows to train the {target} model; need at least 10")
    merged = {**kind.defaults, **params}
    units = table.attrs.get("units", {})
    y = data[target].to_numpy(dtype=np.float64)
    # The baseline sees the features as the trees and the upscaler do: float32.
    X32 = data[features].to_numpy(dtype=np.float32)
    fitted_baseline, weight = None, None
    estimator = kind.build(random_state=random_state, **merged)
    if baseline is not None:
        columns = {f: X32[:, i] for i, f in enumerate(features)}
        groups = data["site"].to_numpy() if "site" in data else None
        weighted = "sample_weight" in inspect.signature(estimator.fit).parameters
        mode = resolve_residual(residual, get_baseline(baseline, target).name, weighted)
        fitted_baseline = fit_baseline(baseline, columns, y, target, features, units, groups=groups, residual=mode)
        y, weight = fitted_baseline.tree_target(fitted_baseline.predict(columns).astype(np.float32), y)
    estimator.fit(X32, y, **({} if weight is None else {"sample_weight": weight}))
    sites = sorted(map(str, data["site"].unique())) if "site" in data else []
    log.debug("trained %s %s model on %d rows from %d sites", model, target, len(data), len(sites))
    return FluxModel(
        kind=model,
        runtime=kind.freeze(estimator),
        target=target,
        features=features,
        units={c: units.get(c, "unknown") for c in [target, *features]},
        training_sites=sites,
        params={**merged, "random_state": random_state},
        n_train=len(data),
        baseline=fitted_baseline,
    )
