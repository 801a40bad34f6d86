"""Size and time of the run report against the run it reports (issue #14).

Runs configs/demo.yaml (about 90 s) into a temporary folder, then remakes the
report twice more in the same process (warm: matplotlib and the fonts loaded),
and the CH-Dav 2013-2022 NEE gap-fill report. Prints the report's size, its
time, and its share of the run's time.

    python benchmarks/report_cost.py
"""

from __future__ import annotations

import logging
import platform
import tempfile
import time
from pathlib import Path

import uflux_xr as ux

REPO = Path(__file__).resolve().parents[1]
CHDAV = REPO.parent / "shared" / "data" / "CH-Dav_2013-2022_halfhourly.parquet"


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        result = ux.run(ux.load_config(REPO / "configs" / "demo.yaml"), out, progress=False)
        report = result.products["report"]
        run_s = result.timings["total"]
        first_s = result.timings["report"]
        again = []
        for _ in range(2):
            t0 = time.perf_counter()
            ux.run_report(out)
            again.append(time.perf_counter() - t0)
        size = report.stat().st_size
        print(f"demo run without the report: {run_s:.1f} s")
        print(f"report in the run (first, cold): {first_s:.2f} s = {100 * first_s / run_s:.1f} % of the run")
        print(f"report remade (warm, best of 2): {min(again):.2f} s = {100 * min(again) / run_s:.1f} % of the run")
        print(f"report size: {size / 1e6:.2f} MB ({report.read_text().count('<img')} figures)")
    if CHDAV.exists():
        ds = ux.read_sites(CHDAV)
        filled = ux.gapfill(ds, "NEE", method="mds")
        t0 = time.perf_counter()
        table = ux.artificial_gap_benchmark(ds, "NEE", gap_days=(1, 7, 30), methods=("mds", "mdv"), n_gaps=3)
        bench_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            path = ux.gapfill_report(filled, "NEE", Path(tmp) / "chdav.html", benchmark=table)
            gf_s = time.perf_counter() - t0
            print(
                f"CH-Dav 2013-2022 NEE gap-fill report: {gf_s:.2f} s, {path.stat().st_size / 1e6:.2f} MB "
                f"(its benchmark, 3 lengths x 3 gaps x 2 methods: {bench_s:.1f} s)"
            )


if __name__ == "__main__":
    main()
