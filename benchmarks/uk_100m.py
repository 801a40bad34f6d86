"""A full-resolution UK tile through the real pipeline, and the whole UK year planned.

Runs ``configs/uk_daily_100m.yaml`` (EPSG:27700, 100 m, daily; lazy demo world
as the real inputs are not here) on a 500 x 500-cell x 31-day window with
``uflux_xr.pipeline.run`` — towers, training, upscaling, resumable Zarr write,
ensemble statistics and totals — once per model kind of the configuration,
one member (the NIRv proxy set) and one flux (GPP) at a time, on a dask
LocalCluster of 1 and of 2 single-threaded worker processes.

Prints, per model kind and worker count: wall time of the upscale + write
stage, predictions/s per core (land cell-days / stage time / workers), peak RSS
of the workers (``ru_maxrss`` read in each worker after the run; each run gets
fresh workers), and the scaling 1 -> 2 workers.  Then the dry-run plan of the
whole UK year (all 12 members x 5 fluxes), its per-member-and-flux core-hours
from the model-only throughput measured by the planner, and the same figure
from the pipeline throughput measured here.

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
    out = WORK / f"{config.ensemble.models[0].name}-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            result = run(config, out, progress=False, window=window)
            rss = max(client.run(_peak_rss).values())
    import xarray as xr

    product = xr.open_zarr(out / "product.zarr", consolidated=False)
    land_cell_days = int(product["GPP"].notnull().sum())
    seconds = result.timings["upscale_write"]
    return {
        "seconds": seconds,
        "predictions": land_cell_days,
        "per_core": land_cell_days / seconds / workers,
        "rss": rss,
        "total": result.timings["total"],
    }


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
    print(f"chunks {config.output.chunks}; one member (NIRv proxy set) x GPP per run\n")
    measured = {}
    print(f"{'model':<11} {'workers':>7} {'stage s':>8} {'predictions':>12} {'pred/s/core':>12} {'peak RSS':>9}")
    for spec in config.ensemble.models:
        if args.kinds and spec.name not in args.kinds:
            continue
        single = dataclasses.replace(
            config,
            ensemble=dataclasses.replace(config.ensemble, models=[spec], proxies={"NIRv": ("NIRv",)}),
            fluxes=["GPP"],
            validation=dataclasses.replace(config.validation, cv=None),
            output=dataclasses.replace(config.output, formats=("zarr",)),
        )
        rows = {}
        for workers in (1, 2):
            r = rows[workers] = one_run(single, window, workers)
            print(
                f"{spec.name:<11} {workers:>7} {r['seconds']:>8.1f} {r['predictions']:>12,} "
                f"{r['per_core']:>12,.0f} {r['rss'] / 1e6:>7.0f} MB"
            )
        speedup = rows[1]["seconds"] / rows[2]["seconds"]
        print(f"{spec.name:<11} 1 -> 2 workers: {speedup:.2f}x faster ({speedup / 2:.0%} parallel efficiency)")
        measured[spec.name] = rows[2]["per_core"]

    plan = plan_run(config, threads_per_worker=1)
    print("\n" + plan.format())
    print("\nWhole UK year, one member and one flux (dry-run core-hours):")
    print(f"{'model':<11} {'model-only':>11} {'pipeline':>9}")
    per_member_flux = plan.predictions_per_member_flux
    for kind, rate in measured.items():
        member = next(m for m, k in plan.member_kinds.items() if k == kind)
        print(f"{kind:<11} {plan.core_hours(member, 1):>11.1f} {per_member_flux / rate / 3600:>9.1f}")


if __name__ == "__main__":
    main()
