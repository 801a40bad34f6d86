"""Where the DI/AOA layers' time goes on a UK 100 m chunk, and the KD-tree search against the grouped one.

Trains what ``uk_100m.py``'s "kind's 20 + DI/AOA" run trains (XGBoost, 4 proxy members x 5 fluxes,
``configs/uk_daily_100m.yaml`` on its lazy demo world, the towers' whole year), fits the five fluxes' DI
references as the run does (timed per part: importance weights, mean training distance, training DIs),
then takes one product chunk (8 days x 500 x 500 cells of the same coastal tile) and times, in this
process on one core:

- the predictions of the 20 models (the inference the layers are added to), from the chunk's arrays;
- making the chunk's predictor arrays (the lazy world: what reading them costs; shared with the models);
- per part, the DI of the five fluxes the way it was done before issue #40 (per flux: stack the
  predictors of the land cells, find the distinct rows, standardise and weight, query the KD-tree) and
  the way it is done now (once: stack, distinct rows, groups; per flux: standardise and weight, grouped
  search, distance);
- the AOA flags, and writing the layers (Zarr, as the product stores them; to a temporary folder).

Then it checks the grouped DI against the KD-tree's: the largest relative difference and the count of
cells whose AOA differs.  Figures are best of ``--repeat`` (default 3).

Usage: python benchmarks/di_profile.py [--cells 500] [--days 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from uflux_xr.grid.applicability import (
    dissimilarity_of_rows,
    importance_weights,
    mean_pairwise_distance,
)
from uflux_xr.grid.completeness import flux_reference
from uflux_xr.grid.features import resolve_features
from uflux_xr.grid.nearest import group_rows, grouped_search_pays
from uflux_xr.grid.upscale import model_reference, predict_models_block
from uflux_xr.models.dedup import unique_rows
from uflux_xr.workflow.config import load_config
from uflux_xr.workflow.pipeline import prepare_inputs, train_ensemble, training_table

REPO = Path(__file__).resolve().parents[1]
WORK = Path(__file__).resolve().parent / "_work" / "di_profile"
TILE_ORIGIN = {"y": 4000, "x": 2000}  # uk_100m.py's coastal tile


def best_of(repeat: int, task):
    """Best wall time [s] of ``repeat`` calls of ``task`` and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = task()
        best = min(best, time.perf_counter() - started)
    return best, result


def kdtree_di(reference, tree: cKDTree, rows: np.ndarray, parts: dict) -> np.ndarray:
    """DI as it was computed before issue #40: distinct rows, standardised, one KD-tree query each."""
    t = time.perf_counter()
    first, inverse = unique_rows(np.ascontiguousarray(rows).view(np.uint64))
    t1 = time.perf_counter()
    queries = reference.transform(rows[first])
    t2 = time.perf_counter()
    distance, _ = tree.query(queries, k=1, workers=1)
    t3 = time.perf_counter()
    for key, seconds in (("distinct rows", t1 - t), ("standardise, weight", t2 - t1), ("search", t3 - t2)):
        parts[key] = parts.get(key, 0.0) + seconds
    return (distance / reference.mean_distance)[inverse]


