"""What the plausibility checks and the new ERA5 daily path cost (issue #11).

Prints, from one run on this machine:

* the upscaler's numpy core ``predict_block`` on one demo chunk (61 days x 0.5°,
  ~256,000 land rows, 10 features, XGBoost 150 trees depth 6), with and without
  the per-chunk range checks of every feature; best of ``--rounds`` interleaved
  rounds, single-threaded as a dask task runs it;
* ``build_cube`` of configs/recipe_real_inputs.yaml, computed;
* ``read_era5(freq="D")`` + load on the real ERA5 year in ../shared/data
  (8,784 hours, one cell): this tree against the tree before issue #11
  (``--base``, checked out with ``git worktree`` under benchmarks/_work and run
  in a subprocess), best of ``--rounds`` each.

Usage: python benchmarks/door_checks.py [--rounds 5] [--base 35b7c13]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import uflux_xr as ux
from uflux_xr.grid.features import resolve_features
from uflux_xr.grid.upscale import predict_block

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work"
ERA5_YEAR = REPO.parent / "shared" / "data" / "real_inputs" / "era5_pvlib" / "era5_testfile.nc"
FEATURES = ["TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv", "IGBP", "DOY_SIN", "DOY_COS"]

ERA5_TIMER = """
import json, sys, time
from uflux_xr.io.era5 import read_era5
best = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    cube = read_era5(sys.argv[1], freq="D").load()
    best.append(time.perf_counter() - t0)
print(json.dumps({"seconds": min(best), "days": int(cube.sizes["time"])}))
"""


def chunk_and_model():
    cube, sites, _ = ux.demo.make_world(seed=7, resolution=0.5, n_sites=60)
    table = ux.extract_at_sites(cube, sites, FEATURES, targets=["GPP", "GPP_QC"])
    model = ux.train(table, "GPP", FEATURES, model="xgboost", n_estimators=150, max_depth=6)
    block = cube.isel(time=slice(0, 61))
    arrays = resolve_features(block, FEATURES)
    dims = ("time", "lat", "lon")
    blocks = [
        np.asarray(a.transpose(*[d for d in dims if d in a.dims]).values).reshape(
            [block.sizes[d] if d in a.dims else 1 for d in dims]
        )
        for a in arrays.values()
    ]
    mask = (block["land_mask"].values == 1)[None]
    checks = tuple((f, arrays[f].attrs.get("units"), "daily") for f in FEATURES)
    return blocks, mask, model, checks


def time_predict(rounds: int) -> dict:
    blocks, mask, model, checks = chunk_and_model()
    rows = int(mask.sum()) * blocks[0].shape[0]
    timings = {"without checks": [], "with checks": []}
    for _ in range(rounds):
        for label, kw in (("without checks", {}), ("with checks", {"checks": checks})):
            t0 = time.perf_counter()
            predict_block(*blocks, mask, model=model, n_features=len(FEATURES), **kw)
            timings[label].append(time.perf_counter() - t0)
    return {"rows": rows, **{k: min(v) for k, v in timings.items()}}


def time_era5(base: str, rounds: int) -> dict:
    tree = WORK / f"base-{base}"
    if not tree.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), base], check=True)
    out = {}
    for label, root in (("before", tree), ("now", REPO)):
        done = subprocess.run(
            [sys.executable, "-c", ERA5_TIMER, str(ERA5_YEAR), str(rounds)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        out[label] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def time_recipe_cube(rounds: int) -> dict:
    """build_cube of configs/recipe_real_inputs.yaml (real ERA5 year -> 3 x 3 x 366 daily cube), computed."""
    from uflux_xr.workflow.config import load_config

    config = load_config(REPO / "configs" / "recipe_real_inputs.yaml")
    inputs = config.data.inputs
    best = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ux.build_cube(config.domain, climate=inputs.climate, land_mask=inputs.land_mask, regrid=inputs.regrid).load()
        best.append(time.perf_counter() - t0)
    return {"seconds": min(best)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--base", default="35b7c13")
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, Python {platform.python_version()}")
    p = time_predict(args.rounds)
    ratio = p["with checks"] / p["without checks"]
    print(f"predict_block, {p['rows']:,} rows, best of {args.rounds}:")
    print(f"  without checks {p['without checks']:.3f} s, with checks {p['with checks']:.3f} s, ratio {ratio:.3f}")
    if ERA5_YEAR.exists():
        e = time_era5(args.base, max(1, args.rounds // 2))
        print(f"read_era5(freq='D') + load, real ERA5 year ({e['now']['days']} complete days now):")
        print(
            f"  before ({args.base}) {e['before']['seconds']:.2f} s ({e['before']['days']} days), "
            f"now {e['now']['seconds']:.2f} s, speed-up {e['before']['seconds'] / e['now']['seconds']:.1f}x"
        )
        r = time_recipe_cube(max(1, args.rounds // 2))
        print(f"build_cube of the recipe (3 x 3 cells x 366 days, computed): {r['seconds']:.2f} s")
    else:
        print(f"{ERA5_YEAR} absent: the ERA5 comparison is skipped")


if __name__ == "__main__":
    main()
