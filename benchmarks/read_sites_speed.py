"""Time to read tower files into the site dataset (issue #4 target: a year of
half-hourly data for one site in under 2 s).

Usage: python benchmarks/read_sites_speed.py   (needs ../shared/data)
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import uflux_xr as ux

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = {
    "DE-Tha 1998, REddyProc text (1 year HH)": "DE-Tha_1998_halfhourly.tsv",
    "CH-Dav 2013-2022, parquet (10 years HH)": "CH-Dav_2013-2022_halfhourly.parquet",
    "CH-Cha FLUXNET2015 FULLSET HH sample (99 rows, 200+ columns)": "FLX_CH-Cha_FLUXNET2015_FULLSET_HH_sample.csv",
}


def main() -> None:
    print(
        f"machine: {platform.node()} {platform.machine()}, python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d')}"
    )
    for label, name in FILES.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            ds = ux.read_sites(DATA / name)
            best = min(best, time.perf_counter() - t0)
        print(f"{label:<62} {ds.sizes['time']:>8} steps {best:7.3f} s (best of 3)")


if __name__ == "__main__":
    main()
