"""Sampling-space completeness of a run: where the towers vouch for the product.

The run's glue around :mod:`uflux_xr.grid.applicability`: per flux, the DI
reference of the rows that trained the ensemble (weighted by the members'
permutation importance, the site as fold), the DI-to-error relation of the
leave-one-site-out predictions, the product layers ``<FLUX>_DI``,
``<FLUX>_AOA`` and ``<FLUX>_error``, and the totals and area shares inside
and outside the area of applicability.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import dask
import dask.array
import numba
import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.domain import spatial_dims
from uflux_xr.core.variables import is_categorical, variable_attrs
from uflux_xr.grid.applicability import (
    ApplicabilityError,
    ErrorModel,
    TrainingDissimilarity,
    dissimilarity_layers,
    fit_error_model,
    held_out_di,
    importance_weights,
    random_error_sd_by_level,
    random_error_variance,
    train_dissimilarity,
)
from uflux_xr.grid.ensemble import cell_area, step_days, total_of_sums
from uflux_xr.grid.regions import RegionMap, resolve_regions
from uflux_xr.io.storage import join
from uflux_xr.models.fluxmodel import training_rows
from uflux_xr.models.hybrid import residual_weight

log = logging.getLogger(__name__)

#: Suffix of the saved DI reference of a flux, next to the models.
REFERENCE_SUFFIX = "_applicability.npz"


def flux_reference(
    table: pd.DataFrame, models: list, *, weights: str = "importance", threshold: str = "cast", qc_threshold=None
) -> TrainingDissimilarity:
    """DI reference of one flux's ensemble: its training rows, features of all members, the site as fold.

    Predictors without variance in the training rows (a single land-cover
    class, say) say nothing about dissimilarity and are left out, with a log line.
    """
    flux = models[0].target
    features = sorted({f for m in models for f in m.features})
    rows = training_rows(table, flux, features, qc_threshold if f"{flux}_QC" in table else None)
    flat = [f for f in features if rows[f].nunique() < 2]
    if flat:
        log.info("%s DI: %s constant in the training rows, left out", flux, flat)
        features = [f for f in features if f not in flat]
    chosen = importance_weights(models, rows) if weights == "importance" else None
    return train_dissimilarity(
        rows,
        features,
        weights=None if chosen is None else {f: chosen[f] for f in features},
        folds="site",
        categorical=[f for f in features if is_categorical(f)],
        threshold=threshold,
        source=f"{flux} training rows",
    )


def residual_weights(layers: xr.Dataset, summary: Mapping[str, Mapping]) -> dict[str, xr.DataArray]:
    """Per flux with a DI layer in ``layers`` (from :func:`applicability_layers`, with its ``summary``), the
    share [-] of the hybrid members' residual to keep: :func:`uflux_xr.models.hybrid.residual_weight` of
    the DI, for ``uflux_xr.grid.upscale(..., residual_weights=...)``."""
    return {
        flux: residual_weight(layers[f"{flux}_DI"], info["threshold"])
        for flux, info in summary.items()
        if f"{flux}_DI" in layers
    }


#: How the error layer treats the towers' own random error: ``none`` (CAST: the error against the tower
#: values), ``nugget`` (one variance, from the residuals' variogram, taken out: the error against the truth) or
#: ``level`` (an SD growing linearly with the flux's magnitude, from nuggets per flux level, taken out per row).
ERROR_NOISE = ("none", "nugget", "level")


def flux_error_model(
    reference: TrainingDissimilarity, table: pd.DataFrame, predictions: pd.DataFrame, flux: str, noise: str = "none"
) -> ErrorModel | None:
    """DI-to-RMSE relation of the cross-validated predictions of ``flux`` (None without any); ``noise``
    is one of :data:`ERROR_NOISE`."""
    if noise not in ERROR_NOISE:
        raise ValueError(f"noise must be one of {ERROR_NOISE}, got {noise!r}")
    held = predictions[predictions["target"] == flux].dropna(subset=["obs", "pred"])
    if held.empty:
        return None
    rows = held.merge(table[["site", "time", *reference.features]], on=["site", "time"], how="left")
    fold_of_site = dict(zip(held["site"], held["fold"], strict=False))
    sites = np.asarray(reference.folds)  # flux_reference uses the site as fold
    reference_folds = np.array([fold_of_site.get(s, "__not_validated__") for s in sites.tolist()], dtype=object)
    di = held_out_di(
        reference,
        rows[reference.features].to_numpy(dtype=np.float64),
        rows["fold"].to_numpy(dtype=object),
        reference_folds,
    )
    observed, predicted = rows["obs"].to_numpy(dtype=np.float64), rows["pred"].to_numpy(dtype=np.float64)
    residuals = rows[["site", "time"]].assign(residual=observed - predicted)
    if noise == "nugget":
        return fit_error_model(di, observed, predicted, noise_variance=random_error_variance(residuals))
    if noise == "level":
        a, b = random_error_sd_by_level(residuals.assign(level=np.abs(predicted)))
        variance = (a + b * np.abs(predicted)) ** 2
        return fit_error_model(di, observed, predicted, noise_variance=variance, noise_sd=(a, b))
    return fit_error_model(di, observed, predicted)


def applicability_layers(
    table: pd.DataFrame,
    members: Mapping[str, Mapping],
    cube: xr.Dataset,
    *,
    model_dir: Path | str,
    predictions: pd.DataFrame | None = None,
    weights: str = "importance",
    threshold: str = "cast",
    qc_threshold: float | None = None,
    error_noise: str = "none",
) -> tuple[xr.Dataset, dict[str, dict]]:
    """Lazy ``<FLUX>_DI``, ``<FLUX>_AOA`` (and ``<FLUX>_error``) layers for every flux of ``members``.

    Returns
    -------
    (xarray.Dataset, dict)
        The layers, and per flux a summary (features, weights, threshold,
        training rows, error-model knots) for the run record; a flux whose
        DI cannot be computed (fewer than two sites, say) gets no layers and
        ``{"skipped": reason}``.
    """
    fluxes = list(next(iter(members.values())))
    mask = cube["land_mask"] == 1 if "land_mask" in cube else None
    references: dict[str, TrainingDissimilarity] = {}
    error_models: dict[str, ErrorModel | None] = {}
    units: dict[str, str] = {}
    summary: dict[str, dict] = {}
    for flux in fluxes:
        models = [member[flux] for member in members.values()]
        try:
            reference = flux_reference(table, models, weights=weights, threshold=threshold, qc_threshold=qc_threshold)
        except ApplicabilityError as err:  # e.g. one tower: no other site to measure its days against
            log.warning("%s: no DI, AOA or error layer: %s", flux, err)
            summary[flux] = {"skipped": str(err)}
            continue
        reference.save(join(model_dir, f"{flux}{REFERENCE_SUFFIX}"))
        error_model = (
            None if predictions is None else flux_error_model(reference, table, predictions, flux, error_noise)
        )
        references[flux], error_models[flux] = reference, error_model
        units[flux] = variable_attrs(flux)["units"]
        inside = float(np.mean(reference.train_di <= reference.threshold))
        summary[flux] = {
            "features": reference.features,
            "weights": reference.feature_weights,
            "threshold": reference.threshold,
            "convention": reference.convention,
            "training_rows": int(reference.train_di.size),
            "training_rows_inside": inside,
            "error_model": None
            if error_model is None
            else {
                "di": error_model.di.tolist(),
                "error": error_model.error.tolist(),
                "units": units[flux],
                "noise_variance": error_model.noise_variance,
                "noise_sd": None if error_model.noise_sd is None else list(error_model.noise_sd),
            },
        }
        log.info(
            "%s DI: threshold %.3f from %d training rows (%.0f %% inside)",
            flux,
            reference.threshold,
            reference.train_di.size,
            100 * inside,
        )
    if not references:
        return xr.Dataset(), summary
    return dissimilarity_layers(cube, references, mask=mask, error_models=error_models, units=units), summary


def aoa_tables(
    product: xr.Dataset, stats: xr.Dataset, regions: xr.DataArray | RegionMap | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the AOA layers say about the product, from one pass over them.

    Parameters
    ----------
    product : xarray.Dataset
        The product with ``<FLUX>_AOA`` layers.
    stats : xarray.Dataset
        Its ensemble statistics (:func:`uflux_xr.ensemble_statistics`), for ``<FLUX>_mean``.
    regions : xarray.DataArray or uflux_xr.grid.regions.RegionMap, optional
        A map (y, x) of region codes (:func:`uflux_xr.grid.regions.region_index`), or the map
        already resolved (:func:`uflux_xr.grid.regions.resolve_regions`): the shares are also
        given per region.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        Per flux, the ensemble-mean total inside and outside the AOA and the AOA's share of the
        land area [1] (cell area and time weighted), in the units of ``totals.csv``; and per
        time step, flux and region (``all`` for the whole domain), the land area with a DI
        [km2], the share of it inside the AOA [1] and the share of the flux [1]: of the
        area-weighted sum of the ensemble mean's magnitude, the part inside the AOA (the
        magnitude, so that NEE's sign changes cannot give a share outside 0-1).
    """
    lazy, names = aoa_sums(product, stats, regions)
    return aoa_frames(dask.compute(lazy)[0], names)


