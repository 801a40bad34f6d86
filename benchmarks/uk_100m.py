"""A full-resolution UK tile through the real pipeline, plain and deduplicated, and the whole UK year planned.

Runs ``configs/uk_daily_100m.yaml`` (EPSG:27700, 100 m, daily; lazy demo world
with its climate on a 9 km grid given to every 100 m cell, as ERA5-Land
regridded by nearest neighbour, since the real inputs are not here) on a
500 x 500-cell x 31-day window with ``uflux_xr.pipeline.run`` — towers,
training, upscaling, resumable Zarr write, ensemble statistics and totals —
once per model kind of the configuration and inference mode (``dedup=False``
and the default ``dedup="auto"``), one member (the NIRv proxy set) and one
flux (GPP) at a time, on a dask LocalCluster of 2 single-threaded worker
processes (fresh workers per run).

Prints, per model kind and mode: wall time of the upscale + write stage,
predictions/s per core (land cell-days / stage time / workers), the unique
row fraction and the model calls' own rate (from the run's ``inference``
record), peak RSS of the workers, and the projected UK-year core-hours per
member and flux at that pipeline rate — as measured (this tile run makes the
inputs for its single model) and with the inputs' cost shared by the 60
models of the full ensemble (the input time is measured separately, on one
core).  Then the dry-run plan of the whole UK year and its estimate of the
same tile-run figure, side by side.

Usage: python benchmarks/uk_100m.py [--days 31] [--cells 500] [--kinds xgboost lightgbm deepforest]
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

from uflux_xr.config import load_config
from uflux_xr.pipeline import run
from uflux_xr.plan import plan_run

REPO = Path(__file__).resolve().parents[1]
WORK = Path(__file__).resolve().parent / "_work" / "uk_100m"
TILE_ORIGIN = {"y": 4000, "x": 2000}  # a coastal tile: land and sea


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def one_run(config, window, workers: int) -> dict:
    out = WORK / f"{config.ensemble.models[0].name}-{config.output.dedup}-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            result = run(config, out, progress=False, window=window, report=False)
            rss = max(client.run(_peak_rss).values())
    import xarray as xr

    product = xr.open_zarr(out / "product.zarr", consolidated=False)
    land_cell_days = int(product["GPP"].notnull().sum())
    seconds = result.timings["upscale_write"]
    inference = next(iter(result.inference.values()), {})
    rows = inference.get("rows", 0) + inference.get("plain_rows", 0)
    model_seconds = sum(inference.get(k, 0.0) for k in ("code_seconds", "predict_seconds", "plain_seconds"))
    return {
        "seconds": seconds,
        "predictions": land_cell_days,
        "per_core": land_cell_days / seconds / workers,
        "unique": inference.get("unique_rows", 0) / max(inference.get("rows", 0), 1),
        "model_rate": rows / model_seconds if model_seconds else float("nan"),
        "rss": rss,
        "cells": int(product["GPP"].isel(member=0).size),
    }


def input_seconds_per_cell(config, window) -> float:
    """Seconds per time step x cell to make the tile's predictors on one core (stands in for reading them)."""
    import time

    from uflux_xr.demo.lazy import LazyWorld

    world = LazyWorld(config.grid, seed=config.data.seed, n_sites=3, climate_km=config.data.climate_km)
    names = ("TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv")
    cube = world.cube(config.output.chunks, names, window)
    started = time.perf_counter()
    cube.compute(scheduler="sync")
    return (time.perf_counter() - started) / int(cube["TA"].size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--kinds", nargs="*", default=None, help="model kinds to run (default: the config's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    config = load_config(REPO / "configs" / "uk_daily_100m.yaml")
    window = {
        "time": slice(0, args.days),
        "y": slice(TILE_ORIGIN["y"], TILE_ORIGIN["y"] + args.cells),
        "x": slice(TILE_ORIGIN["x"], TILE_ORIGIN["x"] + args.cells),
    }
    print(f"# uk_100m — {dt.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} cores")
    print(f"tile: {args.cells} x {args.cells} cells x {args.days} days of {config.domain.describe()}")
    print(f"climate on a {config.data.climate_km:g} km grid; chunks {config.output.chunks}; one member (NIRv) x GPP\n")
    plan = plan_run(config, threads_per_worker=1)
    per_member_flux = plan.predictions_per_member_flux
    uk_cells = plan.cells
    input_s = input_seconds_per_cell(config, window)
    n_models = len(plan.members) * len(plan.fluxes)
    workers = 2
    head = (
        f"{'model':<11} {'dedup':>5} {'stage s':>8} {'pred/s/core':>12} {'unique':>7} {'model rows/s':>13} "
        f"{'peak RSS':>9} {'UK h/member-flux':>17} {'inputs shared':>14}"
    )
    print(head)
    measured = {}
    for spec in config.ensemble.models:
        if args.kinds and spec.name not in args.kinds:
            continue
        for dedup in (False, "auto"):
            single = dataclasses.replace(
                config,
                ensemble=dataclasses.replace(config.ensemble, models=[spec], proxies={"NIRv": ("NIRv",)}),
                fluxes=["GPP"],
                validation=dataclasses.replace(config.validation, cv=None),
                output=dataclasses.replace(config.output, formats=("zarr",), dedup=dedup),
            )
            r = one_run(single, window, workers)
            hours = per_member_flux / r["per_core"] / 3600
            # The tile run makes its inputs for one model; a full run makes them once for all 60.
            stage_core_s_per_cell = r["seconds"] * workers / r["cells"]
            shared = (stage_core_s_per_cell - input_s * (1 - 1 / n_models)) * uk_cells / 3600
            print(
                f"{spec.name:<11} {str(dedup):>5} {r['seconds']:>8.1f} {r['per_core']:>12,.0f} {r['unique']:>7.1%} "
                f"{r['model_rate']:>13,.0f} {r['rss'] / 1e6:>7.0f} MB {hours:>17.2f} {shared:>14.2f}"
            )
            measured[(spec.name, dedup)] = hours
    print(f"\ninputs: {input_s * 1e9:.0f} ns per cell-step on one core ({n_models} models share them in a full run)")
    print("\n" + plan.format())
    print("\nWhole UK year, one member x one flux, core-hours: dry-run estimate vs this tile's pipeline rate")
    print(f"{'model':<11} {'dry run':>8} {'tile':>8} {'dry/tile':>9}")
    for spec in config.ensemble.models:
        if (spec.name, "auto") not in measured:
            continue
        member = next(m for m, k in plan.member_kinds.items() if k == spec.name)
        estimate, tile = plan.stage_core_hours(member, 1), measured[(spec.name, "auto")]
        print(f"{spec.name:<11} {estimate:>8.2f} {tile:>8.2f} {estimate / tile:>9.2f}")


if __name__ == "__main__":
    main()
