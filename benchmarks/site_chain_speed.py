"""Tower processing steps: uflux-xr against hesseflux on DE-Tha 1998, side by side (issue #12, part).

Steps timed: spike detection (NEE, LE, H; z 7, 2nd derivatives, 15-day windows),
the u* threshold with bootstraps (hesseflux ``ustarfilter`` with 100
bootstraps; ours with 100 and with REddyProc's 200), and the night-time and
day-time partitioning of the filled NEE (hesseflux ``nee2gpp`` with
``method="reichstein"`` and ``"lasslop"``; ours with the bootstrap of 30
samples REddyProc runs by default and with the curvature, ``n_boot=0``).  Both
sides partition the same filled NEE (hesseflux's MDS reference file), fitted
on the measured records.  Then our whole chain as REddyProc's use case runs
it: spikes, u* with 200 bootstraps, MDS of the drivers and of NEE under the
U05/U50/U95 thresholds, night-time partitioning of each and day-time of U50.
hesseflux runs from the throwaway venv that ``gapfill_speed.py`` creates
(``np.float`` and ``np.int`` are restored there for ``ustarfilter`` and ``nee2gpp``, which numpy 2 broke);
each side runs in a fresh process, best of 3 after a warm-up (1 run for the
slow steps).

Usage: python benchmarks/site_chain_speed.py   (needs ../shared/data)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gapfill_speed import DATA, WORK, ensure_venv  # noqa: E402

FILLED = DATA.parent / "DE-Tha_1998_mds_reference_hesseflux.csv"
POSITION = {"lat": 50.96, "lon": 13.57, "utc_offset": 1}  # DE-Tha, central European standard time


def best_of(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run_hesseflux() -> dict:
    import numpy as np
    import pandas as pd

    np.float = float  # noqa: NPY001 - hesseflux's ustarfilter still uses the aliases numpy 2 removed
    np.int = int  # noqa: NPY001 - and its nee2gpp
    from hesseflux import madspikes, ustarfilter

    raw = pd.read_csv(DATA, sep=r"\s+", skiprows=[1])
    date = (
        pd.Timestamp("1998-01-01") + pd.to_timedelta(raw["Day"] - 1, unit="D") + pd.to_timedelta(raw["Hour"], unit="h")
    )
    df = pd.DataFrame(
        {"FC": raw["NEE"], "LE": raw["LE"], "H": raw["H"], "USTAR": raw["Ustar"], "TA": raw["Tair"], "SW_IN": raw["Rg"]}
    ).set_index(pd.DatetimeIndex(date))
    flag = pd.DataFrame(np.where(df.to_numpy() == -9999, 2, 0), index=df.index, columns=df.columns)
    for col, qc in (("FC", "qcNEE"), ("LE", "qcLE"), ("H", "qcH")):
        flag[col] = np.where(raw[qc].to_numpy() == 1, 0, 2)
    isday = (df["SW_IN"] > 10.0).to_numpy()
    fluxes = ["FC", "LE", "H"]

    def spikes():
        madspikes(df[fluxes], flag=flag[fluxes], isday=isday.copy(), undef=-9999, nscan=15 * 48, nfill=48, z=7, deriv=2)

    def ustar():
        cols = ["FC", "USTAR", "TA"]
        ustarfilter(df[cols], flag=flag[cols], isday=isday.copy(), undef=-9999, nboot=100)

    filled = pd.read_csv(FILLED)
    part = pd.DataFrame(
        {
            "FC": filled["NEE_f"].to_numpy(),
            "TA": raw["Tair"].to_numpy() + 273.15,
            "SW_IN": raw["Rg"].to_numpy(),
            "VPD": raw["VPD"].to_numpy() * 100.0,
        },
        index=df.index,
    )
    part_flag = pd.DataFrame(0, index=part.index, columns=part.columns)
    part_flag["FC"] = flag["FC"].to_numpy()  # fit on the measured records, as ours does

    def partition(method):
        return lambda: nee2gpp(part, flag=part_flag, isday=isday.copy(), undef=-9999, method=method)

    from hesseflux import nee2gpp

    return {
        "spikes": best_of(spikes),
        "ustar_100": best_of(ustar, 1),
        "nighttime": best_of(partition("reichstein")),
        "daytime": best_of(partition("lasslop"), 1),
    }


def run_ours() -> dict:
    import uflux_xr as ux

    ds = ux.read_sites(DATA)

    def spikes():
        for var in ("NEE", "LE", "H"):
            ux.flag_spikes(ds, var, convention="hesseflux", good_qc=1)

    import numpy as np
    import pandas as pd

    one = ds.isel(site=0)
    filled = pd.read_csv(FILLED)
    measured = np.isfinite(one["NEE"].values) & (one["NEE_QC"].values == 1)
    part = one.assign(
        NEE_f=("time", filled["NEE_f"].to_numpy(), {"units": "umol m-2 s-1"}),
        NEE_fqc=("time", np.where(measured, 0.0, 1.0)),
    )
    for var in ("TA", "VPD", "SW_IN"):
        part = ux.gapfill(part, var)

    def chain():
        site = ux.flag_spikes(one, "NEE", convention="hesseflux", good_qc=1)
        site["NEE"] = site["NEE"].where((site["NEE_SPIKE"] == 0) & (site["NEE_QC"] == 1))
        table = ux.ustar_thresholds(site, n_samples=200)
        for var in ("TA", "VPD", "SW_IN"):
            site = ux.gapfill(site, var)
        site = ux.fill_ustar_scenarios(site, "NEE", table, fill_all=True)
        for scenario in ("U05", "U50", "U95"):
            site = ux.partition(site, nee=f"NEE_{scenario}", **POSITION)
        return ux.partition(site, "daytime", nee="NEE_U50", **POSITION)

    return {
        "spikes": best_of(spikes),
        "ustar_100": best_of(lambda: ux.ustar_thresholds(ds, n_samples=100), 1),
        "ustar_200": best_of(lambda: ux.ustar_thresholds(ds, n_samples=200), 1),
        "nighttime": best_of(lambda: ux.partition(part, **POSITION)),
        "daytime": best_of(lambda: ux.partition(part, "daytime", **POSITION), 1),
        "daytime_curvature": best_of(lambda: ux.partition(part, "daytime", n_boot=0, **POSITION), 1),
        "chain": best_of(chain, 1),
        "process_site": best_of(lambda: ux.process_site(one, **POSITION), 1),
    }


def measure(python: str, side: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)} if side == "ours" else dict(os.environ)
    done = subprocess.run([python, __file__, "--side", side], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--side":
        print(json.dumps(run_ours() if sys.argv[2] == "ours" else run_hesseflux()))
        return
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: this benchmark needs ../shared/data")
    WORK.mkdir(exist_ok=True)
    hesseflux_python = str(ensure_venv())
    ours = measure(sys.executable, "ours")
    theirs = measure(hesseflux_python, "hesseflux")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}")
    print("DE-Tha 1998 half-hourly (17,520 records)")
    print(f"  spikes NEE+LE+H : hesseflux {theirs['spikes']:7.3f} s, ours {ours['spikes']:7.3f} s"
          f"  ({theirs['spikes'] / ours['spikes']:5.1f}x)")  # fmt: skip
    print(f"  u* 100 boots    : hesseflux {theirs['ustar_100']:7.3f} s, ours {ours['ustar_100']:7.3f} s"
          f"  ({theirs['ustar_100'] / ours['ustar_100']:5.1f}x)")  # fmt: skip
    print(f"  u* 200 boots    : ours {ours['ustar_200']:7.3f} s")
    for key, label in (("nighttime", "night-time part."), ("daytime", "day-time (30 bt)")):
        print(f"  {label:16s}: hesseflux {theirs[key]:7.3f} s, ours {ours[key]:7.3f} s"
              f"  ({theirs[key] / ours[key]:5.1f}x)")  # fmt: skip
    print(f"  day-time, n_boot=0: ours {ours['daytime_curvature']:7.3f} s"
          f"  ({theirs['daytime'] / ours['daytime_curvature']:5.1f}x hesseflux)")  # fmt: skip
    print(f"  whole chain (spikes, u* 200, MDS x 3 scenarios, night-time x 3, day-time U50): {ours['chain']:.2f} s")
    print(
        "  ux.process_site defaults (ONEFlux spikes, u* 200, MDS x 4 scenarios + LE/H, night-time x 4, "
        f"day-time x 4 with 30 bootstraps): {ours['process_site']:.2f} s"
    )


if __name__ == "__main__":
    main()
