"""Make the README's figure of DI, AOA and the error layer from the demo job.

Usage: python docs/make_figures.py [RUN_DIR]

RUN_DIR is the output of ``uflux-xr run configs/demo.yaml --out RUN_DIR`` (default ``demo_out``); the
demo job is run into it first when it holds no product.  Writes ``docs/images/aoa_demo.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr

import uflux_xr as ux
from uflux_xr.report.figures import map_figure

HERE = Path(__file__).resolve().parent
FLUX = "GPP"


def main() -> None:
    run_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "demo_out"
    if not (run_dir / "product.zarr").exists():
        ux.run(ux.load_config(HERE.parent / "configs" / "demo.yaml"), run_dir, progress=False, report=False)
    product = xr.open_zarr(run_dir / "product.zarr", consolidated=False)
    truth = xr.open_zarr(run_dir / "inputs" / "truth.zarr", consolidated=False)
    sites = xr.open_dataset(run_dir / "inputs" / "sites.nc")
    units = product[FLUX].attrs["units"]
    mean = product[FLUX].mean("member")
    panels = [
        (product[f"{FLUX}_DI"].mean("time").compute(), f"{FLUX} dissimilarity index, 2020 mean", "-"),
        (100 * product[f"{FLUX}_AOA"].mean("time").compute(), "days inside the area of applicability", "%"),
        (product[f"{FLUX}_error"].mean("time").compute(), f"{FLUX} error layer (expected |error|)", units),
        (abs(mean - truth[FLUX]).mean("time").compute(), f"{FLUX} |ensemble mean - truth|", units),
    ]
    towers = (np.asarray(sites["lon"]), np.asarray(sites["lat"]))
    top = map_figure(panels[:2], towers=towers)
    bottom = map_figure(panels[2:], towers=towers)
    for fig, name in ((top, "aoa_demo_di.png"), (bottom, "aoa_demo_error.png")):
        fig.savefig(HERE / "images" / name, dpi=72)
        print(f"wrote {HERE / 'images' / name}")


if __name__ == "__main__":
    main()
