"""Chunkwise inference over dask: trained flux models applied to a predictor cube.

The recipe: ``xr.apply_ufunc(dask="parallelized")`` with each
feature as its own argument; inside a block the features are stacked to a
(rows, features) float32 array holding only land cells with complete
predictors, predicted with one thread (dask supplies the parallelism) and
scattered back.  Blocks without land are not predicted at all.  Models are
referenced by file path and loaded once per worker process, so a distributed
graph never carries model objects.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from uflux_xr.core.constants import SECONDS_PER_DAY
from uflux_xr.core.domain import spatial_dims, time_step
from uflux_xr.core.plausibility import check_values, resolution_of
from uflux_xr.core.variables import MissingVariableError, ensure_units, latent_heat_of_vaporization, variable_attrs
from uflux_xr.grid.features import resolve_features
from uflux_xr.io.loaded_once import LoadedOnce
from uflux_xr.models import FluxModel, load_model
from uflux_xr.models.dedup import ChunkCodes, dedup_stats, merge_stats, predict_chunk_rows, reset_dedup_stats
from uflux_xr.models.fluxmodel import check_feature_units

log = logging.getLogger(__name__)

#: Default chunking applied to an in-memory cube [time steps, cells, cells].
DEFAULT_CHUNKS = {"time": 32}

#: Fluxes that cannot be negative: a tree model trained on partitioned tower GPP and RECO (which
#: carry small negatives) can predict below 0, and a map of negative photosynthesis or respiration
#: means nothing.  Such predictions are stored as -0.0: equal to 0 in every computation, with the
#: sign bit left so that the clipped cells can be counted afterwards (:func:`count_clipped`).
NON_NEGATIVE_FLUXES = ("GPP", "RECO")

#: Load a model file once per process and keep it for later tasks.
cached_model: LoadedOnce[FluxModel] = LoadedOnce(load_model)


def predict_models_block(
    *blocks: np.ndarray,
    models: tuple,
    features: tuple[tuple[int, ...], ...],
    n_features: int,
    checks: tuple = (),
    source: str = "predictor cube",
    non_negative: tuple[bool, ...] = (),
    dedup: bool | str = "auto",
    baselines: tuple[bool, ...] = (),
) -> np.ndarray:
    """Numpy core of the upscaler: predict one block of the cube with several models.

    The models share the block's work that does not depend on them: each feature is gathered at
    the mask's cells and checked once, and (with ``dedup``) the models reading the same features are
    coded once with the union of their thresholds, the distinct rows found once and refined per
    model (:class:`~uflux_xr.models.dedup.ChunkCodes`).

    Parameters
    ----------
    *blocks : numpy.ndarray
        ``n_features`` feature blocks (each distinct feature of the models once) followed by the
        mask block; each is broadcastable to the block shape (static layers arrive with a length-1
        time axis).
    models : tuple of FluxModel or str
        The models, or the paths of model files to load once per process.
    features : tuple of tuple of int
        Per model, the positions in ``blocks`` of its features, in its own feature order.
    n_features : int
        How many of ``blocks`` are features.
    checks : tuple of (name, units, resolution)
        Per feature block, what :func:`uflux_xr.core.plausibility.check_values` tests its values
        against in this block (empty: no check).
    source : str
        Where the cube came from, for the plausibility message.
    non_negative : tuple of bool
        Per model: store its predictions below 0 as -0.0 (:data:`NON_NEGATIVE_FLUXES`).
    dedup : bool or "auto"
        Exact deduplicated inference (see :func:`upscale`).
    baselines : tuple of bool
        Per model: also return its process baseline (a hybrid's; the layer ``<flux>_baseline``),
        from the same values the prediction combined with its trees, so that it is computed once.

    Returns
    -------
    numpy.ndarray
        float32 (*block shape, models + baselines): each model's predictions, then the baselines
        asked for in model order; NaN outside the mask and where any of the model's features is NaN.
    """
    shape, valid, columns = block_rows(blocks, n_features)
    # where each model whose baseline is asked for puts it: after the predictions, in model order
    slot = {k: len(models) + j for j, k in enumerate(k for k, wanted in enumerate(baselines) if wanted)}
    out = np.full((len(models) + len(slot), *shape), np.nan, dtype=np.float32)
    if columns:  # else an ocean-only block: nothing to predict
        for column, (name, units, resolution) in zip(columns, checks, strict=False):
            check_values(column, name, units, source=f"{source} (a chunk being predicted)", resolution=resolution)
        fitted_models = [cached_model(m) if isinstance(m, str) else m for m in models]
        coders = [None if dedup is False else m.interval_coder for m in fitted_models]
        chunk = ChunkCodes(
            {j: c.astype(np.float32, copy=False) for j, c in enumerate(columns)},
            [(used, coder) for used, coder in zip(features, coders, strict=True) if coder is not None],
        )
        cells = np.flatnonzero(valid)
        for k, (fitted, coder, used) in enumerate(zip(fitted_models, coders, features, strict=True)):
            rows = chunk.rows(used)
            if not rows.size:
                continue
            # Through predict_chunk_rows in every mode, so that dedup_report() times plain chunks too.  Only
            # the trees are deduplicated: a hybrid's baseline differs between rows of equal interval codes.
            pred = predict_chunk_rows(
                lambda r, m=fitted: m.predict_trees(r, n_threads=1),
                coder,
                chunk,
                used,
                key=fitted.stats_key,
                mode=dedup,
            )
            if fitted.baseline is not None:
                base = fitted.baseline_values(chunk.matrix(used))
                pred = fitted.baseline.combine(base, pred)
                if k in slot:
                    out[slot[k]].reshape(-1)[cells[rows]] = base
            if non_negative and non_negative[k]:
                pred[pred < 0] = -0.0
            out[k].reshape(-1)[cells[rows]] = pred
    return np.moveaxis(out, 0, -1)


def predict_block(*blocks: np.ndarray, model, n_features: int, non_negative: bool = False, **kwargs) -> np.ndarray:
    """:func:`predict_models_block` for one model whose features are the ``n_features`` blocks in
    its order: float32 of the block shape (``checks``, ``source`` and ``dedup`` as there)."""
    one = predict_models_block(
        *blocks,
        models=(model,),
        features=(tuple(range(n_features)),),
        n_features=n_features,
        non_negative=(non_negative,),
        **kwargs,
    )
    return one[..., 0]


def block_rows(blocks, n_features: int) -> tuple[tuple[int, ...], np.ndarray, list[np.ndarray]]:
    """The block's shape, the cells to fill (the mask, last of ``blocks``, broadcast to it) and each
    feature's values at those cells (an empty list where there are none)."""
    shape = np.broadcast_shapes(*(b.shape for b in blocks))
    valid = np.broadcast_to(blocks[n_features].astype(bool), shape)
    columns = [np.broadcast_to(f, shape)[valid] for f in blocks[:n_features]] if valid.any() else []
    return shape, valid, columns


def dedup_report(reset: bool = False) -> dict[str, dict]:
    """What deduplicated inference did, per model, in this process and on every distributed worker.

    Parameters
    ----------
    reset : bool
        Clear the counts (and the per-process on/off decisions) instead of reading them.

    Returns
    -------
    dict
        Per model file (or label): summed ``rows``, ``unique_rows``, ``plain_rows``, seconds
        spent coding (``code_seconds``), predicting deduplicated (``predict_seconds``) and plain
        (``plain_seconds``), and each process's decision (``enabled``).
    """
    action = reset_dedup_stats if reset else dedup_stats
    parts = [action()]
    try:
        from distributed import default_client

        parts.extend(default_client().run(action).values())
    except (ImportError, ValueError):
        pass  # no distributed client: the threads of this process did all the work
    return {} if reset else merge_stats(p for p in parts if p)


def count_clipped(da: xr.DataArray) -> int:
    """How many values of a product variable were predicted below 0 and set to 0 (stored as -0.0)."""
    return int(np.signbit(da).sum())


def normalize_ensemble(models) -> dict[str, dict[str, FluxModel]]:
    """Ensemble as ``{member: {flux: FluxModel}}``.

    Accepts that mapping, a mapping ``{flux: [FluxModel, ...]}`` (member i is the
    i-th model of every flux), or a flat sequence of FluxModel (one per flux, a
    single member ``"0"``).  Model-file paths are loaded.
    """

    def as_model(m):
        return load_model(m) if isinstance(m, str) else m

    if isinstance(models, FluxModel | str):
        models = [models]
    if isinstance(models, Sequence):
        models = [as_model(m) for m in models]
        targets = [m.target for m in models]
        if len(set(targets)) != len(targets):
            raise ValueError(
                f"a flat model list needs one model per flux, got targets {targets}; "
                "pass {member: {flux: model}} for ensembles"
            )
        return {"0": {m.target: m for m in models}}
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a FluxModel, a list of them, {flux: [models]} or {member: {flux: model}}")
    first = next(iter(models.values()))
    if isinstance(first, Mapping):
        members = {str(k): {f: as_model(m) for f, m in v.items()} for k, v in models.items()}
    else:
        n = {len(v) for v in models.values()}
        if len(n) != 1:
            raise ValueError("every flux needs the same number of member models")
        members = {str(i): {f: as_model(v[i]) for f, v in models.items()} for i in range(n.pop())}
    fluxes = [set(m) for m in members.values()]
    if any(f != fluxes[0] for f in fluxes):
        raise ValueError("every ensemble member must model the same fluxes")
    for member in members.values():
        for flux, m in member.items():
            if m.target != flux:
                raise ValueError(f"model under {flux!r} was trained for {m.target!r}")
    return members


def cell_mask(cube: xr.Dataset, mask: str | xr.DataArray | None) -> xr.DataArray:
    """The static boolean mask of the cells to predict: ``mask`` as :func:`upscale` takes it."""
    ydim, xdim = spatial_dims(cube)
    if mask is None:
        mask_da = xr.ones_like(cube[ydim] * cube[xdim], dtype=bool)
    elif isinstance(mask, str):
        if mask not in cube:
            raise MissingVariableError(f"mask variable {mask!r} not in the cube; pass mask=None to predict every cell")
        mask_da = cube[mask] == 1
    else:
        mask_da = mask.astype(bool)
    if "time" in mask_da.dims:
        raise ValueError("the mask must be static (no time dimension)")
    return mask_da


def model_reference(model: FluxModel):
    """The model as it travels in the graph: its file path when saved, else the object."""
    if model.path is not None:
        return model.path
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return model  # threaded scheduler: tasks share this process's memory
    raise ValueError(
        f"the {model.target} model has no file; save it (model.save(path)) before upscaling on a "
        "distributed cluster, so that workers load it once instead of receiving it in every task"
    )


def upscale(
    models,
    cube: xr.Dataset,
    *,
    mask: str | xr.DataArray | None = "land_mask",
    chunks: Mapping[str, int] | None = None,
    derived: bool = True,
    dedup: bool | str = "auto",
    residual_weights: Mapping[str, xr.DataArray] | None = None,
) -> xr.Dataset:
    """Apply trained flux models to a predictor cube, lazily and chunk by chunk.

    Parameters
    ----------
    models : ensemble
        ``{member: {flux: FluxModel}}``, ``{flux: [FluxModel, ...]}`` or a list of
        FluxModel (see :func:`normalize_ensemble`); model-file paths are accepted.
    cube : xarray.Dataset
        Predictor cube (time, lat, lon) or (time, y, x) holding every feature the
        models need, with units matching the models' training units.
    mask : str or xarray.DataArray or None
        Cells to predict (1/True = predict): a cube variable name, an array, or
        None for every cell.  Cells outside are NaN.
    chunks : mapping, optional
        Chunking for a cube that is not yet dask-backed (default ``{"time": 32}``).
    derived : bool
        Add ``NEE_RECO_GPP`` (RECO − GPP) when GPP and RECO are modelled, and ``ET``
        [kg m-2 d-1] from LE and the cube's TA [°C].
    dedup : bool or "auto"
        Exact deduplicated inference: per chunk, code each row by the interval
        of the model's split thresholds its values fall in, predict each
        distinct code row once and scatter the results back (identical
        predictions; :mod:`uflux_xr.models.dedup`).  It pays where cells share
        coarse climate (fine grids with nearest-regridded reanalysis).
        ``"auto"`` (default) measures it on each worker's first chunks per
        model and switches it off where it is not faster; ``True`` always,
        ``False`` never.  :func:`uflux_xr.models.dedup.dedup_stats` says what
        it did.
    residual_weights : mapping, optional
        Per flux, a (time, lat|y, lon|x) share [-] of the hybrid members'
        machine-learned part to keep: their prediction becomes baseline +
        weight * (prediction - baseline), and ``<flux>_residual`` the part
        kept.  ``uflux-xr run`` with ``applicability.hybrid_residual: fade``
        passes :func:`uflux_xr.models.hybrid.residual_weight` of each flux's
        DI, which fades the residual outside the area of applicability.
        Pure tree members are unchanged.

    Returns
    -------
    xarray.Dataset
        Lazy product (member, time, lat|y, lon|x), float32, one variable per flux;
        nothing is computed until it is written or ``.compute()``-d.
    """
    if dedup not in (True, False, "auto"):
        raise ValueError(f"dedup must be True, False or 'auto', got {dedup!r}")
    members = normalize_ensemble(models)
    ydim, xdim = spatial_dims(cube)
    if cube.chunks == {} or not cube.chunks:
        cube = cube.chunk(dict(chunks or DEFAULT_CHUNKS))
    mask_da = cell_mask(cube, mask)

    names = sorted({f for member in members.values() for m in member.values() for f in m.features})
    arrays = resolve_features(cube, names)
    units = {k: v.attrs.get("units") for k, v in arrays.items() if "units" in v.attrs}
    step = time_step(cube.indexes["time"]) if cube.sizes.get("time", 0) > 1 else None
    resolution = resolution_of(step)
    source = str(cube.attrs.get("source", "predictor cube"))
    out_dims = ("time", ydim, xdim)
    fluxes = list(next(iter(members.values())))
    entries = [(flux, label, member[flux]) for flux in fluxes for label, member in members.items()]
    for _, _, model in entries:
        check_feature_units(model, units, source="predictor cube")
    predicted: dict[tuple[str, str], xr.DataArray] = {}
    baseline_of: dict[tuple[str, str], xr.DataArray] = {}  # a hybrid's baseline layer, from its task
    for batch in model_batches(entries, _chunk_cells(cube, out_dims)):
        used = sorted({f for _, _, m in batch for f in m.features})
        position = {f: i for i, f in enumerate(used)}
        hybrid = tuple(m.baseline is not None for _, _, m in batch)
        block = xr.apply_ufunc(
            predict_models_block,
            *[arrays[f] for f in used],
            mask_da,
            kwargs={
                "models": tuple(model_reference(m) for _, _, m in batch),
                "features": tuple(tuple(position[f] for f in m.features) for _, _, m in batch),
                "n_features": len(used),
                "checks": tuple((f, units.get(f), resolution) for f in used),
                "source": source,
                "non_negative": tuple(flux in NON_NEGATIVE_FLUXES for flux, _, _ in batch),
                "dedup": dedup,
                "baselines": hybrid,
            },
            dask="parallelized",
            output_core_dims=[["model"]],
            dask_gufunc_kwargs={"output_sizes": {"model": len(batch) + sum(hybrid)}},
            output_dtypes=[np.float32],
            keep_attrs=False,
        )
        for k, (flux, label, _) in enumerate(batch):
            predicted[flux, label] = block.isel(model=k).transpose(*out_dims)
        hybrids_of_batch = [(flux, label) for (flux, label, _), h in zip(batch, hybrid, strict=True) if h]
        for j, key in enumerate(hybrids_of_batch):
            baseline_of[key] = block.isel(model=len(batch) + j).transpose(*out_dims)
    data_vars = {}
    baselines: dict[str, dict] = {}
    for flux in fluxes:
        per_member = [predicted[flux, label].expand_dims(member=[label]) for label in members]
        data_vars[flux] = _with_attrs(xr.concat(per_member, dim="member"), flux)
        hybrids = {label: b for label, member in members.items() if (b := member[flux].baseline) is not None}
        if hybrids:
            weight = None if residual_weights is None else residual_weights.get(flux)
            layers = _baseline_layers(flux, members, baseline_of, data_vars[flux], weight)
            data_vars.update(layers)
            if weight is not None:  # a hybrid member is its baseline plus the part of its residual kept
                baseline = layers[f"{flux}_baseline"]
                faded = xr.where(baseline.notnull(), baseline + layers[f"{flux}_residual"], data_vars[flux])
                if flux in NON_NEGATIVE_FLUXES:  # as the predictions themselves: below 0 stored as -0.0
                    faded = xr.where(faded < 0, np.float32(-0.0), faded)
                faded = _with_attrs(faded.astype(np.float32).transpose("member", *out_dims), flux)
                faded.attrs["comment"] = (
                    f"{faded.attrs.get('comment', '')} Hybrid members: the process baseline plus the residual "
                    "times a weight in [0, 1] (uflux-xr run, hybrid_residual fade: min(1, threshold / DI), fading it "
                    "outside the area of applicability).".strip()
                )
                data_vars[flux] = faded
            baselines.update({f"{label} {flux}": b.to_dict() for label, b in hybrids.items()})
    product = xr.Dataset(data_vars)
    if derived and {"GPP", "RECO"} <= set(fluxes):
        product["NEE_RECO_GPP"] = _with_attrs(product["RECO"] - product["GPP"], "NEE_RECO_GPP")
    if derived and "LE" in fluxes:
        if "TA" not in cube:
            log.warning("no TA in the cube: ET not derived from LE")
        else:
            ta = ensure_units(cube["TA"], "degC", name="TA", source="predictor cube")
            et = product["LE"] * SECONDS_PER_DAY / latent_heat_of_vaporization(ta)
            product["ET"] = _with_attrs(et.astype(np.float32).transpose("member", *out_dims), "ET")
    product = product.assign_coords({c: cube[c] for c in ("time", ydim, xdim)})
    product["member"].attrs = {"long_name": "ensemble member"}
    product.attrs["uflux_features"] = " ".join(names)
    sites = sorted({s for member in members.values() for m in member.values() for s in m.training_sites})
    product.attrs["uflux_training_sites"] = " ".join(sites)
    product.attrs["uflux_models"] = "; ".join(
        f"{label}: " + ", ".join(f"{flux}={m.kind}" for flux, m in member.items()) for label, member in members.items()
    )
    if baselines:  # the fitted parameters (E0, Q10, epsilon, alpha) of every hybrid member, as JSON
        product.attrs["uflux_baselines"] = json.dumps(baselines, sort_keys=True)
    if ydim == "y" and cube.rio.crs is not None:
        product = product.rio.write_crs(cube.rio.crs)
    log.info("upscale graph: %d fluxes x %d members over %s", len(fluxes), len(members), dict(cube.sizes))
    return product


#: Largest output of one upscaling task [bytes].  The models of a task share the chunk's gathered
#: features and interval codes (:func:`predict_models_block`); more models per task share more, at
#: the cost of holding all their predictions of the chunk at once.  Most of the sharing is among the
#: fluxes of one feature set (their codes); 128 MB holds 16 models of a 2 M-cell chunk.
MAX_TASK_OUTPUT_BYTES = 128 * 2**20


def models_per_task(chunk_cells: int, max_bytes: int = MAX_TASK_OUTPUT_BYTES) -> int:
    """How many models one upscaling task predicts on a chunk of ``chunk_cells`` cells (at least 1)."""
    return max(1, max_bytes // (4 * max(chunk_cells, 1)))


def model_batches(entries: list, chunk_cells: int, max_bytes: int = MAX_TASK_OUTPUT_BYTES) -> list[list]:
    """``entries`` ((flux, member, model) triples) cut into the model lists of one task each.

    Models with the same features stay together (they share the most), whole feature sets are
    packed into a task while its float32 output for a chunk of ``chunk_cells`` cells stays within
    ``max_bytes``; a feature set larger than that is split.  A hybrid model's task also returns its
    baseline (:func:`predict_models_block`), so it counts as two outputs.
    """
    per_task = models_per_task(chunk_cells, max_bytes)
    batches: list[list] = []
    current: list = []
    filled = 0

    def feature_set(entry) -> tuple:
        return tuple(entry[2].features)

    def outputs(entry) -> int:
        return 1 if entry[2].baseline is None else 2

    ordered = sorted(entries, key=feature_set)  # stable: flux, then member order
    for _, same_features in itertools.groupby(ordered, key=feature_set):
        group = list(same_features)
        if current and filled + sum(map(outputs, group)) > per_task:  # a set that does not fit starts a task
            batches.append(current)
            current, filled = [], 0
        for entry in group:  # ... and one larger than a task is split
            if current and filled + outputs(entry) > per_task:
                batches.append(current)
                current, filled = [], 0
            current.append(entry)
            filled += outputs(entry)
    return batches + ([current] if current else [])


def _chunk_cells(cube: xr.Dataset, dims: tuple[str, ...]) -> int:
    """Cells of the cube's largest chunk over ``dims``."""
    chunks = cube.chunks
    return int(np.prod([max(chunks[d]) if d in chunks else cube.sizes.get(d, 1) for d in dims]))


def _baseline_layers(flux, members, baseline_of, prediction, weight=None) -> dict[str, xr.DataArray]:
    """``<flux>_baseline`` (the hybrid members' process baseline, NaN for pure tree members) and
    ``<flux>_residual`` (prediction minus baseline, times ``weight`` where given) [flux units].

    ``baseline_of`` holds each hybrid's baseline per (flux, member) as its prediction task returned it."""
    per_member = []
    for label in members:
        da = baseline_of.get((flux, label))
        if da is None:  # a pure tree member
            da = xr.full_like(prediction.sel(member=label, drop=True), np.nan, dtype=np.float32)
        per_member.append(da.expand_dims(member=[label]))
    attrs = variable_attrs(flux)
    forms = sorted({m[flux].baseline.form for m in members.values() if m[flux].baseline is not None})
    baseline = xr.concat(per_member, dim="member")
    baseline.attrs = {
        "long_name": f"process baseline of the hybrid model of {attrs.get('long_name', flux)}",
        "units": attrs["units"],
        "cell_methods": "time: mean",
        "comment": f"{', '.join(forms)} baseline with parameters fitted on the training towers (product attribute "
        "uflux_baselines); NaN for members without a baseline",
    }
    residual = prediction - baseline
    if weight is not None:
        residual = residual * weight
    residual = residual.astype(np.float32).transpose(*prediction.dims)
    residual.attrs = {
        "long_name": f"machine-learned part of {attrs.get('long_name', flux)} (prediction minus process baseline)",
        "units": attrs["units"],
        "cell_methods": "time: mean",
    }
    return {f"{flux}_baseline": baseline, f"{flux}_residual": residual}


def _with_attrs(da: xr.DataArray, name: str) -> xr.DataArray:
    """``da`` with exactly the registry's attributes for ``name`` (no attributes inherited from inputs)."""
    da = da.copy()
    da.attrs = {**variable_attrs(name), "cell_methods": "time: mean"}
    if name in NON_NEGATIVE_FLUXES:
        da.attrs["comment"] = (
            f"{da.attrs.get('comment', '')} Predictions below 0 are set to 0 (stored as -0.0, so that "
            "numpy.signbit counts them).".strip()
        )
    return da
