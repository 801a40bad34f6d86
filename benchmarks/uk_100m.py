"""A full-resolution UK tile through the real pipeline, plain and deduplicated, and the whole UK year planned.

Runs ``configs/uk_daily_100m.yaml`` (EPSG:27700, 100 m, daily; lazy demo world
with its climate on a 9 km grid given to every 100 m cell, as ERA5-Land
regridded by nearest neighbour, since the real inputs are not here) on a
500 x 500-cell x 31-day window with ``uflux_xr.workflow.pipeline.run`` — towers
(their whole year of records, ``training.period: all``, as the full run
trains), training, upscaling, resumable Zarr write, ensemble statistics and totals —
per model kind of the configuration: one member (the NIRv proxy set) and one
flux (GPP), with ``dedup=False`` and with the default ``dedup="auto"``; then
the kind's whole share of the ensemble (4 proxy sets x 5 fluxes = 20 models
in one run, as a full run makes them: one pass over the inputs, one coding
per chunk and model), at the configuration's bin count (``max_bin``) and at
the kind's default.  The dissimilarity index and area of applicability
(issue #13, per flux and shared by a flux's members) are off in these runs,
as the inference pipeline is what is measured; one more run of the first
kind's 20 models has them on, for their share (issue #40), with its run on twice
the days; their share is printed with and without the DI references' fit
(importance weights, mean training distance, training DIs of the 5 fluxes),
which a run pays once, like the training.  Each run is on a dask
LocalCluster of 2 single-threaded worker processes (fresh workers per run).

Prints, per run: wall time of the upscale + write stage (after the predictor-coverage
check, which makes one time chunk of inputs once per run: a quarter of this tile's
inputs, 1/46 of the UK year's, under 0.002 core-hours per member and flux there), predictions of one
model per second per core (land cell-days x models / stage time / workers),
the unique row fraction and the model calls' own rate (from the run's
``inference`` record), peak RSS of the workers, and the projected UK-year
core-hours per member and flux at that pipeline rate — as measured, and with
the inputs' cost shared by the 60 models of the full ensemble (the inputs are
made alone on a cluster like the runs', every variable the ensemble reads).  Then the dry-run plan of the whole UK
year and its estimate per member and flux of a full run, beside the 20-model
tile figure with inputs shared, and beside the cost of the days a run of
twice the tile's days adds (the steady state of a long run: what a run pays
once falls out).

Usage: python benchmarks/uk_100m.py [--days 31] [--cells 500] [--kinds xgboost lightgbm deepforest] [--di-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import platform
import resource
import shutil
from pathlib import Path

from distributed import Client, LocalCluster

from uflux_xr.models.registry import reduced_bins
from uflux_xr.workflow.config import load_config
from uflux_xr.workflow.pipeline import run
from uflux_xr.workflow.plan import plan_run

REPO = Path(__file__).resolve().parents[1]
WORK = Path(__file__).resolve().parent / "_work" / "uk_100m"
TILE_ORIGIN = {"y": 4000, "x": 2000}  # a coastal tile: land and sea


def _peak_rss() -> int:
    """The worker process's own peak resident memory [bytes].

    ``VmHWM`` of /proc/self/status starts afresh with the process's image; ``ru_maxrss``,
    used before, carries the parent's peak into a worker started from it (every run then
    showed the benchmark process's own peak).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def one_run(config, window, workers: int, tag: str = "") -> dict:
    out = WORK / f"{config.ensemble.models[0].name}-{config.output.dedup}-{workers}{tag}"
    shutil.rmtree(out, ignore_errors=True)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            result = run(config, out, progress=False, window=window, report=False)
            rss = max(client.run(_peak_rss).values())
    import xarray as xr

    product = xr.open_zarr(out / "product.zarr", consolidated=False)
    land_cell_days = int(product["GPP"].isel(member=0).notnull().sum())
    n_models = product.sizes["member"] * len(config.fluxes)
    # The coverage check before the write makes one time chunk of inputs: a per-run cost (1 of the UK
    # year's 46 time chunks, 1/4 of this tile's), left out like the training.
    seconds = result.timings["upscale_write"] - result.timings["coverage_check"]
    # the DI references' fit (importance weights, mean training distance, training DIs): once per run
    records = list(result.inference.values())

    def total(key: str) -> float:
        return sum(r.get(key, 0) for r in records)

    rows = total("rows") + total("plain_rows")
    model_seconds = total("code_seconds") + total("predict_seconds") + total("plain_seconds")
    return {
        "seconds": seconds,
        "models": n_models,
        "predictions": land_cell_days,
        # Predictions of one model per second per core, the ensemble's stage time shared by its models.
        "per_core": land_cell_days * n_models / seconds / workers,
        "unique": total("unique_rows") / max(total("rows"), 1),
        "model_rate": rows / model_seconds if model_seconds else float("nan"),
        "rss": rss,
        "cells": int(product["GPP"].isel(member=0).size),
        "di_fit": result.timings.get("applicability_fit", 0.0),
    }