def aoa_sums(
    product: xr.Dataset, stats: xr.Dataset, regions: xr.DataArray | RegionMap | None = None
) -> tuple[dict, list[str]]:
    """The sums behind :func:`aoa_tables`, lazily (to compute in a pass that reads the product for more),
    and the region names; :func:`aoa_frames` makes the tables of the computed sums.

    Per flux, one pass over its AOA layer and ensemble mean (:func:`_aoa_sums_kernel`) gives, per time
    step and bucket (a region, then the cells in none), the sums of :data:`AOA_SUMS`.
    """
    if isinstance(regions, xr.DataArray):
        regions = resolve_regions(regions, "applicability.regions")
    names = regions.names if regions is not None else []
    fluxes = [n for n in product.data_vars if f"{n}_AOA" in product and f"{n}_mean" in stats]
    if not fluxes:
        return {"sums": {}, "units": {}, "days": None}, names
    # the grid's cell areas, buckets and step lengths, once for all fluxes
    ydim, xdim = spatial_dims(product[f"{fluxes[0]}_AOA"])
    area = cell_area(product[f"{fluxes[0]}_AOA"]).transpose(ydim, xdim)
    # each cell's bucket: its region, then one bucket for cells in none (all cells without regions)
    buckets = (
        xr.zeros_like(area, dtype=np.int32)
        if regions is None
        else xr.where(regions.index >= 0, regions.index, len(names)).astype(np.int32).transpose(ydim, xdim)
    )
    sums = {
        str(name): _aoa_sums(
            stats[f"{name}_mean"].transpose("time", ydim, xdim),
            product[f"{name}_AOA"].transpose("time", ydim, xdim),
            area,
            buckets,
            len(names) + 1,
        )
        for name in fluxes
    }
    units = {str(name): product[name].attrs["units"] for name in fluxes}
    return {"sums": sums, "units": units, "days": step_days(product["time"])}, names


