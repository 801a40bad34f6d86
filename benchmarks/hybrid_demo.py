"""Hybrid models against pure tree models on the demo world, where the truth is known (issue #13).

For each world (``standard``: the truth has the baselines' own forms;
``alternative``: a saturating light curve, a bell-shaped temperature response
and Q10 respiration, which the baselines do not have), each tree kind and
each flux:

* leave-one-site-out r² and RMSE against the towers, pure trees vs hybrid
  (``baseline="auto"``, ``residual="auto"``);
* extrapolation: trained on the coolest 70 % of the towers by mean TA, RMSE
  against the true flux at the warmest 30 %, pure vs hybrid, and the change;
  also the hybrid with its residual faded outside the area of applicability
  (what a run does with ``applicability.hybrid_residual: fade``: the residual
  times min(1, threshold / DI), DI of the test rows against the training rows
  as ``uflux-xr run`` computes it);
* the respiration temperature sensitivity fitted on all towers: E0 of the
  Lloyd–Taylor baseline (truth 309 K in the standard world) and Q10 of the q10
  baseline (truth 2.0 in the alternative world).

Usage: python benchmarks/hybrid_demo.py [--kinds xgboost lightgbm] [--worlds standard alternative]
                                        [--fluxes GPP RECO NEE LE H]
"""

from __future__ import annotations

import argparse
import logging
import platform
import time

import numpy as np
import pandas as pd

import uflux_xr as ux
from uflux_xr.grid.completeness import flux_reference
from uflux_xr.grid.validate import cross_validate
from uflux_xr.models.hybrid import residual_weight
from uflux_xr.sources.demo.eager import ALTERNATIVE_Q10

FEATURES = ["TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv", "NIRv_MAX", "IGBP", "DOY_SIN", "DOY_COS"]
FLUXES = ["GPP", "RECO", "NEE", "LE", "H"]
PARAMS = {"n_estimators": 150, "learning_rate": 0.1}


def tables(world: str, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training table (tower observations) and the same rows with the true fluxes as TRUE_<flux>."""
    cube, sites, truth = ux.demo.make_world(seed, process_forms=world)
    true_names = [f"TRUE_{f}" for f in FLUXES]
    cube = cube.assign({f"TRUE_{f}": truth[f] for f in FLUXES})
    table = ux.extract_at_sites(cube, sites, FEATURES + true_names)
    return table, table


def rmse(a, b) -> float:
    return float(np.sqrt(np.nanmean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["xgboost", "lightgbm"])
    parser.add_argument("--worlds", nargs="+", default=["standard", "alternative"])
    parser.add_argument("--fluxes", nargs="+", default=FLUXES, choices=FLUXES)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    rows = []
    for world in args.worlds:
        table, _ = tables(world)
        site_ta = table.groupby("site")["TA"].mean().sort_values()
        cool = site_ta.index[: int(round(0.7 * len(site_ta)))]
        train, test = table[table["site"].isin(cool)], table[~table["site"].isin(cool)]
        for form, truth in (("lloyd_taylor", "E0 309 K"), ("q10", f"Q10 {ALTERNATIVE_Q10}")):
            model = ux.train(table, "RECO", FEATURES, "xgboost", qc_threshold=0.5, baseline=form, **PARAMS)
            value = model.baseline.parameters["e0" if form == "lloyd_taylor" else "q10"]
            print(
                f"{world} world: {form} baseline fitted on all towers: {value:.4g} (truth of the world's form: {truth})"
            )
        for kind in args.kinds:
            for flux in args.fluxes:
                out = {"world": world, "model": kind, "flux": flux}
                for label, baseline in (("pure", None), ("hybrid", "auto")):
                    cv = cross_validate(table, flux, FEATURES, kind, qc_threshold=0.5, baseline=baseline, **PARAMS)
                    p = cv.predictions
                    out[f"loso_r2_{label}"] = 1 - np.mean((p.obs - p.pred) ** 2) / np.var(p.obs)
                    model = ux.train(train, flux, FEATURES, kind, qc_threshold=0.5, baseline=baseline, **PARAMS)
                    out[f"extrap_rmse_{label}"] = rmse(model.predict(test), test[f"TRUE_{flux}"])
                    if baseline:
                        out["residual"] = model.baseline.residual
                        reference = flux_reference(train, [model], qc_threshold=0.5)
                        weight = residual_weight(
                            reference.di(test[reference.features].to_numpy(float)), reference.threshold
                        )
                        faded = model.predict(test, residual_weight=weight)
                        out["extrap_rmse_faded"] = rmse(faded, test[f"TRUE_{flux}"])
                        out["outside_aoa"] = float(np.mean(weight < 1))
                out["extrap_change"] = out["extrap_rmse_hybrid"] / out["extrap_rmse_pure"] - 1
                out["faded_change"] = out["extrap_rmse_faded"] / out["extrap_rmse_pure"] - 1
                rows.append(out)
                print(
                    f"{world:11s} {kind:8s} {flux:4s} LOSO r² {out['loso_r2_pure']:.3f} -> {out['loso_r2_hybrid']:.3f}"
                    f"  extrapolation RMSE {out['extrap_rmse_pure']:.3f} -> {out['extrap_rmse_hybrid']:.3f}"
                    f" ({100 * out['extrap_change']:+.0f} %, {out['residual']}), faded"
                    f" {out['extrap_rmse_faded']:.3f} ({100 * out['faded_change']:+.0f} %,"
                    f" {100 * out['outside_aoa']:.0f} % of test rows outside the AOA)",
                    flush=True,
                )
    print()
    frame = pd.DataFrame(rows).round(3)
    print("| " + " | ".join(frame.columns) + " |")
    print("|" + "---|" * len(frame.columns))
    for values in frame.itertuples(index=False):
        print("| " + " | ".join(map(str, values)) + " |")
    print(f"\n{platform.node()} {platform.processor() or platform.machine()}, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
