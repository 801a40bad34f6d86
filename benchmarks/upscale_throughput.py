"""Throughput and memory of the upscaler.

Prints, side by side from one run:

* rows/s of the pipeline: Zarr cube on disk -> ``ux.upscale`` -> Zarr product on disk
  (threaded scheduler, one model thread per dask task);
* rows/s of the model's raw predict on the same land rows already in memory
  (all cores, no I/O) - the ceiling;
* rows/s of the to_dataframe-then-predict approach (whole cube to pandas, predict,
  back to xarray, write Zarr);
* peak RSS of the pipeline and of the to_dataframe approach as the cube grows
  1x, 2x, 4x in time, each measured in a fresh subprocess.

Throughputs are the best of ``--rounds`` interleaved rounds in one warm process
(the model loaded, thread pools started), so the three approaches see the same
machine state; a cold first pipeline run (imports excluded, model loading
included) is printed too.  The cube is chunked as configs/demo.yaml writes it
(61 days).  Peak RSS is the kernel's high-water mark of the child's address
space (``VmHWM``); ``ru_maxrss`` is not used because Linux carries it across
``execve`` from the parent.

Usage: python benchmarks/upscale_throughput.py [--resolution 0.5] [--trees 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

import uflux_xr as ux
from uflux_xr.grid.applicability import dissimilarity, importance_weights, train_dissimilarity
from uflux_xr.grid.features import resolve_features
from uflux_xr.models.dedup import reset_dedup_stats

FEATURES = ["TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv", "IGBP", "DOY_SIN", "DOY_COS"]
WORK = Path(__file__).resolve().parent / "_work"
TIME_CHUNK = 61  # as configs/demo.yaml


def make_cube(years: int, resolution: float, path: Path) -> None:
    """Demo cube over ``years`` years written to Zarr (in this process: not measured)."""
    cube, _, _ = ux.demo.make_world(
        seed=7, resolution=resolution, start="2020-01-01", end=f"{2019 + years}-12-31", n_sites=60
    )
    cube.chunk({"time": TIME_CHUNK}).to_zarr(path, mode="w", zarr_format=3, consolidated=False)


def land_rows(cube: xr.Dataset) -> np.ndarray:
    arrays = resolve_features(cube, FEATURES)
    land = (cube["land_mask"] == 1).values
    cols = []
    for a in arrays.values():
        full = a.broadcast_like(cube["TA"]).transpose("time", "lat", "lon").values
        cols.append(full[:, land])
    X = np.stack([c.ravel() for c in cols], axis=1).astype(np.float32)
    return X[np.isfinite(X).all(axis=1)]


def run_pipeline(cube_path: Path, model_path: str, out: Path, dedup="auto", reference=None) -> float:
    """The pipeline, as a run starts it: with dedup="auto" the per-process decision is forgotten first,
    so every call pays its probe chunks (on this 0.5° cube every row is unique and auto turns dedup off).
    With a DI ``reference`` (saved), GPP_DI and GPP_AOA are computed and written beside GPP, as runs do."""
    reset_dedup_stats()
    cube = xr.open_zarr(cube_path, consolidated=False)
    t0 = time.perf_counter()
    product = ux.upscale({"GPP": [model_path]}, cube, derived=False, dedup=dedup)
    if reference is not None:
        product = product.assign(dissimilarity(cube, reference, mask=cube["land_mask"] == 1, name="GPP").data_vars)
    ux.write_product(product, out, progress=False)
    return time.perf_counter() - t0


def run_dataframe(cube_path: Path, model_path: str, out: Path) -> float:
    """The approach the pipeline replaces: the whole cube through pandas."""
    model = ux.load_model(model_path)
    t0 = time.perf_counter()
    cube = xr.open_zarr(cube_path, consolidated=False)
    feats = resolve_features(cube, FEATURES)
    frame = xr.Dataset(feats).assign(land_mask=cube["land_mask"]).to_dataframe()
    frame = frame[frame["land_mask"] == 1]
    frame["GPP"] = model.predict(frame)
    product = frame[["GPP"]].to_xarray().reindex_like(cube["TA"])
    ux.write_product(product.expand_dims(member=["0"]), out, progress=False)
    return time.perf_counter() - t0


def peak_rss_mb() -> float:
    """High-water mark of this process's resident set [MB] (Linux ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not available (Linux only)")