#: What :func:`aoa_sums` adds up per time step and bucket, in this order [m2, or flux units x m2].
AOA_SUMS = (
    "land",  # area of the cells with a DI (an AOA flag)
    "land_inside",  # ... inside the AOA
    "flux",  # area x |ensemble mean| over the cells with a DI and a mean
    "flux_inside",  # ... inside the AOA
    "amount_inside",  # area x ensemble mean, inside the AOA
    "amount_outside",  # ... outside it
    "covered",  # area of the cells with a DI and a mean
    "covered_inside",  # ... inside the AOA
)


@numba.njit(nogil=True, cache=True)
def _aoa_sums_kernel(mean, aoa, area, bucket, n_buckets):  # pragma: no cover - compiled
    """(time, bucket, len(AOA_SUMS)) sums of one block; ``aoa`` is 1 / 0, NaN or -1 where no DI."""
    n_time, ny, nx = mean.shape
    out = np.zeros((n_time, n_buckets, 8))
    for t in range(n_time):
        for i in range(ny):
            for j in range(nx):
                flag = aoa[t, i, j]
                w = area[i, j]
                if not flag >= 0 or np.isnan(w):
                    continue
                b = bucket[i, j]
                inside = flag == 1
                out[t, b, 0] += w
                if inside:
                    out[t, b, 1] += w
                m = mean[t, i, j]
                if np.isnan(m):
                    continue
                out[t, b, 2] += w * abs(m)
                out[t, b, 6] += w
                if inside:
                    out[t, b, 3] += w * abs(m)
                    out[t, b, 4] += w * m
                    out[t, b, 7] += w
                else:
                    out[t, b, 5] += w * m
    return out


