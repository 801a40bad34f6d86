"""What drives the flux models: per-feature contributions, maps of the leading driver and importance tables.

Every prediction is split into additive *terms* that sum to it:

- one term per feature: its TreeSHAP contribution (Lundberg et al. 2020,
  path-dependent TreeSHAP), the part of the prediction owed to that feature's
  value against the trees' average output;
- ``bias``: the trees' expected output over their training rows;
- ``baseline``: a hybrid model's process baseline (:mod:`uflux_xr.models.hybrid`).
  For a multiplicative hybrid (prediction = baseline × trees) the feature terms
  are the trees' contributions times the baseline and ``bias`` is
  baseline × (expected factor − 1), so the terms stay in flux units and still sum;
- ``unexplained``: only for kinds explained through a surrogate (below).

How each model kind is explained:

- ``xgboost`` and ``lightgbm``: exact TreeSHAP of the model itself (XGBoost
  ``pred_contribs``, LightGBM ``pred_contrib``).
- Every other kind (the cascade forest ``deepforest``, ``random_forest``):
  *surrogate TreeSHAP*.  The cascade forest's later layers see the earlier
  layers' outputs, so a feature's effect runs through many forests and there is
  no exact tree-path decomposition of the whole cascade.  A LightGBM model (the
  surrogate, :data:`SURROGATE_PARAMS`) is fitted to the model's own output on
  sample rows (the towers' rows and rows of the explained period); its TreeSHAP
  terms explain the model, and what the surrogate misses is kept as the term
  ``unexplained`` (model output − surrogate output), so the terms still sum to
  the model's prediction.  The surrogate's fidelity (R² against the model's
  output on a fifth of the sample rows held out of its fit) is reported with
  every explanation; a large ``unexplained`` term says the explanation is weak.

An ensemble is explained through its mean: each term averaged over the members
is an exact additive split of the ensemble-mean prediction.  The explained
output is the models' own, before GPP and RECO are clipped at 0 in the product.

Maps (:func:`explain`) hold, per cell and over the chosen period, the mean of
each term (signed), the mean of its absolute value, and the *leading driver*:
the feature term (or ``baseline``) with the largest mean absolute contribution.
:func:`importance_table` weights the cells by their area and number of time steps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.domain import COORDINATE_ATTRS, spatial_dims, time_step
from uflux_xr.core.plausibility import check_values, resolution_of
from uflux_xr.core.variables import MissingVariableError, variable_attrs
from uflux_xr.grid.features import resolve_features
from uflux_xr.grid.upscale import (
    DEFAULT_CHUNKS,
    block_rows,
    cached_model,
    cell_mask,
    model_reference,
    normalize_ensemble,
)
from uflux_xr.io.product import time_bounds
from uflux_xr.models import FluxModel
from uflux_xr.models.fluxmodel import check_feature_units
from uflux_xr.models.registry import get_kind

log = logging.getLogger(__name__)

BIAS = "bias"
BASELINE = "baseline"
UNEXPLAINED = "unexplained"

#: The surrogate's LightGBM hyper-parameters.  TreeSHAP costs about trees x leaves x depth^2 per row, so the
#: surrogate is kept small: on the small demo world (cascade forest of GPP, 15,000 cube rows) 150 trees of 15
#: leaves explained 6,100 rows/s per core with a fidelity R2 of 0.989; 600 trees of 127 leaves were 70x slower
#: for R2 0.988, and 300 trees of 31 leaves 5.6x slower for 0.989.
SURROGATE_PARAMS: dict[str, Any] = {
    "n_estimators": 150,
    "learning_rate": 0.15,
    "num_leaves": 15,
    "min_child_samples": 5,
    "verbose": -1,
}

#: Rows the surrogate is fitted on at most, and the share of them held out to measure its fidelity.
SURROGATE_ROWS = 20_000
SURROGATE_HOLDOUT = 0.2


class ExplainError(ValueError):
    """An explanation that cannot be made as asked (no rows, no surrogate, an empty period)."""


class Surrogate:
    """A LightGBM imitation of a model's tree output, explained by exact TreeSHAP in its place.

    Attributes
    ----------
    features : tuple of str
        The explained model's features, in its order.
    r2 : float
        Fidelity: R² of the surrogate against the model's output on held-out sample rows [-].
    n_rows : int
        Sample rows the surrogate was fitted on.
    """

    def __init__(self, model_str: str, features: Sequence[str], r2: float, n_rows: int):
        from uflux_xr.models.boosting import LightGBMRuntime

        self.features = tuple(features)
        self.r2 = float(r2)
        self.n_rows = int(n_rows)
        self.model_str = model_str
        self._runtime = LightGBMRuntime(model_str)

    def __reduce__(self):  # to distributed workers as its model string (the runtime's boosters are per thread)
        return (Surrogate, (self.model_str, self.features, self.r2, self.n_rows))

    def contributions(self, X: np.ndarray, n_threads: int | None = None) -> np.ndarray:
        """(rows, features + 1) TreeSHAP terms of the surrogate, its expected output last."""
        return np.asarray(self._runtime.contributions(X, n_threads), dtype=np.float64)

    def describe(self) -> str:
        """One line for attributes and logs."""
        return f"surrogate TreeSHAP (LightGBM fitted to the model's output on {self.n_rows} rows, R2 {self.r2:.3f})"


def needs_surrogate(model: FluxModel) -> bool:
    """Whether ``model``'s kind has no exact contributions of its own (see the module docstring)."""
    return get_kind(model.kind).contributions is None