def child(mode: str, cube_path: str, model_path: str, out: str) -> None:
    if mode == "dataframe":
        seconds = run_dataframe(Path(cube_path), model_path, Path(out))
    else:
        seconds = run_pipeline(Path(cube_path), model_path, Path(out), dedup="auto" if mode == "pipeline" else False)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def measure_in_subprocess(mode: str, cube_path: Path, model_path: str, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(cube_path), model_path, str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resolution", type=float, default=0.5)
    parser.add_argument("--trees", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "CUBE", "MODEL", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    WORK.mkdir(exist_ok=True)
    cubes = {}
    for years in (1, 2, 4):
        cubes[years] = WORK / f"cube_{years}y.zarr"
        make_cube(years, args.resolution, cubes[years])
    world = ux.demo.make_world(seed=7, resolution=args.resolution, start="2020-01-01", end="2020-12-31")
    table = ux.extract_at_sites(world.cube, world.sites, FEATURES, targets=["GPP"])
    model = ux.train(table, "GPP", FEATURES, model="xgboost", n_estimators=args.trees, learning_rate=0.1)
    model_path = str(model.save(WORK / "gpp.uxm"))
    t0 = time.perf_counter()
    reference = train_dissimilarity(
        table, FEATURES, weights=importance_weights([model], table), folds="site", categorical=["IGBP"]
    )
    reference.save(WORK / "gpp_applicability.npz")
    fit_seconds = time.perf_counter() - t0

    cube1 = xr.open_zarr(cubes[1], consolidated=False)
    X = land_rows(cube1)
    n = len(X)
    cold = measure_in_subprocess("pipeline", cubes[1], model_path, WORK / "product.zarr")["seconds"]
    cold_plain = measure_in_subprocess("pipeline-plain", cubes[1], model_path, WORK / "product.zarr")["seconds"]
    model.predict_array(X[:1000])  # warm-up
    run_pipeline(cubes[1], model_path, WORK / "product.zarr")
    best = {"raw": np.inf, "pipeline": np.inf, "plain": np.inf, "aoa": np.inf, "dataframe": np.inf}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        model.predict_array(X)
        best["raw"] = min(best["raw"], time.perf_counter() - t0)
        best["pipeline"] = min(best["pipeline"], run_pipeline(cubes[1], model_path, WORK / "product.zarr"))
        best["plain"] = min(best["plain"], run_pipeline(cubes[1], model_path, WORK / "product.zarr", dedup=False))
        best["aoa"] = min(best["aoa"], run_pipeline(cubes[1], model_path, WORK / "product.zarr", reference=reference))
        best["dataframe"] = min(best["dataframe"], run_dataframe(cubes[1], model_path, WORK / "product_df.zarr"))

    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(
        f"cube: {dict(cube1.sizes)}, time chunks {TIME_CHUNK}, {n:,} land rows with complete predictors, "
        f"xgboost {args.trees} trees; best of {args.rounds} rounds"
    )
    print(f"{'approach':<34}{'seconds':>9}{'rows/s':>13}{'vs raw':>8}")
    for name, key in (
        ("raw predict (in memory, 2 thr)", "raw"),
        ("pipeline zarr -> upscale -> zarr", "pipeline"),
        ("  the same, dedup=False", "plain"),
        ("  the same, + GPP_DI and GPP_AOA", "aoa"),
        ("to_dataframe -> predict -> zarr", "dataframe"),
    ):
        print(f"{name:<34}{best[key]:>9.2f}{n / best[key]:>13,.0f}{best['raw'] / best[key]:>8.2f}")
    print(
        f"DI and AOA add {100 * (best['aoa'] / best['pipeline'] - 1):.0f} % to the pipeline "
        f"({reference.train_di.size:,} training rows, {reference.points.shape[1]} columns); "
        f"fitting the DI reference (permutation importance included) took {fit_seconds:.2f} s"
    )
    for name, seconds in (("pipeline, cold process", cold), ("  the same, dedup=False", cold_plain)):
        print(f"{name:<34}{seconds:>9.2f}{n / seconds:>13,.0f}{best['raw'] / seconds:>8.2f}")

    print("\npeak RSS [MB] as the cube grows in time (fresh process each)")
    print(f"{'size':<6}{'pipeline':>10}{'ratio':>7}{'to_dataframe':>14}{'ratio':>7}")
    base = {}
    for years in (1, 2, 4):
        p = measure_in_subprocess("pipeline", cubes[years], model_path, WORK / "product.zarr")
        d = measure_in_subprocess("dataframe", cubes[years], model_path, WORK / "product_df.zarr")
        base.setdefault("p", p["peak_rss_mb"])
        base.setdefault("d", d["peak_rss_mb"])
        print(
            f"{years}x{'':<4}{p['peak_rss_mb']:>10.0f}{p['peak_rss_mb'] / base['p']:>7.2f}"
            f"{d['peak_rss_mb']:>14.0f}{d['peak_rss_mb'] / base['d']:>7.2f}"
        )
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