def _aoa_sums_block(mean, aoa, area, bucket, n_buckets: int) -> np.ndarray:
    return _aoa_sums_kernel(mean, aoa, np.asarray(area, dtype=np.float64), bucket, n_buckets)[:, None, None]


def _aoa_sums(
    mean: xr.DataArray, aoa: xr.DataArray, area: xr.DataArray, buckets: xr.DataArray, n_buckets: int
) -> xr.DataArray:
    """(time, region, sum) of :data:`AOA_SUMS`, lazily where ``mean`` is dask-backed."""
    if isinstance(mean.data, dask.array.Array):
        _, ychunks, xchunks = mean.data.chunks
        aoa_data = aoa.chunk(dict(zip(aoa.dims, mean.data.chunks, strict=True))).data
        spatial = {d: c for d, c in zip(mean.dims[1:], (ychunks, xchunks), strict=True)}
        parts = dask.array.blockwise(
            _aoa_sums_block,
            "tyxrk",
            mean.data,
            "tyx",
            aoa_data,
            "tyx",
            area.chunk(spatial).data,
            "yx",
            buckets.chunk(spatial).data,
            "yx",
            n_buckets=n_buckets,
            new_axes={"r": n_buckets, "k": len(AOA_SUMS)},
            adjust_chunks={"y": 1, "x": 1},
            dtype=np.float64,
        )
        summed = parts.sum(axis=(1, 2))
    else:
        summed = _aoa_sums_block(
            np.asarray(mean.values),
            np.asarray(aoa.values),
            np.asarray(area.values),
            np.asarray(buckets.values),
            n_buckets,
        )[:, 0, 0]
    return xr.DataArray(summed, dims=("time", "region", "sum"), coords={"time": mean["time"], "sum": list(AOA_SUMS)})


def aoa_frames(computed: dict, names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables of :func:`aoa_tables` from the computed :func:`aoa_sums`."""
    rows, frames = [], []
    days = computed["days"]
    for name, sums in computed["sums"].items():
        whole = (sums.sum("region") * days).sum("time")  # x the step's length [d], as the totals weigh them
        period = float(days.sum())
        amount = {k: whole.sel(sum=k, drop=True) for k in AOA_SUMS}
        inside = total_of_sums(amount["amount_inside"], amount["covered_inside"], computed["units"][name], period)
        outside = total_of_sums(
            amount["amount_outside"], amount["covered"] - amount["covered_inside"], computed["units"][name], period
        )
        share = total_of_sums(amount["covered_inside"], amount["covered"], "1", period)
        rows.append(
            {
                "variable": name,
                "member": "ensemble",
                "total_inside_aoa": float(inside),
                "total_outside_aoa": float(outside),
                "area_share_inside_aoa": float(share),
            }
        )
        per_bucket = {k: sums.sel(sum=k, drop=True) for k in ("land", "land_inside", "flux", "flux_inside")}
        frames.append(_share_frame(name, ["all"], {k: v.sum("region", keepdims=True) for k, v in per_bucket.items()}))
        if names:
            frames.append(
                _share_frame(name, names, {k: v.isel(region=slice(0, len(names))) for k, v in per_bucket.items()})
            )
    inside_table = pd.DataFrame(
        rows, columns=["variable", "member", "total_inside_aoa", "total_outside_aoa", "area_share_inside_aoa"]
    )
    columns = ["time", "flux", "region", "land_area_km2", "area_share_inside_aoa", "flux_share_inside_aoa"]
    return inside_table, pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def _share_frame(flux: str, labels: list[str], sums: dict[str, xr.DataArray]) -> pd.DataFrame:
    """Rows (time, region) of the area and flux shares inside the AOA, NaN where a region has no land."""
    with np.errstate(invalid="ignore", divide="ignore"):
        area = (sums["land_inside"] / sums["land"]).values
        flux_share = (sums["flux_inside"] / sums["flux"]).values
    time = np.repeat(sums["land"]["time"].values, len(labels))
    return pd.DataFrame(
        {
            "time": time,
            "flux": flux,
            "region": np.tile(labels, area.shape[0]),
            "land_area_km2": sums["land"].values.ravel() / 1e6,
            "area_share_inside_aoa": area.ravel(),
            "flux_share_inside_aoa": flux_share.ravel(),
        }
    )