def fit_surrogate(model: FluxModel, X: np.ndarray, *, seed: int = 0, max_rows: int = SURROGATE_ROWS) -> Surrogate:
    """Fit a :class:`Surrogate` of ``model``'s tree output on sample rows.

    Parameters
    ----------
    model : FluxModel
        The model to imitate.
    X : numpy.ndarray
        (rows, features) predictors in ``model.features`` order; rows with a NaN are dropped and at
        most ``max_rows`` are drawn at random.
    seed : int
        Seed of the row draw, of the held-out split and of LightGBM.
    max_rows : int
        Rows used at most.

    Returns
    -------
    Surrogate
        With its fidelity measured on the held-out fifth of the rows.
    """
    import lightgbm as lgb

    X = np.asarray(X, dtype=np.float32)
    X = X[np.isfinite(X).all(axis=1)]
    if X.shape[0] < 50:
        raise ExplainError(
            f"{X.shape[0]} complete rows to fit a surrogate of the {model.target} {model.kind} model; "
            "at least 50 needed"
        )
    rng = np.random.default_rng(seed)
    if X.shape[0] > max_rows:
        X = X[rng.choice(X.shape[0], max_rows, replace=False)]
    X = np.ascontiguousarray(X)
    y = model.predict_trees(X)
    held_out = np.less(rng.random(X.shape[0]), SURROGATE_HOLDOUT)
    fit = lgb.LGBMRegressor(random_state=seed, n_jobs=1, **SURROGATE_PARAMS).fit(X[~held_out], y[~held_out])
    pred = np.asarray(fit.predict(X[held_out]), dtype=np.float64)
    r2 = 1.0 - float(np.sum((y[held_out] - pred) ** 2) / np.sum((y[held_out] - y[held_out].mean()) ** 2))
    surrogate = Surrogate(fit.booster_.model_to_string(), model.features, r2, int((~held_out).sum()))
    log.info("%s %s model: %s", model.target, model.kind, surrogate.describe())
    return surrogate


def term_names(model: FluxModel) -> list[str]:
    """The terms a model's prediction is split into, in the order :func:`row_terms` returns them."""
    return [
        *model.features,
        *([BASELINE] if model.baseline is not None else []),
        BIAS,
        *([UNEXPLAINED] if needs_surrogate(model) else []),
    ]


