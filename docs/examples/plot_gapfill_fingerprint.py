"""
Gap-filling fingerprint of a tower year
=======================================

Marginal distribution sampling (MDS, Reichstein et al. 2005) as REddyProc runs it, on DE-Tha (Tharandt)
1998 half-hours.  The fingerprint shows each day (rows) and time of day (columns): measured NEE on the
left, the filled series on the right, and the quality of each fill below.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import uflux_xr as ux

# %%
# Read the tower file (REddyProc's text format) with the site's position.
# the real samples lie in shared/data beside the repository
data = next(p / "shared" / "data" for p in Path.cwd().resolve().parents if (p / "shared" / "data").is_dir())
meta = pd.DataFrame({"site": ["DE-Tha"], "lat": [50.9626], "lon": [13.5651], "igbp": ["ENF"]})
tharandt = ux.read_sites(data / "DE-Tha_1998_halfhourly.tsv", metadata=meta, year=1998).isel(site=0)

# %%
# Fill NEE.  ``NEE_f`` is the filled series, ``NEE_fqc`` the quality (0 measured, 1-3 by window).
filled = ux.gapfill(tharandt, "NEE", method="mds")
n_per_day = 48
measured = filled["NEE"].values.reshape(-1, n_per_day)
complete = filled["NEE_f"].values.reshape(-1, n_per_day)
quality = filled["NEE_fqc"].values.reshape(-1, n_per_day)
print(f"gaps: {np.isnan(measured).mean():.1%} of the half-hours; unfilled after MDS: {np.isnan(complete).mean():.2%}")

# %%
# The fingerprint.
fig, axes = plt.subplots(1, 3, figsize=(11, 4.5), sharey=True, layout="constrained")
extent = (0, 24, measured.shape[0], 0)
for ax, values, title in ((axes[0], measured, "measured NEE"), (axes[1], complete, "filled NEE (NEE_f)")):
    image = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-20, vmax=20, extent=extent)
    ax.set(title=title, xlabel="hour of day")
fig.colorbar(image, ax=axes[:2], label="NEE [µmol CO2 m-2 s-1]")
cmap = plt.get_cmap("viridis", 4)
q = axes[2].imshow(quality, aspect="auto", cmap=cmap, vmin=-0.5, vmax=3.5, extent=extent)
axes[2].set(title="fill quality (NEE_fqc)", xlabel="hour of day")
fig.colorbar(q, ax=axes[2], ticks=[0, 1, 2, 3], label="0 measured, 1-3 fill quality")
axes[0].set_ylabel("day of 1998")
plt.show()