def input_core_seconds(config, window, workers: int) -> float:
    """Core-seconds to make the tile's predictors (every variable the ensemble reads, as the run makes
    them) on a fresh cluster like the runs', best of 2 after a warm-up; stands in for reading them."""
    import time

    import dask

    from uflux_xr.grid.features import resolve_features
    from uflux_xr.workflow.pipeline import prepare_inputs

    names = sorted({p for m in config.ensemble.member_specs for p in m.predictors})
    best = float("inf")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster):
            cube = prepare_inputs(config, WORK / "inputs-only", window).cube
            arrays = [*resolve_features(cube, names).values(), cube["land_mask"]]
            dask.compute(*[a.isel(time=0).sum() if "time" in a.dims else a.sum() for a in arrays])  # warm-up
            for _ in range(2):
                started = time.perf_counter()
                dask.compute(*[a.sum() for a in arrays])
                best = min(best, time.perf_counter() - started)
    return best * workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--kinds", nargs="*", default=None, help="model kinds to run (default: the config's)")
    parser.add_argument(
        "--di-only",
        action="store_true",
        help="only the first kind's 20-model runs without and with DI/AOA (and their longer runs)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    config = load_config(REPO / "configs" / "uk_daily_100m.yaml", demo_inputs=True)
    # The tile is predicted by the models the whole UK run makes, trained on the year's tower records:
    # models of the tile's 31 days alone split its value range more finely (more distinct rows).
    config = dataclasses.replace(config, training=dataclasses.replace(config.training, period="all"))
    window = {
        "time": slice(0, args.days),
        "y": slice(TILE_ORIGIN["y"], TILE_ORIGIN["y"] + args.cells),
        "x": slice(TILE_ORIGIN["x"], TILE_ORIGIN["x"] + args.cells),
    }
    print(f"# uk_100m — {dt.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} cores")
    print(f"tile: {args.cells} x {args.cells} cells x {args.days} days of {config.domain.describe()}")
    print(f"climate on a {config.data.climate_km:g} km grid; chunks {config.output.chunks}; one member (NIRv) x GPP\n")
    plan = plan_run(config, threads_per_worker=1, measure=True)
    per_member_flux = plan.predictions_per_member_flux
    uk_cells = plan.cells
    n_models = len(plan.members) * len(plan.fluxes)
    workers = 2
    input_core_s = input_core_seconds(config, window, workers)
    n_cells = args.days * args.cells**2
    head = (
        f"{'model':<11} {'run':<22} {'dedup':>5} {'stage s':>8} {'pred/s/core':>12} {'unique':>7} "
        f"{'model rows/s':>13} {'peak RSS':>9} {'UK h/member-flux':>17} {'inputs shared':>14}"
    )
    print(head)
    measured = {}
    stages: dict[str, dict] = {}
    for spec in config.ensemble.models:
        if args.kinds and spec.name not in args.kinds:
            continue
        bins = reduced_bins(spec.name, spec.params)
        default_bins = dataclasses.replace(spec, params={**spec.params, bins[0]: bins[2]}) if bins else None
        one, every = {"NIRv": ("NIRv",)}, config.ensemble.proxies
        if args.di_only and spec is not config.ensemble.models[0]:
            continue
        runs = [
            ("one model", spec, one, ["GPP"], False, False),
            ("one model", spec, one, ["GPP"], "auto", False),
            ("kind's 20 models", spec, every, config.fluxes, "auto", False),
        ]
        if default_bins is not None:
            runs.append(("kind's 20, default bins", default_bins, every, config.fluxes, "auto", False))
        if spec is config.ensemble.models[0]:
            runs.append(("kind's 20 + DI/AOA", spec, every, config.fluxes, "auto", True))
        if args.di_only:
            runs = [r for r in runs if r[0].startswith("kind's 20") and "default" not in r[0]]
        for label, model_spec, proxies, fluxes, dedup, aoa in runs:
            tile = dataclasses.replace(
                config,
                ensemble=dataclasses.replace(config.ensemble, models=[model_spec], proxies=proxies),
                fluxes=list(fluxes),
                validation=dataclasses.replace(config.validation, cv=None),
                output=dataclasses.replace(config.output, formats=("zarr",), dedup=dedup),
                applicability=dataclasses.replace(config.applicability, enabled=aoa),
            )
            tag = "" if label == "one model" else "-" + label.split()[-1].replace("/", "-")
            r = one_run(tile, window, workers, tag=tag)
            hours = per_member_flux / r["per_core"] / 3600
            # The tile run makes its inputs for its own models; a full run makes them once for all 60.
            stage_core_s = r["seconds"] * workers - input_core_s * (1 - r["models"] / n_models)
            shared = stage_core_s / r["cells"] / r["models"] * uk_cells / 3600
            bins_note = f", {model_spec.params[bins[0]]} bins" if bins else ""
            print(
                f"{spec.name:<11} {label + bins_note:<22} {str(dedup):>5} {r['seconds']:>8.1f} "
                f"{r['per_core']:>12,.0f} {r['unique']:>7.1%} {r['model_rate']:>13,.0f} {r['rss'] / 1e6:>7.0f} MB "
                f"{hours:>17.2f} {shared:>14.2f}"
            )
            measured[(spec.name, label, dedup)] = shared
            stages[label] = r
            if label.startswith("kind's 20") and "default" not in label:
                # The same run on twice the days: the extra chunks' cost is the steady state of a long
                # run, without what a run pays once per worker (loading the models and their coders,
                # the first calls of compiled kernels, opening the stores), which a UK year spreads
                # over 16,100 chunks and a 4-chunk tile does not.
                longer = {**window, "time": slice(0, 2 * args.days)}
                r2 = one_run(tile, longer, workers, tag=tag + "-longer")
                extra_cells = r2["cells"] - r["cells"]
                extra_core_s = (r2["seconds"] - r["seconds"]) * workers - input_core_s / n_cells * extra_cells * (
                    1 - r["models"] / n_models
                )
                steady = extra_core_s / extra_cells / r["models"] * uk_cells / 3600
                # stage = once + per cell-step x cell-steps: "once" in wall seconds, each worker paying it
                once = r["seconds"] - (r2["seconds"] - r["seconds"]) * r["cells"] / extra_cells
                longer_label = f"  the same, {2 * args.days} days"
                print(
                    f"{'':<11} {longer_label:<22} {str(dedup):>5} {r2['seconds']:>8.1f} "
                    f"{'':>12} {r2['unique']:>7.1%} {r2['model_rate']:>13,.0f} {r2['rss'] / 1e6:>7.0f} MB "
                    f"{'':>17} {steady:>14.2f}  (the added days alone; {once:.1f} s once per run)"
                )
                measured[(spec.name, "steady" + (" DI" if aoa else ""), dedup)] = steady
                stages[label + " longer"] = r2
    if "kind's 20 + DI/AOA" in stages:
        plain, di = stages["kind's 20 models"], stages["kind's 20 + DI/AOA"]
        fit = di["di_fit"]
        added = di["seconds"] / plain["seconds"] - 1
        print(
            f"\nDI/AOA layers ({config.ensemble.models[0].name}, 20 models, {args.days} days): the stage "
            f"{plain['seconds']:.1f} s -> {di['seconds']:.1f} s, +{added:.0%}; their fit (DI references of the 5 "
            f"fluxes, once per run, {fit:.1f} s) left out: +{(di['seconds'] - fit) / plain['seconds'] - 1:.0%}"
        )
        if "kind's 20 + DI/AOA longer" in stages:
            plain2, di2 = stages["kind's 20 models longer"], stages["kind's 20 + DI/AOA longer"]
            extra_plain = plain2["seconds"] - plain["seconds"]
            extra_di = di2["seconds"] - di["seconds"]
            kind = config.ensemble.models[0].name
            before, after = measured[(kind, "steady", "auto")], measured[(kind, "steady DI", "auto")]
            # a flux's layers serve all its members: the tile's 4 members here, the full run's 12 there
            tile_members, full_members = len(config.ensemble.proxies), len(plan.members)
            full = before + (after - before) * tile_members / full_members
            print(
                f"  on the {args.days} days a {2 * args.days}-day run adds: {extra_plain:.1f} s without, "
                f"{extra_di:.1f} s with the layers, +{extra_di / extra_plain - 1:.0%}; UK year per member and flux "
                f"(the added days' rate, inputs shared): {before:.2f} -> {after:.2f} core-hours with the layers "
                f"shared by {tile_members} members as here, {full:.2f} (+{full / before - 1:.0%}) shared by the "
                f"full run's {full_members}"
            )
    print(
        f"\ninputs: {input_core_s:.1f} core-s for the tile's {n_cells:,} cell-steps on the runs' cluster "
        f"({input_core_s / n_cells * 1e9:.0f} ns per cell-step; {n_models} models share them in a full run)"
    )
    print("\n" + plan.format())
    print(
        "\nWhole UK year, core-hours per member and flux of the full run: dry-run estimate vs "
        "this tile's pipeline rate (the kind's 20 models, inputs shared)"
    )
    print(f"{'model':<11} {'dry run':>8} {'tile':>8} {'dry/tile':>9} {'tile, added days':>17} {'dry/that':>9}")
    for spec in config.ensemble.models:
        if (spec.name, "kind's 20 models", "auto") not in measured or args.di_only:
            continue
        member = next(m for m, k in plan.member_kinds.items() if k == spec.name)
        estimate, tile = plan.full_run_core_hours(member), measured[(spec.name, "kind's 20 models", "auto")]
        steady = measured[(spec.name, "steady", "auto")]
        print(
            f"{spec.name:<11} {estimate:>8.2f} {tile:>8.2f} {estimate / tile:>9.2f} {steady:>17.2f} "
            f"{estimate / steady:>9.2f}"
        )


if __name__ == "__main__":
    main()
