"""
A product map and its area of applicability
===========================================

The grid wing in a few lines, on a small demo world (1° over Europe, three summer months): extract the
predictors at the towers, train an XGBoost model of GPP, upscale it chunk by chunk, and score every cell
with the dissimilarity index (DI) and the area of applicability (AOA, Meyer & Pebesma 2021, as CAST
computes them).  Cells outside the AOA have predictor combinations unlike any tower's: the map there is an
extrapolation.
"""

import matplotlib.pyplot as plt

import uflux_xr as ux

world = ux.demo.make_world(seed=1, resolution=1.0, start="2020-05-01", end="2020-07-31", n_sites=40)
features = ["TA", "SW_IN", "VPD", "SWC", "NIRv"]

# %%
# Train on the towers and upscale (lazy until written or computed).
table = ux.extract_at_sites(world.cube, world.sites, features)
model = ux.train(table, "GPP", features, model="xgboost", n_estimators=200, random_state=0)
cube = world.cube.chunk({"time": 31})
product = ux.upscale({"GPP": [model]}, cube)
gpp = product["GPP"].isel(member=0).mean("time").compute()

# %%
# DI and AOA of every cell and day; the map shows the share of days inside the AOA.
result = ux.aoa(table, cube, features, folds="site")
inside = result.AOA.where(result.AOA >= 0).mean("time").compute()
print(f"DI threshold {result.threshold:.3f}; land cell-days inside the AOA: {float(inside.mean()):.1%}")

fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
gpp.plot(ax=axes[0], cmap="YlGn", cbar_kwargs={"label": "GPP [g C m-2 d-1]"})
axes[0].set_title("GPP, May-July 2020 mean")
inside.plot(ax=axes[1], cmap="magma", vmin=0, vmax=1, cbar_kwargs={"label": "share of days inside the AOA"})
axes[1].set_title("area of applicability")
for ax in axes:
    ax.plot(world.sites["lon"], world.sites["lat"], "c^", ms=4, label="towers")
    ax.set(xlabel="longitude [°E]", ylabel="latitude [°N]")
axes[0].legend(loc="lower left")
plt.show()
