"""
Leave-one-site-out validation
=============================

How well a model predicts a tower it has never seen: each site is held out in turn, a model is trained on
the others and predicts it.  On the demo world (one year, daily, 40 towers), LightGBM models of GPP and
LE; held-out predictions against observations with the pooled metrics (NSE = 1 - SSE / SST, RMSE, bias).
"""

import matplotlib.pyplot as plt
import numpy as np

import uflux_xr as ux

world = ux.demo.make_world(seed=2, resolution=1.0, n_sites=40)
features = ["TA", "SW_IN", "VPD", "SWC", "NIRv", "IGBP", "DOY_SIN", "DOY_COS"]
table = ux.extract_at_sites(world.cube, world.sites, features)

units = {"GPP": "g C m-2 d-1", "LE": "W m-2"}
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), layout="constrained")
for ax, flux in zip(axes, units, strict=True):
    cv = ux.cross_validate(table, flux, features, model="lightgbm", cv="loso", n_estimators=200)
    m = cv.metrics.iloc[0]
    obs, pred = cv.predictions["obs"], cv.predictions["pred"]
    ax.hexbin(obs, pred, gridsize=60, bins="log", cmap="viridis", mincnt=1)
    lims = [float(np.nanmin([obs.min(), pred.min()])), float(np.nanmax([obs.max(), pred.max()]))]
    ax.plot(lims, lims, "k--", lw=1)
    ax.set(xlabel=f"observed {flux} [{units[flux]}]", ylabel=f"predicted {flux} [{units[flux]}]")
    ax.set_title(f"{flux}: NSE {m['nse']:.3f}, RMSE {m['rmse']:.2f}, bias {m['bias']:+.2f}")
    print(cv.metrics[["target", "n", "nse", "rmse", "bias", "slope"]].to_string(index=False))
plt.show()
