"""
Partitioned daily fluxes of a tower year
========================================

One tower through the whole chain (QC, MDS of the drivers and of NEE, night-time and day-time
partitioning), as REddyProc runs it, on DE-Tha 1998 with the u* threshold of REddyProc's vignette
(0.3 m s-1).  The daily means of GPP and RECO from both partitionings are shown with the filled NEE.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import uflux_xr as ux

# the real samples lie in shared/data beside the repository
data = next(p / "shared" / "data" for p in Path.cwd().resolve().parents if (p / "shared" / "data").is_dir())
meta = pd.DataFrame({"site": ["DE-Tha"], "lat": [50.9626], "lon": [13.5651], "igbp": ["ENF"]})
tharandt = ux.read_sites(data / "DE-Tha_1998_halfhourly.tsv", metadata=meta, year=1998)

# %%
# The chain: ``utc_offset`` is the hours local standard time is ahead of UTC (the time stamps' zone).
site = ux.process_site(tharandt, lat=50.9626, lon=13.5651, utc_offset=1, ustar=0.3, spikes=None)
print(site.annual.round(1).to_string())

# %%
# Daily means [µmol CO2 m-2 s-1] of the partitioned fluxes.  Outputs carry the u* scenario they come from
# (``uStar``: the given threshold), as REddyProc names them.
names = ["NEE_uStar_f", "GPP_NT_uStar", "RECO_NT_uStar", "GPP_DT_uStar", "RECO_DT_uStar"]
daily = site.data[names].isel(site=0).to_dataframe()[names].resample("1D").mean()
fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
for name, style in zip(names, ["k-", "g-", "r-", "g:", "r:"], strict=False):
    ax.plot(daily.index, daily[name], style, lw=1, label=name)
ax.set(ylabel="daily mean [µmol CO2 m-2 s-1]", title="DE-Tha 1998: night-time (NT) and day-time (DT) partitioning")
ax.legend(ncol=5, fontsize="small")
plt.show()