def row_terms(
    model: FluxModel, X: np.ndarray, *, surrogate: Surrogate | None = None, n_threads: int | None = None
) -> np.ndarray:
    """Additive terms of each row's prediction [units of the target], float64.

    Parameters
    ----------
    model : FluxModel
        The explained model.
    X : numpy.ndarray
        (rows, features) float32 predictors in ``model.features`` order, all finite.
    surrogate : Surrogate, optional
        Required for kinds without exact contributions (:func:`needs_surrogate`).
    n_threads : int, optional
        Threads for this call; 1 inside dask tasks.

    Returns
    -------
    numpy.ndarray
        (rows, len(term_names(model))); each row sums to ``model.predict_array`` of that row
        (within float32 rounding).
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    kind = get_kind(model.kind)
    unexplained = None
    if kind.contributions is not None:
        phi = np.asarray(kind.contributions(model.runtime, X, n_threads), dtype=np.float64)
    else:
        if surrogate is None:
            raise ExplainError(
                f"the {model.target} {model.kind} model has no exact contributions; pass a surrogate (fit_surrogate)"
            )
        phi = surrogate.contributions(X, n_threads)
        unexplained = model.predict_trees(X, n_threads).astype(np.float64) - phi.sum(axis=1)
    features, bias = phi[:, :-1], phi[:, -1:]
    baseline = []
    if model.baseline is not None:
        b = model.baseline_values(X).astype(np.float64)[:, None]
        if model.baseline.residual == "multiplicative":  # prediction = b * (bias + sum(phi) [+ unexplained])
            features, bias = features * b, b * (bias - 1.0)
            unexplained = None if unexplained is None else unexplained * b[:, 0]
        baseline = [b]
    rest = [] if unexplained is None else [unexplained[:, None]]
    return np.hstack([features, *baseline, bias, *rest])


def contributions(
    model: FluxModel,
    data: pd.DataFrame,
    *,
    surrogate: Surrogate | None = None,
    background: pd.DataFrame | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-row additive terms of a model's predictions for a table.

    Parameters
    ----------
    model : FluxModel
        The explained model.
    data : pandas.DataFrame
        Rows to explain, holding the model's feature columns.
    surrogate : Surrogate, optional
        For a kind without exact contributions; fitted here on ``background`` and ``data`` when not given.
    background : pandas.DataFrame, optional
        More rows for the surrogate's fit (e.g. the training table).
    seed : int
        Seed of the surrogate's fit.

    Returns
    -------
    pandas.DataFrame
        One column per term (:func:`term_names`) [units of the target], indexed like ``data``; NaN
        where a feature is missing.  ``attrs``: ``units``, ``method`` and, with a surrogate, ``surrogate_r2``.
    """
    missing = [f for f in model.features if f not in data.columns]
    if missing:
        raise MissingVariableError(
            f"the {model.target} model needs feature column(s) {missing}; the table has {list(data.columns)}"
        )
    X = data[model.features].to_numpy(dtype=np.float32)
    complete = np.isfinite(X).all(axis=1)
    if needs_surrogate(model) and surrogate is None:
        sample = X if background is None else np.vstack([background[model.features].to_numpy(np.float32), X])
        surrogate = fit_surrogate(model, sample, seed=seed)
    names = term_names(model)
    values = np.full((len(data), len(names)), np.nan)
    if complete.any():
        values[complete] = row_terms(model, X[complete], surrogate=surrogate)
    out = pd.DataFrame(values, index=data.index, columns=names)
    out.attrs["units"] = model.units.get(model.target, variable_attrs(model.target).get("units"))
    out.attrs["method"] = _method(model, surrogate)
    if needs_surrogate(model) and surrogate is not None:
        out.attrs["surrogate_r2"] = surrogate.r2
    return out


def _method(model: FluxModel, surrogate: Surrogate | None) -> str:
    """How ``model`` is explained, for attributes and tables."""
    if needs_surrogate(model) and surrogate is not None:
        return surrogate.describe()
    native = {"xgboost": "XGBoost pred_contribs", "lightgbm": "LightGBM pred_contrib"}
    return f"TreeSHAP ({native.get(model.kind, model.kind)})"


@dataclass
class _Explained:
    """One member's model of one flux, as the block function needs it."""

    model: FluxModel | str
    columns: np.ndarray  # the model's features as columns of the block's feature stack
    terms: np.ndarray  # its terms as indices into the flux's term list
    surrogate: Surrogate | None = field(default=None)


