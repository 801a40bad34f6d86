"""Whole-year gap filling on CH-Dav 2013-2022 at daily resolution (issue #5).

Each year is held out in turn and filled with ``ux.gapfill(method="ml")``
(LightGBM, 3 members) and ``method="svr"``, trained on the other years - the
2 nearest years, or all years - using the site's daily drivers (SW_IN, TA,
VPD, LW_IN, PA, RH, P; their gaps filled by their mean diurnal variation),
their 7- and 30-day trailing means and time harmonics.
The reference daily fluxes are REddyProc's gap-filled series (NEE_CUT_REF_f,
night-time GPP and RECO, LE_f -> ET).  Scores pooled over the ten held-out
years: r², RMSE, bias and slope for ET, GPP, RECO, NEE predicted directly and
NEE as RECO - GPP.  For reference, a published SVR experiment at a Korean
farmland site reached daily r² 0.86 (ET), 0.83 (GPP), 0.91 (RE), 0.63-0.68 (NEE).

``ml-hybrid`` is ``ml`` with a process baseline under the trees (issue #13):
Priestley-Taylor for ET, LUE for GPP (no NIRv at the tower: fAPAR 1),
Lloyd-Taylor for RECO, respiration minus LUE for NEE.

The script also prints a ceiling for RECO: the reference RECO is REddyProc's
Lloyd-Taylor model of half-hourly air temperature with a reference
respiration R_ref re-fitted every few days from that year's night-time NEE.
Held out year by year, R_ref's day-of-year climatology of the other years
(15-day mean) times the held-out year's temperature response (E0 chosen on the
other years) is what a perfect model of R_ref's seasonal cycle would give;
R_ref's departures from it within a year come from the year's own NEE, which
no driver carries.

``--time-trend`` adds the time in years to the features (``ux.gapfill``'s
``time_trend``), so that trees can tell periods of the record apart.

Usage: python benchmarks/whole_year_chdav.py [--methods ml ml-hybrid svr] [--strategies nearest all] [--time-trend]
(needs ../shared/data)
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

import uflux_xr as ux
from uflux_xr.site.aggregate import to_daily

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "CH-Dav_2013-2022_halfhourly.parquet"
DRIVERS = ["SW_IN", "TA", "VPD", "LW_IN", "PA", "RH", "P"]
TARGETS = ["ET", "GPP", "RECO", "NEE"]
#: The hybrid rows' baseline per flux (uflux_xr.models.hybrid.BASELINES).
BASELINES = {"ET": "priestley_taylor", "GPP": "lue", "RECO": "lloyd_taylor", "NEE": "lue_lloyd_taylor"}
ML_PARAMS = {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 15}


def reco_ceiling(hh) -> float:
    """r² of daily RECO from the other years' R_ref climatology times the year's own Lloyd-Taylor response."""
    from uflux_xr import physics

    frame = hh[["RECO", "TA"]].isel(site=0).to_dataframe()[["RECO", "TA"]].dropna()
    day = frame.index.floor("D")
    daily = frame["RECO"].groupby(day).mean()
    years = daily.index.year
    by_e0 = {}
    for e0 in np.arange(50.0, 425.0, 25.0):
        response = physics.lloyd_taylor(frame["TA"].to_numpy(), e0=e0)
        by_e0[e0] = (
            pd.Series(response, index=frame.index).groupby(day).mean(),
            (frame["RECO"] / response).groupby(day).mean(),
        )
    predicted = pd.Series(np.nan, index=daily.index)
    for year in np.unique(years):
        best = None
        for response, r_ref in by_e0.values():
            other = r_ref[years != year]
            climatology = other.groupby(other.index.day_of_year).mean()
            wrapped = pd.concat([climatology.iloc[-7:], climatology, climatology.iloc[:7]])
            climatology = wrapped.rolling(15, center=True).mean().iloc[7:-7]
            fit = climatology.reindex(daily.index.day_of_year).to_numpy() * response.to_numpy()
            sse_other = np.nansum((fit - daily.to_numpy())[years != year] ** 2)
            if best is None or sse_other < best[0]:
                best = (sse_other, fit)
        predicted[years == year] = best[1][years == year]
    return ux.metrics.all_metrics(predicted.to_numpy(), daily.to_numpy())["r2"]


def daily_reference(hh) -> pd.DataFrame:
    # REddyProc's gap-filled fluxes are the complete reference series.
    hh = hh.drop_vars(["NEE", "LE", "NEE_QC", "LE_QC"]).rename({"NEE_REF_f": "NEE", "LE_REF_f": "LE"})
    daily = to_daily(hh[["NEE", "LE", "GPP", "RECO", *DRIVERS]], min_coverage=0.9)
    return daily


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["ml", "ml-hybrid", "svr"])
    parser.add_argument("--strategies", nargs="+", default=["nearest", "all"])
    parser.add_argument("--time-trend", action="store_true", help="the time in years among the features")
    args = parser.parse_args()
    t0 = time.perf_counter()
    hh = ux.read_sites(DATA)
    ceiling = reco_ceiling(hh)
    daily = daily_reference(hh)
    years = daily["time"].dt.year.values
    truth = {v: daily[v].values[0].copy() for v in TARGETS}
    rows = []
    for method, strategy in itertools.product(args.methods, args.strategies):
        filled = {v: np.full_like(truth[v], np.nan) for v in TARGETS}
        options = {
            "train_years": strategy,
            "n_nearest": 2,
            "drivers": tuple(DRIVERS),
            "antecedent_days": (7, 30),
            "time_trend": args.time_trend,
        }
        if method.startswith("ml"):
            options |= {"members": 3, "params": ML_PARAMS}
        for year in np.unique(years):
            held = years == year
            for var in TARGETS:
                ds = daily[[var, *DRIVERS]].copy()
                ds[var] = ds[var].where(~xr_mask(ds, held))
                if method == "ml-hybrid":
                    options["params"] = {**ML_PARAMS, "baseline": BASELINES[var]}
                out = ux.gapfill(ds, var, method=method.removesuffix("-hybrid"), **options)
                filled[var][held] = out[f"{var}_f"].values[0][held]
        filled["NEE (RECO-GPP)"] = filled["RECO"] - filled["GPP"]
        for var, pred in filled.items():
            ref = truth["NEE"] if var.startswith("NEE") else truth[var]
            m = ux.metrics.all_metrics(pred, ref)
            rows.append(
                {
                    "method": method,
                    "training years": strategy,
                    "flux": var,
                    "n days": m["n"],
                    "r2": m["r2"],
                    "RMSE": m["rmse"],
                    "bias": m["bias"],
                    "slope": m["slope"],
                }
            )
    table = pd.DataFrame(rows)
    print(
        f"machine: {platform.node()} {platform.machine()}; {time.strftime('%Y-%m-%d %H:%M')}; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    print("CH-Dav 2013-2022, daily, each year held out in turn (ML: LightGBM x 3 members; SVR: RBF);")
    print("units: ET kg m-2 d-1 (mm d-1), carbon g C m-2 d-1")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"RECO ceiling (other years' R_ref climatology x the year's Lloyd-Taylor response): r2 {ceiling:.3f}")


def xr_mask(ds, held):
    import xarray as xr

    return xr.DataArray(held[None, :], dims=("site", "time"), coords={"site": ds["site"], "time": ds["time"]})


if __name__ == "__main__":
    main()