def grouped_di(references, rows: np.ndarray, parts: dict) -> list[np.ndarray]:
    """DI as it is computed now (:func:`dissimilarity_of_rows`), timed by part."""
    t = time.perf_counter()
    first, inverse = unique_rows(np.ascontiguousarray(rows).view(np.uint64))
    distinct = rows[first]
    t1 = time.perf_counter()
    groups = group_rows(distinct)
    parts["distinct rows"] = parts.get("distinct rows", 0.0) + t1 - t
    parts["groups"] = parts.get("groups", 0.0) + time.perf_counter() - t1
    out = []
    for reference in references:
        t = time.perf_counter()
        out.append((reference.nearest_distance(distinct, groups) / reference.mean_distance)[inverse])
        parts["per flux: standardise, search, distance"] = (
            parts.get("per flux: standardise, search, distance", 0.0) + time.perf_counter() - t
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    dask.config.set(scheduler="synchronous")  # one core: the parts add up to a task's time

    config = load_config(REPO / "configs" / "uk_daily_100m.yaml", demo_inputs=True)
    spec = config.ensemble.models[0]
    config = dataclasses.replace(
        config,
        training=dataclasses.replace(config.training, period="all"),
        ensemble=dataclasses.replace(config.ensemble, models=[spec]),
    )
    window = {
        "time": slice(0, args.days),
        "y": slice(TILE_ORIGIN["y"], TILE_ORIGIN["y"] + args.cells),
        "x": slice(TILE_ORIGIN["x"], TILE_ORIGIN["x"] + args.cells),
    }
    print(f"# di_profile — {dt.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} cores")
    shutil.rmtree(WORK, ignore_errors=True)
    inputs = prepare_inputs(config, WORK, window)
    table = training_table(config, inputs)
    members = train_ensemble(table, config, WORK / "models")
    fluxes = list(config.fluxes)

    print("\nDI references (once per run, on all cores where the parts use them):")
    print(f"{'flux':<6} {'rows':>7} {'columns':>8} {'weights s':>10} {'mean dist. s':>13} {'training DI s':>14}")
    references = []
    for flux in fluxes:
        models = [member[flux] for member in members.values()]
        t = time.perf_counter()
        reference = flux_reference(table, models)
        whole = time.perf_counter() - t
        rows = table.dropna(subset=[*reference.features, flux])
        t = time.perf_counter()
        importance_weights(models, rows)
        weights_s = time.perf_counter() - t
        t = time.perf_counter()
        mean_pairwise_distance(reference.points)
        mean_s = time.perf_counter() - t
        references.append(reference)
        print(
            f"{flux:<6} {reference.points.shape[0]:>7,} {reference.points.shape[1]:>8} {weights_s:>10.2f} "
            f"{mean_s:>13.2f} {whole - weights_s - mean_s:>14.2f}"
        )

    # the chunk's predictor arrays, as a task receives them
    features = sorted({f for r in references for f in r.features})
    model_features = sorted({f for member in members.values() for m in member.values() for f in m.features})
    cube = inputs.cube
    mask = (cube["land_mask"] == 1).values
    shape = (args.days, *mask.shape)

    def make_arrays():
        """Every predictor at every cell of the chunk (the lazy world computes them here, in one pass)."""
        arrays = resolve_features(cube, sorted(set(features) | set(model_features)))
        grid = xr.broadcast(*arrays.values(), cube["land_mask"])[:-1]
        values = dask.compute(*[g.transpose("time", "y", "x").data for g in grid])
        return dict(zip(arrays, values, strict=True))

    inputs_s, blocks = best_of(1, make_arrays)
    valid = np.broadcast_to(mask, shape)
    n_cells = int(valid.sum())

    entries = [m for member in members.values() for m in member.values()]
    position = {f: i for i, f in enumerate(model_features)}
    kwargs = {
        "models": tuple(model_reference(m) for m in entries),
        "features": tuple(tuple(position[f] for f in m.features) for m in entries),
        "n_features": len(model_features),
        "checks": (),
        "source": "chunk",
        "non_negative": tuple(False for _ in entries),
        "dedup": "auto",
        "baselines": tuple(False for _ in entries),
    }
    args_models = [blocks[f] for f in model_features] + [valid]
    predict_models_block(*args_models, **kwargs)  # warm: models loaded, kernels compiled
    predict_s, _ = best_of(args.repeat, lambda: predict_models_block(*args_models, **kwargs))

    def stack():
        return np.stack([blocks[f][valid] for f in references[0].features], axis=1).astype(np.float64)

    stack_s, rows = best_of(args.repeat, stack)
    trees = [cKDTree(r.points) for r in references]
    grouped_di(references, rows[:20_000], {})  # compile
    old_parts: dict = {}
    new_parts: dict = {}
    pairs = list(zip(references, trees, strict=True))
    old_s, old = best_of(args.repeat, lambda: [kdtree_di(r, t, rows, old_parts) for r, t in pairs])
    new_s, new = best_of(args.repeat, lambda: grouped_di(references, rows, new_parts))
    check_s, shared = best_of(args.repeat, lambda: dissimilarity_of_rows(references, rows))
    groups = group_rows(rows[unique_rows(np.ascontiguousarray(rows).view(np.uint64))[0]])

    def flags():
        return [r.aoa(d) for d, r in zip(new, references, strict=True)]

    aoa_s, aoa = best_of(args.repeat, flags)

    def write():
        path = Path(tempfile.mkdtemp(dir=WORK))
        layers = {}
        for flux, di, flag in zip(fluxes, new, aoa, strict=True):
            grid = np.full(shape, np.nan, np.float32)
            grid[valid] = di
            layers[f"{flux}_DI"] = (("time", "y", "x"), grid)
            cells = np.full(shape, -1, np.int8)
            cells[valid] = flag
            layers[f"{flux}_AOA"] = (("time", "y", "x"), cells)
        xr.Dataset(layers).to_zarr(path / "layers.zarr", mode="w", zarr_format=3, consolidated=False)
        shutil.rmtree(path)

    write_s, _ = best_of(args.repeat, write)

    coarse = [f for f, c in zip(references[0].features, groups.coarse, strict=True) if c] if groups else []
    grouped = sum(
        grouped_search_pays(groups, len(r.points), int(groups.coarse[r.column_feature].sum())) for r in references
    )
    print(
        f"\nchunk: {args.days} days x {args.cells} x {args.cells} cells, {n_cells:,} land cell-days, "
        f"{len(references[0].features)} predictors, {references[0].points.shape[0]:,} training rows; "
        f"{groups.n_groups if groups else 0:,} groups of {len(groups.order) if groups else 0:,} distinct rows "
        f"(coarse: {coarse}); grouped search used for {grouped} of {len(references)} fluxes"
    )
    print(f"\n{'part (one core, best of ' + str(args.repeat) + ')':<48} {'before s':>9} {'now s':>8}")
    print(f"{'predictor arrays (shared with the models)':<48} {inputs_s:>9.2f} {inputs_s:>8.2f}")
    print(f"{'20 models predict (the inference)':<48} {predict_s:>9.2f} {predict_s:>8.2f}")
    print(f"{'stack the land cells':<48} {stack_s * len(references):>9.2f} {stack_s:>8.2f}   (per flux before)")
    keys = ["distinct rows", "standardise, weight", "search", "groups", "per flux: standardise, search, distance"]
    for key in keys:
        before = old_parts.get(key, float("nan")) / args.repeat
        now = new_parts.get(key, float("nan")) / args.repeat
        print(f"{'  ' + key:<48} {before:>9.2f} {now:>8.2f}")
    print(f"{'DI of 5 fluxes (sum of the parts above)':<48} {old_s:>9.2f} {new_s:>8.2f}   ({old_s / new_s:.1f}x)")
    print(f"{'AOA flags':<48} {aoa_s:>9.2f} {aoa_s:>8.2f}")
    print(f"{'write DI and AOA layers (Zarr)':<48} {write_s:>9.2f} {write_s:>8.2f}")
    layers_before = stack_s * len(references) + old_s + aoa_s + write_s
    layers_now = stack_s + new_s + aoa_s + write_s
    print(
        f"{'the layers, all parts':<48} {layers_before:>9.2f} {layers_now:>8.2f}   "
        f"({layers_before / predict_s:.0%} / {layers_now / predict_s:.0%} of the models' predict)"
    )
    worst = max(float(np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))) for a, b in zip(new, old, strict=True))
    flips = sum(
        int((a.astype(np.int8) != b.astype(np.int8)).sum())
        for a, b in zip(
            [np.where(np.isnan(d), -1, d <= r.threshold) for d, r in zip(new, references, strict=True)],
            [np.where(np.isnan(d), -1, d <= r.threshold) for d, r in zip(old, references, strict=True)],
            strict=True,
        )
    )
    same = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(new, shared, strict=True))
    print(
        f"\ngrouped vs KD-tree DI: largest relative difference {worst:.1e}; cells with another AOA: {flips} "
        f"of {n_cells * len(references):,}; dissimilarity_of_rows gives the same bits as the timed parts: {same} "
        f"({check_s:.2f} s)"
    )


if __name__ == "__main__":
    main()