def explain_block(
    *blocks: np.ndarray,
    n_features: int,
    n_terms: int,
    members: tuple[_Explained, ...],
    checks: tuple = (),
    source: str = "predictor cube",
) -> np.ndarray:
    """Numpy core of :func:`explain`: the sums over one block's time steps of each ensemble-mean term.

    Parameters
    ----------
    *blocks : numpy.ndarray
        ``n_features`` feature blocks (time or 1, y, x) and the mask block (1, y, x).
    n_features : int
        How many of ``blocks`` are features.
    n_terms : int
        Terms of the flux (the union over its members).
    members : tuple
        Each member's model, feature columns and term positions.
    checks, source
        As :func:`uflux_xr.grid.upscale.predict_block`: what each feature's values are tested against.

    Returns
    -------
    numpy.ndarray
        (1, 2 n_terms + 1, y, x) float64: the summed signed terms, the summed absolute terms, and
        the number of explained time steps per cell.
    """
    shape, valid, columns = block_rows(blocks, n_features)
    ny, nx = shape[1], shape[2]
    out = np.zeros((1, 2 * n_terms + 1, ny, nx))
    if not columns:
        return out
    for column, (name, units, resolution) in zip(columns, checks, strict=False):
        check_values(column, name, units, source=f"{source} (a chunk being explained)", resolution=resolution)
    X = np.stack(columns, axis=1).astype(np.float32)
    # Complete in the features of this flux's models (as the upscaler predicts), not of every flux's.
    used = np.unique(np.concatenate([m.columns for m in members]))
    complete = np.isfinite(X[:, used]).all(axis=1)
    if not complete.any():
        return out
    X = X[complete]
    cells = np.broadcast_to(np.arange(ny * nx).reshape(1, ny, nx), shape)[valid][complete]
    total = np.zeros((X.shape[0], n_terms))
    for member in members:
        fitted = cached_model(member.model) if isinstance(member.model, str) else member.model
        rows = np.ascontiguousarray(X[:, member.columns])
        total[:, member.terms] += row_terms(fitted, rows, surrogate=member.surrogate, n_threads=1)
    total /= len(members)
    for k in range(n_terms):
        out[0, k] = np.bincount(cells, weights=total[:, k], minlength=ny * nx).reshape(ny, nx)
        out[0, n_terms + k] = np.bincount(cells, weights=np.abs(total[:, k]), minlength=ny * nx).reshape(ny, nx)
    out[0, 2 * n_terms] = np.bincount(cells, minlength=ny * nx).reshape(ny, nx)
    return out


