"""uflux-xr's cascade forest against DF21 (deep-forest-py310), side by side.

Both fit the same training rows and predict the same held-out rows with DF21's
default settings (2 random forests + 2 extra-trees forests of 100 trees per
layer, up to 20 layers, 2 tolerant rounds), ``random_state=0`` and all cores
(``n_jobs=-1``).  DF21 runs from its own throwaway virtual environment
(``deep-forest-py310`` needs numpy < 2.4 and scikit-learn < 1.6), created under
``benchmarks/_work/df21-venv`` on first use.

Data sets:

* ``friedman-20k`` / ``friedman-200k``: Friedman #1 (5 informative + 3 noise
  features, noise sd 1), 20,000 or 200,000 training rows, 20,000 test rows;
* ``chdav-daily``: CH-Dav 2013-2022 half-hourly (../shared/data) aggregated to
  daily drivers (SW_IN, TA mean/min/max, VPD, LW_IN, PA, RH, SWC, P, day-of-year
  harmonics) -> daily GPP (night-time partitioning, g C m-2 d-1); trained on
  2013-2020, tested on 2021-2022 (a real table has the rows it has: ~2,900 / 730).

Prints fit time, predict rows/s and held-out R² (NSE) of each, and the ratio.
Usage: python benchmarks/cascade_vs_df21.py [--datasets friedman-20k chdav-daily friedman-200k]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
SHARED = HERE.parent.parent / "shared" / "data"
DF21_VENV = WORK / "df21-venv"


def friedman(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 8))
    y = (
        10 * np.sin(np.pi * X[:, 0] * X[:, 1])
        + 20 * (X[:, 2] - 0.5) ** 2
        + 10 * X[:, 3]
        + 5 * X[:, 4]
        + rng.normal(size=n)
    )
    return X, y


def chdav_daily() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    path = SHARED / "CH-Dav_2013-2022_halfhourly.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the CH-Dav benchmark needs ../shared/data")
    hh = pd.read_parquet(path)
    day = hh.index.floor("D")
    g = hh.groupby(day)
    daily = pd.DataFrame(
        {
            "SW_IN": g["Rg_f"].mean(),
            "TA": g["Tair_f"].mean(),
            "TA_MIN": g["Tair_f"].min(),
            "TA_MAX": g["Tair_f"].max(),
            "VPD": g["VPD_f"].mean(),
            "LW_IN": g["LW_IN"].mean(),
            "PA": g["PA"].mean(),
            "RH": g["RH"].mean(),
            "SWC": g["SWC_FF0_0.15_1"].mean(),
            "P": g["PREC_TOT_T1_25+20_1"].sum(min_count=1),
            "GPP": g["GPP_CUT_REF_f"].mean() * 1.0377,  # µmol CO2 m-2 s-1 -> g C m-2 d-1
        }
    )
    phase = 2 * np.pi * (daily.index.day_of_year - 1) / 365.25
    daily["DOY_SIN"], daily["DOY_COS"] = np.sin(phase), np.cos(phase)
    daily = daily.dropna()
    features = [c for c in daily.columns if c != "GPP"]
    train, test = daily[daily.index.year <= 2020], daily[daily.index.year >= 2021]
    return (train[features].to_numpy(), train["GPP"].to_numpy(), test[features].to_numpy(), test["GPP"].to_numpy())


def make_dataset(name: str) -> Path:
    path = WORK / f"{name}.npz"
    if not path.exists():
        if name.startswith("friedman-"):
            n = {"friedman-20k": 20_000, "friedman-200k": 200_000}[name]
            Xtr, ytr = friedman(n, seed=1)
            Xte, yte = friedman(20_000, seed=2)
        else:
            Xtr, ytr, Xte, yte = chdav_daily()
        np.savez(path, X_train=Xtr, y_train=ytr, X_test=Xte, y_test=yte)
    return path


def run_side(side: str, data: str) -> None:
    """Fit and score one implementation; prints one JSON line (runs in that side's interpreter)."""
    d = np.load(data)
    if side == "ours":
        from uflux_xr.models.cascade import CascadeForestRegressor

        # Compile the numba kernels outside the timing (cached on disk after the first run).
        CascadeForestRegressor(n_trees=2, max_layers=1, random_state=0).fit(d["X_train"][:200], d["y_train"][:200])
        model = CascadeForestRegressor(random_state=0, n_jobs=-1)
    else:
        from deepforest import CascadeForestRegressor

        model = CascadeForestRegressor(random_state=0, n_jobs=-1, verbose=0)
    t0 = time.perf_counter()
    model.fit(d["X_train"], d["y_train"])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = np.asarray(model.predict(d["X_test"])).ravel()
    predict_s = time.perf_counter() - t0
    y = d["y_test"]
    r2 = 1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2)
    layers = getattr(model, "n_layers_", None)
    print(
        json.dumps(
            {
                "fit_s": fit_s,
                "predict_rows_s": len(y) / predict_s,
                "r2": float(r2),
                "layers": int(layers) if layers is not None else None,
            }
        )
    )


def ensure_df21_venv() -> Path:
    python = DF21_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DF21_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "numpy<2.4", "scikit-learn<1.6", "deep-forest-py310"],
            check=True,
        )
    return python


def measure(python: str, side: str, data: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)} if side == "ours" else dict(os.environ)
    done = subprocess.run([python, __file__, "--run-side", side, str(data)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed on {data.name}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["friedman-20k", "chdav-daily", "friedman-200k"])
    parser.add_argument("--run-side", nargs=2, metavar=("SIDE", "DATA"))
    args = parser.parse_args()
    if args.run_side:
        run_side(*args.run_side)
        return
    WORK.mkdir(exist_ok=True)
    df21_python = str(ensure_df21_venv())
    import platform

    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
    header = f"{'data set':<15}{'rows':>8}{'impl':>9}{'fit s':>9}{'predict rows/s':>16}{'R2':>8}{'layers':>7}"
    print(header, flush=True)
    for name in args.datasets:
        data = make_dataset(name)
        n = int(np.load(data)["y_train"].size)
        results = {}
        for side, python in (("ours", sys.executable), ("df21", df21_python)):
            r = measure(python, side, data)
            results[side] = r
            print(
                f"{name:<15}{n:>8}{side:>9}{r['fit_s']:>9.1f}{r['predict_rows_s']:>16,.0f}{r['r2']:>8.4f}"
                f"{r['layers'] if r['layers'] is not None else '':>7}",
                flush=True,
            )
        o, d = results["ours"], results["df21"]
        print(
            f"{name:<15}{'':>8}{'ratio':>9}{d['fit_s'] / o['fit_s']:>8.1f}x"
            f"{o['predict_rows_s'] / d['predict_rows_s']:>15.1f}x{o['r2'] - d['r2']:>+8.4f}",
            flush=True,
        )
        with open(WORK / "cascade_results.jsonl", "a") as fh:
            fh.write(
                json.dumps(
                    {"dataset": name, "rows": n, **{f"{k}_{s}": v for s, r in results.items() for k, v in r.items()}}
                )
                + "\n"
            )


if __name__ == "__main__":
    main()
