"""What explanations cost and how far model kinds agree on them, on the demo world (issue #13).

Per model kind (XGBoost and LightGBM: exact TreeSHAP; the cascade forest: surrogate TreeSHAP), for
GPP and LE over July 2020 (31 days, every land cell):

* seconds to upscale the period (the mean over time, so nothing is written) and to explain it, one
  model per kind, and their ratio; explained rows per second per core;
* the surrogate's fidelity R2 and the mean |unexplained| term against the mean |driver| terms;
* the global importance shares of the leading features;
* the share of land cells where each kind's leading driver agrees with XGBoost's.

Usage: python benchmarks/explain_demo.py [--kinds xgboost lightgbm deepforest] [--fluxes GPP LE]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time

import dask
import numpy as np
import pandas as pd

import uflux_xr as ux

FEATURES = ["TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv", "IGBP", "DOY_SIN", "DOY_COS"]
PERIOD = ("2020-07-01", "2020-07-31")
PARAMS = {
    "xgboost": {"n_estimators": 150, "learning_rate": 0.1, "max_depth": 6},
    "lightgbm": {"n_estimators": 150, "learning_rate": 0.1, "num_leaves": 31},
    "deepforest": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["xgboost", "lightgbm", "deepforest"])
    parser.add_argument("--fluxes", nargs="+", default=["GPP", "LE"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cube, sites, _ = ux.demo.make_world(42)
    table = ux.extract_at_sites(cube, sites, FEATURES, targets=args.fluxes)
    month = cube.sel(time=slice(*PERIOD))
    land_rows = int(cube["land_mask"].sum()) * month.sizes["time"]
    cores = os.cpu_count() or 1
    rows, leaders = [], {}
    for kind in args.kinds:
        models = {f: ux.train(table, f, FEATURES, model=kind, **PARAMS[kind]) for f in args.fluxes}
        t = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            ux.upscale([*models.values()], month, derived=False, dedup=False).mean("time").compute()
        upscale_s = time.perf_counter() - t
        t = time.perf_counter()
        maps = ux.explain([*models.values()], cube, period=PERIOD, background=table).compute()
        explain_s = time.perf_counter() - t
        importance = ux.importance_table(maps)
        for flux in args.fluxes:
            imp = importance[importance["variable"] == flux].set_index("term")
            drivers = imp.dropna(subset=["rank"]).sort_values("rank")
            leading = maps[f"{flux}_leading_driver"]
            names = np.array(leading.attrs["flag_meanings"].split())
            leaders[(kind, flux)] = np.where(leading.values >= 0, names[np.maximum(leading.values, 0)], "")
            unexplained = imp["mean_abs"].get("unexplained", np.nan)
            method = maps.attrs["uflux_explain_methods"]
            r2 = float(method.split("R2 ")[1].split(")")[0]) if "R2 " in method else np.nan
            rows.append(
                {
                    "kind": kind,
                    "flux": flux,
                    "upscale_s": upscale_s,
                    "explain_s": explain_s,
                    "ratio": explain_s / upscale_s,
                    "rows_per_s_core": len(args.fluxes) * land_rows / explain_s / cores,
                    "surrogate_r2": r2,
                    "unexplained_vs_drivers_pct": 100 * unexplained / drivers["mean_abs"].sum(),
                    "top3": ", ".join(f"{t} {s:.0f} %" for t, s in drivers["share"].head(3).items()),
                }
            )
    result = pd.DataFrame(rows)
    land = cube["land_mask"].values == 1
    for i, row in result.iterrows():
        ref = leaders.get(("xgboost", row["flux"]))
        mine = leaders[(row["kind"], row["flux"])]
        result.loc[i, "leader_agrees_xgb_pct"] = np.nan if ref is None else 100 * float((mine == ref)[land].mean())
    print(f"{platform.node()} {platform.processor() or platform.machine()}, {cores} cores, {time.strftime('%Y-%m-%d')}")
    print(f"{int(land.sum())} land cells x {month.sizes['time']} days, fluxes {args.fluxes}, one model per kind")
    print(result.to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