def explain(
    models,
    cube: xr.Dataset,
    *,
    period: tuple[str, str] | None = None,
    fluxes: Sequence[str] | None = None,
    mask: str | xr.DataArray | None = "land_mask",
    background: pd.DataFrame | None = None,
    every: int = 1,
    surrogate_rows: int = SURROGATE_ROWS,
    seed: int = 0,
    chunks: Mapping[str, int] | None = None,
) -> xr.Dataset:
    """Maps of what drives each flux over a period: mean terms, mean absolute terms and the leading driver.

    Parameters
    ----------
    models : ensemble
        As :func:`uflux_xr.grid.upscale.upscale` takes it; the ensemble mean is explained.
    cube : xarray.Dataset
        The predictor cube the models are applied to.
    period : (str, str), optional
        First and last time explained (inclusive, as ``cube.sel(time=slice(...))``); default all.
    fluxes : sequence of str, optional
        Fluxes to explain (default every modelled flux).
    mask : str or xarray.DataArray or None
        Cells to explain, as :func:`uflux_xr.grid.upscale.upscale`.
    background : pandas.DataFrame, optional
        Rows that join the cube sample a surrogate is fitted on (e.g. the training table).
    every : int
        Explain every ``every``-th time step of the period only (1: all): the maps are then means over
        a systematic sample of the steps, and the cost falls by the same factor.
    surrogate_rows : int
        Rows a surrogate is fitted on at most.
    seed : int
        Seed of the surrogates' row draws and fits.
    chunks : mapping, optional
        Chunking of a cube that is not dask-backed (default as the upscaler).

    Returns
    -------
    xarray.Dataset
        Lazy; per flux ``<FLUX>_contribution`` and ``<FLUX>_abs_contribution`` (``<FLUX>_term``, y,
        x) [flux units] (period means of the term and of its absolute value), ``<FLUX>_leading_driver``
        (y, x), an index into the driver terms with CF ``flag_values``/``flag_meanings`` (-1: nothing
        explained), and ``<FLUX>_n_steps`` (y, x), the time steps explained per cell.  The method of
        every member (and a surrogate's fidelity) is in the attribute ``uflux_explain_methods``.

    Raises
    ------
    ExplainError
        When the period holds no time step, or a surrogate has too few rows.
    """
    members = normalize_ensemble(models)
    all_fluxes = list(next(iter(members.values())))
    fluxes = list(fluxes or all_fluxes)
    unknown = [f for f in fluxes if f not in all_fluxes]
    if unknown:
        raise ExplainError(f"no model of {unknown} to explain; the ensemble models {all_fluxes}")
    if period is not None:
        cube = cube.sel(time=slice(*period))
        if cube.sizes.get("time", 0) == 0:
            raise ExplainError(f"the period {period[0]} to {period[1]} holds no time step of the cube")
    if not isinstance(every, int) or every < 1:
        raise ExplainError(f"every must be a positive integer (explain every n-th time step), got {every!r}")
    if every > 1:
        cube = cube.isel(time=slice(None, None, every))
    if not cube.chunks:
        cube = cube.chunk(dict(chunks or DEFAULT_CHUNKS))
    ydim, xdim = spatial_dims(cube)
    mask_da = cell_mask(cube, mask)
    names = sorted({f for member in members.values() for flux in fluxes for f in member[flux].features})
    arrays = resolve_features(cube, names)
    units = {k: v.attrs.get("units") for k, v in arrays.items() if "units" in v.attrs}
    resolution = resolution_of(time_step(cube.indexes["time"]) if cube.sizes.get("time", 0) > 1 else None)
    grid = (ydim, xdim)
    block_chunks = tuple(cube.chunks.get(d, (cube.sizes[d],)) for d in ("time", *grid))
    blocks = [_block_array(arrays[n], block_chunks, grid) for n in names] + [_block_array(mask_da, block_chunks, grid)]
    sample = None
    if any(needs_surrogate(m[f]) for m in members.values() for f in fluxes):
        sample = _sample_rows(arrays, names, mask_da, cube.sizes["time"], background, surrogate_rows, seed)

    data_vars: dict[str, xr.DataArray] = {}
    methods: dict[str, str] = {}
    for flux in fluxes:
        terms = sorted({f for m in members.values() for f in m[flux].features})
        extra = [t for t in (BASELINE, BIAS, UNEXPLAINED) if any(t in term_names(m[flux]) for m in members.values())]
        terms = terms + extra
        explained = []
        for label, member in members.items():
            model = member[flux]
            check_feature_units(model, units, source="predictor cube")
            surrogate = None
            if needs_surrogate(model):
                assert sample is not None  # drawn above whenever a model needs a surrogate
                surrogate = fit_surrogate(model, sample[:, [names.index(f) for f in model.features]], seed=seed)
            methods[f"{label} {flux}"] = _method(model, surrogate)
            explained.append(
                _Explained(
                    model=model_reference(model),
                    columns=np.array([names.index(f) for f in model.features]),
                    terms=np.array([terms.index(t) for t in term_names(model)]),
                    surrogate=surrogate,
                )
            )
        sums = dsa.map_blocks(
            explain_block,
            *blocks,
            n_features=len(names),
            n_terms=len(terms),
            members=tuple(explained),
            checks=tuple((n, units.get(n), resolution) for n in names),
            source=str(cube.attrs.get("source", "predictor cube")),
            new_axis=1,
            chunks=((1,) * len(block_chunks[0]), (2 * len(terms) + 1,), *block_chunks[1:]),
            dtype=np.float64,
        ).sum(axis=0)
        data_vars.update(_flux_maps(flux, terms, sums, ydim, xdim))
    coords = {ydim: cube[ydim], xdim: cube[xdim]}
    out = xr.Dataset(data_vars).assign_coords(coords)
    times = cube.indexes["time"]
    out.attrs = {
        "title": "uflux-xr explanation: what drives each flux",
        "uflux_explain_period": f"{times[0].isoformat()} to {times[-1].isoformat()} ({len(times)} steps"
        + (f", one in every {every})" if every > 1 else ")"),
        "uflux_explain_methods": "; ".join(f"{k}: {v}" for k, v in methods.items()),
        "comment": "Additive terms of the ensemble-mean prediction (member mean of each member's terms), before "
        "GPP and RECO are clipped at 0; see uflux_xr.grid.explain for the method.",
    }
    # The maps are means over the explained period: a scalar time coordinate with its bounds makes
    # their cell_methods "time: mean" name a coordinate, as CF wants (1.10 §7.3).
    edges = time_bounds(times)
    out = out.assign_coords(
        time=((), times[0] + (times[-1] - times[0]) / 2, {"standard_name": "time", "bounds": "time_bnds"}),
        time_bnds=(("nv",), np.array([edges[0, 0], edges[-1, 1]])),
    )
    out.attrs["Conventions"] = "CF-1.10"
    for name in (ydim, xdim):
        out[name].attrs.update(COORDINATE_ATTRS[name])
    for coord in out.coords.values():
        coord.encoding["_FillValue"] = None
    for bound in ("time", "time_bnds"):
        out[bound].encoding["units"] = "hours since 1970-01-01 00:00:00"
    if ydim == "y" and cube.rio.crs is not None:
        out = out.rio.write_crs(cube.rio.crs)
    log.info("explanation graph: %s over %d time steps", ", ".join(fluxes), len(times))
    return out


