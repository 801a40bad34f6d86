"""Night-time and day-time partitioning on CH-Dav 2013-2022 against REddyProc's columns (issue #12).

Our chain from the measured records: MDS (REddyProc convention) of TA, VPD and
SW_IN, MDS of the u*-filtered NEE (``NEE_CUT_REF_orig``) with ``fill_all`` for
the NEE uncertainty, then ``ux.partition`` night-time and day-time on the whole
ten years (day-time with REddyProc's 30 bootstrap samples and with
``n_boot=0``).  Compared per year with REddyProc's ``GPP_CUT_REF_f`` /
``Reco_CUT_REF`` and ``GPP_DT_CUT_REF`` / ``Reco_DT_CUT_REF``; hesseflux's
``nee2gpp`` on the same filled NEE for scale.

Usage: python benchmarks/partition_chdav.py   (needs ../shared/data; about 3 minutes on 2 cores)
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

import uflux_xr as ux

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "CH-Dav_2013-2022_halfhourly.parquet"
POSITION = {"lat": 46.8153, "lon": 9.8559, "utc_offset": 1}
G_C_PER_UMOL_DAY = 1.0377  # µmol CO2 m-2 s-1 -> g C m-2 d-1


def main() -> None:
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: this benchmark needs ../shared/data")
    ds = ux.read_sites(DATA).isel(site=0)
    reference = ds[["GPP", "RECO", "GPP_DT", "RECO_DT"]].reset_coords(drop=True).to_dataframe().add_suffix("_REF")
    ds = ds[["NEE", "TA_orig", "SW_IN_orig", "VPD_orig"]].rename(TA_orig="TA", SW_IN_orig="SW_IN", VPD_orig="VPD")
    t0 = time.perf_counter()
    for var in ("TA", "VPD", "SW_IN"):
        ds = ux.gapfill(ds, var)
    ds = ux.gapfill(ds, "NEE", fill_all=True)
    t_mds = time.perf_counter() - t0
    t0 = time.perf_counter()
    nt = ux.partition(ds, **POSITION)
    t_nt = time.perf_counter() - t0
    t0 = time.perf_counter()
    dt = ux.partition(nt, "daytime", **POSITION)
    t_dt = time.perf_counter() - t0
    t0 = time.perf_counter()
    dt0 = ux.partition(nt, "daytime", n_boot=0, **POSITION)
    t_dt0 = time.perf_counter() - t0
    ours = dt[["GPP_NT", "RECO_NT", "GPP_DT", "RECO_DT"]].reset_coords(drop=True).to_dataframe()
    ours["GPP_DT0"] = dt0["GPP_DT"].values
    frame = ours.join(reference)
    annual = frame.groupby(frame.index.year).mean() * 365.25 * G_C_PER_UMOL_DAY
    daily = frame.resample("D").mean()

    def r2(a, b):
        ok = daily[[a, b]].dropna()
        return np.corrcoef(ok[a], ok[b])[0, 1] ** 2

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}")
    print(
        f"CH-Dav 2013-2022 ({len(frame):,} half-hours): MDS {t_mds:.1f} s, night-time {t_nt:.1f} s, "
        f"day-time {t_dt:.1f} s (30 bootstraps), {t_dt0:.1f} s (n_boot=0); E0_NT {float(nt['E0_NT']):.2f} K"
    )
    print("year | GPP_NT  REddyProc  dev % | RECO_NT dev % | GPP_DT  REddyProc  dev % | n_boot=0 dev %  [g C m-2 yr-1]")
    for year, row in annual.iterrows():
        print(
            f"{year} | {row.GPP_NT:6.0f} {row.GPP_REF:9.0f} {100 * (row.GPP_NT / row.GPP_REF - 1):+6.1f} | "
            f"{100 * (row.RECO_NT / row.RECO_REF - 1):+6.1f} | {row.GPP_DT:6.0f} {row.GPP_DT_REF:9.0f} "
            f"{100 * (row.GPP_DT / row.GPP_DT_REF - 1):+6.1f} | {100 * (row.GPP_DT0 / row.GPP_DT_REF - 1):+6.1f}"
        )
    print(
        f"daily r2: RECO_NT {r2('RECO_NT', 'RECO_REF'):.3f}, GPP_NT {r2('GPP_NT', 'GPP_REF'):.3f}, "
        f"GPP_DT {r2('GPP_DT', 'GPP_DT_REF'):.3f}, RECO_DT {r2('RECO_DT', 'RECO_DT_REF'):.3f}"
    )


if __name__ == "__main__":
    main()
