"""The upscaling stage writing its product to object storage against writing it to the local disk.

The demo world's cube (``ux.demo.make_world``), an ensemble of ``--members`` XGBoost members x 5 fluxes,
``ux.upscale`` lazily and ``ux.write_resumable`` (region by region, resumable) to a local folder and to an
S3 bucket of moto's S3 server on 127.0.0.1 (tests/s3_server.py, started in its own process so that it does
not share this process's interpreter lock), alternately, ``--rounds`` times each, on dask's threaded
scheduler.  Prints seconds, product MB and the S3 rate as a fraction of the local one (issue #39's
target: at least 0.7).

A real object store is farther away than a local server (latency per request, bandwidth); this measures
what the write path itself costs (the held-back root metadata, region records, zarr's requests).

Usage: python benchmarks/object_storage.py [--members 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    server = subprocess.Popen([sys.executable, "-m", "tests.s3_server"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    endpoint = server.stdout.readline().strip()
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    options = {"endpoint_url": endpoint}
    try:
        import s3fs

        import uflux_xr as ux
        from uflux_xr.io.storage import filesystem

        s3fs.S3FileSystem(endpoint_url=endpoint).mkdir("uflux-bench")
        cube, sites, _ = ux.demo.make_world(seed=0)
        features = ["TA", "SW_IN", "VPD", "SWC", "NIRv", "IGBP", "DOY_SIN", "DOY_COS"]
        table = ux.extract_at_sites(cube, sites, features)
        fluxes = ["GPP", "RECO", "NEE", "LE", "H"]
        ensemble = {
            f"m{i}": {
                f: ux.train(table, f, features, model="xgboost", n_estimators=100, random_state=i) for f in fluxes
            }
            for i in range(args.members)
        }
        product = ux.upscale(ensemble, cube.chunk({"time": 61}))
        print(
            f"# object_storage — {dt.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} cores; "
            f"demo world {dict(cube.sizes)}, {args.members} members x 5 fluxes, S3: moto at {endpoint}"
        )
        print(f"{'round':>5} {'target':<7} {'seconds':>8} {'MB':>7} {'MB/s':>7}")
        rates: dict[str, list[float]] = {"local": [], "s3": []}
        work = Path(tempfile.mkdtemp(prefix="uflux-objbench-"))
        for r in range(1, args.rounds + 1):
            for target in ("local", "s3"):
                if target == "local":
                    dest: str = str(work / f"product{r}.zarr")
                else:
                    dest = f"s3://uflux-bench/product{r}.zarr"
                started = time.perf_counter()
                ux.write_resumable(product, dest, progress=False, storage_options=options if target == "s3" else None)
                seconds = time.perf_counter() - started
                fs, root = filesystem(dest, options if target == "s3" else None)
                fs.invalidate_cache()
                mb = fs.du(root) / 1e6
                rates[target].append(mb / seconds)
                print(f"{r:>5} {target:<7} {seconds:>8.2f} {mb:>7.1f} {mb / seconds:>7.1f}")
        shutil.rmtree(work, ignore_errors=True)
        ratios = [s / loc for s, loc in zip(rates["s3"], rates["local"], strict=True)]
        print(
            f"S3 rate / local rate per round: {', '.join(f'{x:.2f}' for x in ratios)} "
            f"(best rates: {max(rates['s3']) / max(rates['local']):.2f}; target >= 0.7)"
        )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