def _block_array(da: xr.DataArray, chunks: tuple, grid: tuple[str, str]) -> dsa.Array:
    """``da`` as a (time, y, x) dask array chunked as ``chunks``, with a length-1 axis (one chunk) for each
    dimension it lacks (static layers, day-of-year harmonics), which the blocks broadcast."""
    dims = ("time", *grid)
    da = da.expand_dims([d for d in dims if d not in da.dims]).transpose(*dims)
    data = da.data if isinstance(da.data, dsa.Array) else dsa.from_array(np.asarray(da.data))
    return data.rechunk(tuple(c if n > 1 else (1,) for c, n in zip(chunks, data.shape, strict=True)))


def _sample_rows(arrays, names, mask_da, n_times: int, background, max_rows: int, seed: int) -> np.ndarray:
    """Rows a surrogate is fitted on: the masked cells of up to 4 time steps spread over the period, and
    ``background``'s rows, drawn down to ``max_rows`` (columns as ``names``)."""
    steps = np.unique(np.linspace(0, n_times - 1, 4).round().astype(int))
    picked = xr.Dataset({n: arrays[n] for n in names}).isel(time=steps).compute()  # one compute for all
    mask = mask_da.values.astype(bool)
    parts = []
    for i in range(len(steps)):
        at_step = picked.isel(time=i)
        cols = [at_step[n].broadcast_like(mask_da).transpose(*mask_da.dims).values[mask] for n in names]
        parts.append(np.stack(cols, axis=1))
    if background is not None:
        parts.append(background[names].to_numpy(np.float32))
    rows = np.vstack(parts).astype(np.float32)
    rows = rows[np.isfinite(rows).all(axis=1)]
    if rows.shape[0] > max_rows:
        rows = rows[np.random.default_rng(seed).choice(rows.shape[0], max_rows, replace=False)]
    return rows


def term_dim(flux: str) -> str:
    """The name of a flux's term dimension in :func:`explain`'s output (fluxes may have different terms)."""
    return f"{flux}_term"


