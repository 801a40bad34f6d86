"""Grouped cross-validation of flux models: leave-one-site-out and grouped k-fold.

Rows of one site never sit on both sides of a split, so scores measure how well
a model predicts an unseen tower, the question upscaling asks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from uflux_xr.core.metrics import metrics_table
from uflux_xr.core.progress import ProgressLog
from uflux_xr.core.variables import MissingVariableError
from uflux_xr.models import train

log = logging.getLogger(__name__)


@dataclass
class CVResult:
    """Out-of-fold predictions and their metric tables for one target and model.

    Attributes
    ----------
    target, model, cv : str
        What was validated and how.
    predictions : pandas.DataFrame
        ``site``, ``time``, ``igbp``, ``fold``, ``obs``, ``pred`` per held-out row.
    """

    target: str
    model: str
    cv: str
    predictions: pd.DataFrame

    def _label(self, table: pd.DataFrame) -> pd.DataFrame:
        return table.assign(target=self.target, model=self.model, cv=self.cv)

    @property
    def metrics(self) -> pd.DataFrame:
        """Pooled metrics over all held-out rows (one row)."""
        return self._label(metrics_table(self.predictions, "pred", "obs"))

    @property
    def by_igbp(self) -> pd.DataFrame:
        """Metrics per IGBP class."""
        return self._label(metrics_table(self.predictions, "pred", "obs", by="igbp"))

    @property
    def by_site(self) -> pd.DataFrame:
        """Metrics per held-out site."""
        return self._label(metrics_table(self.predictions, "pred", "obs", by="site"))


def site_folds(sites, cv: str = "loso", n_splits: int = 5, random_state: int = 0) -> list[np.ndarray]:
    """Groups of site ids held out together.

    Parameters
    ----------
    sites : array-like of str
        Site ids (duplicates ignored).
    cv : {"loso", "kfold"}
        One site per fold, or ``n_splits`` folds of shuffled sites.
    n_splits : int
        Folds for ``kfold``.
    random_state : int
        Seed of the site shuffle for ``kfold``.
    """
    unique = np.unique(np.asarray(sites).astype(str))
    if cv == "loso":
        return [np.array([s]) for s in unique]
    if cv == "kfold":
        if not 2 <= n_splits <= len(unique):
            raise ValueError(f"n_splits must be between 2 and the number of sites ({len(unique)}), got {n_splits}")
        shuffled = np.random.default_rng(random_state).permutation(unique)
        return [np.sort(f) for f in np.array_split(shuffled, n_splits)]
    raise ValueError(f"cv must be 'loso' or 'kfold', got {cv!r}")


def _fit_predict_fold(table, target, features, model, held_out, fold, random_state, qc_threshold, params, progress):
    train_rows = ~table["site"].isin(held_out)
    fitted = train(
        table.loc[train_rows],
        target,
        features,
        model=model,
        random_state=random_state,
        qc_threshold=qc_threshold,
        **params,
    )
    test = table.loc[~train_rows & table[target].notna()]
    # Predict with the threads the fold trained with: folds that run in parallel then all ask LightGBM
    # for one thread count and never wait for each other at its gate (uflux_xr.models.boosting).
    n_jobs = params.get("n_jobs")
    predicted = fitted.predict(test, n_jobs if isinstance(n_jobs, int) and n_jobs > 0 else None).astype(float)
    progress.step()
    return pd.DataFrame(
        {
            "site": test["site"].to_numpy(),
            "time": test["time"].to_numpy() if "time" in test else np.nan,
            "igbp": test["igbp"].to_numpy() if "igbp" in test else "",
            "fold": fold,
            "obs": test[target].to_numpy(dtype=float),
            "pred": predicted,
        }
    )


def cross_validate(
    table: pd.DataFrame,
    target: str,
    features,
    model: str = "deepforest",
    *,
    cv: str = "loso",
    n_splits: int = 5,
    random_state: int = 0,
    qc_threshold: float | None = None,
    fold_jobs: int | None = None,
    **params,
) -> CVResult:
    """Grouped cross-validation of a model of ``target``.

    Parameters
    ----------
    table : pandas.DataFrame
        Training table with a ``site`` column (and ``igbp`` for per-class tables).
    target : str
        Flux to predict.
    features : sequence of str
        Predictor columns.
    model : str
        Registered model kind.
    cv : {"loso", "kfold"}
        Leave-one-site-out, or grouped k-fold over sites.
    n_splits : int
        Folds for ``kfold``.
    random_state : int
        Seed of the models and of the fold shuffle.
    qc_threshold : float, optional
        Training rows need ``<target>_QC`` ≥ this [0–1]; held-out rows are all scored.
    fold_jobs : int, optional
        Folds fitted in parallel (threads); default one per core (at most one
        per fold).  When above 1, each model gets ``n_jobs=1`` unless
        ``params`` says otherwise: folds in parallel with single-threaded
        models keep every core busy without oversubscribing them (LightGBM
        leave-one-site-out with its OpenMP threads on every core, one fold
        after another, was reported at 845 s against 34 s this way, on a
        2-core machine with one other busy process).
    **params
        Model hyper-parameters.

    Returns
    -------
    CVResult
        Out-of-fold predictions; ``.metrics``, ``.by_igbp`` and ``.by_site`` tables.
    """
    if "site" not in table.columns:
        raise MissingVariableError("cross-validation needs a 'site' column to group rows by tower")
    folds = site_folds(table["site"], cv, n_splits, random_state)
    if len(folds) < 2:
        raise ValueError("cross-validation needs at least 2 sites")
    if fold_jobs is None:
        fold_jobs = min(len(folds), os.cpu_count() or 1)
    if fold_jobs > 1:
        params.setdefault("n_jobs", 1)
    progress = ProgressLog(len(folds), f"{cv} {model} {target}", log, unit="folds")
    parts = Parallel(n_jobs=fold_jobs, prefer="threads")(
        delayed(_fit_predict_fold)(
            table, target, list(features), model, held, i, random_state, qc_threshold, params, progress
        )
        for i, held in enumerate(folds)
    )
    predictions = pd.concat(parts, ignore_index=True)
    log.info("%s %s %s: %d folds, %d held-out rows", cv, model, target, len(folds), len(predictions))
    return CVResult(target=target, model=model, cv=cv, predictions=predictions)