def _flux_maps(flux: str, terms: list[str], sums: dsa.Array, ydim: str, xdim: str) -> dict[str, xr.DataArray]:
    """The period-mean maps of one flux from the summed block outputs."""
    k = len(terms)
    units = variable_attrs(flux).get("units", "")
    term = term_dim(flux)
    dims = (term, ydim, xdim)
    n_steps = xr.DataArray(sums[2 * k], dims=(ydim, xdim))
    divisor = n_steps.where(n_steps > 0)  # NaN where nothing was explained: no 0/0 warning
    mean = (xr.DataArray(sums[:k], dims=dims, coords={term: terms}) / divisor).astype(np.float32)
    mean_abs = (xr.DataArray(sums[k : 2 * k], dims=dims, coords={term: terms}) / divisor).astype(np.float32)
    drivers = [t for t in terms if t not in (BIAS, UNEXPLAINED)]
    leading = mean_abs.sel({term: drivers}).fillna(-np.inf).argmax(term).astype(np.int16)
    leading = leading.where(n_steps > 0, -1).astype(np.int16)
    mean.attrs = {
        "long_name": f"period-mean additive term of the ensemble-mean {flux}",
        "units": units,
        "cell_methods": "time: mean",
    }
    mean_abs.attrs = {
        "long_name": f"period mean of the absolute additive term of the ensemble-mean {flux}",
        "units": units,
        "cell_methods": "time: mean",
    }
    leading.attrs = {
        "long_name": f"leading driver of {flux}: the term with the largest period-mean absolute contribution",
        "flag_values": np.arange(len(drivers), dtype=np.int16),
        "flag_meanings": " ".join(d.replace(" ", "_") for d in drivers),
        "comment": f"index into flag_meanings (the {term} coordinate without bias and unexplained); -1: not explained",
    }
    n_steps = n_steps.astype(np.int32)
    n_steps.attrs = {"long_name": f"time steps explained per cell for {flux}", "units": "1"}
    return {
        f"{flux}_contribution": mean,
        f"{flux}_abs_contribution": mean_abs,
        f"{flux}_leading_driver": leading,
        f"{flux}_n_steps": n_steps,
    }


def importance_table(explanation: xr.Dataset) -> pd.DataFrame:
    """Area- and time-weighted importance of each term per flux, from :func:`explain`'s maps.

    Parameters
    ----------
    explanation : xarray.Dataset
        The output of :func:`explain` (computed or lazy).

    Returns
    -------
    pandas.DataFrame
        Per flux and term: ``mean_abs`` and ``mean`` [flux units] (weighted by cell area × steps
        explained), ``share`` [%] of the summed ``mean_abs`` of the driver terms (features and
        ``baseline``; NaN for ``bias`` and ``unexplained``), ``leading_area`` [%] (share of the
        explained area where the term leads) and ``rank`` among the drivers, most important first.
    """
    from uflux_xr.grid.ensemble import cell_area

    explanation = explanation.compute()  # the maps are small (term x cells); computed once, not per statistic
    area = cell_area(explanation)
    rows = []
    for name in explanation.data_vars:
        if not str(name).endswith("_abs_contribution"):
            continue
        flux = str(name)[: -len("_abs_contribution")]
        n = explanation[f"{flux}_n_steps"]
        weights = (area * n).fillna(0)
        total_w = float(weights.sum())
        if total_w == 0:
            raise ExplainError(f"no cell of {flux} was explained (every cell masked or with a missing predictor)")
        mean_abs = (explanation[name].fillna(0) * weights).sum(area.dims) / total_w
        mean = (explanation[f"{flux}_contribution"].fillna(0) * weights).sum(area.dims) / total_w
        leading = explanation[f"{flux}_leading_driver"]
        drivers = str(leading.attrs["flag_meanings"]).split()
        explained_area = float(area.where(leading >= 0).sum())
        for term, a, m in zip(explanation[term_dim(flux)].values, mean_abs.values, mean.values, strict=True):
            rows.append({"variable": flux, "term": str(term), "mean_abs": float(a), "mean": float(m)})
            if str(term) in drivers:
                where = leading == drivers.index(str(term))
                rows[-1]["leading_area"] = 100.0 * float(area.where(where).sum()) / explained_area
    table = pd.DataFrame(rows)
    is_driver = ~table["term"].isin([BIAS, UNEXPLAINED])
    sums = table[is_driver].groupby("variable")["mean_abs"].transform("sum")
    table["share"] = np.nan
    table.loc[is_driver, "share"] = 100.0 * table.loc[is_driver, "mean_abs"] / sums
    table["rank"] = table[is_driver].groupby("variable")["mean_abs"].rank(ascending=False, method="first")
    table = table.sort_values(["variable", "rank"], na_position="last").reset_index(drop=True)
    table["units"] = [variable_attrs(v).get("units", "") for v in table["variable"]]
    return table[["variable", "term", "rank", "share", "mean_abs", "mean", "leading_area", "units"]]
