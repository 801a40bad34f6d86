"""Held-out skill of each model kind against its number of histogram bins per feature.

Fewer bins mean fewer distinct split thresholds, so more 100 m cells share a
row of interval codes and deduplicated inference predicts fewer rows (issue
#15); this measures what it costs in skill.  Each kind is fitted with the
hyper-parameters of ``configs/uk_daily_100m.yaml`` at its default bin count
(XGBoost 256, LightGBM 255, cascade forest 255) and at 128, 64 and 32, through
``uflux_xr.models.train`` (the config's ``max_bin`` sets the kind's own
parameter), on the data sets of ``cascade_vs_df21.py``: Friedman #1 (20,000
training rows, 20,000 test rows) and CH-Dav daily drivers -> GPP (train
2013-2020, test 2021-2022; needs ../shared/data).  Held-out R² (NSE) is the
mean over three seeds, with its range.

Usage: python benchmarks/bin_count.py [--bins 128 64 32]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cascade_vs_df21 import chdav_daily, friedman  # noqa: E402

from uflux_xr.models import train  # noqa: E402
from uflux_xr.models.registry import get_kind  # noqa: E402
from uflux_xr.workflow.config import load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)


def frame(X: np.ndarray, y: np.ndarray | None = None) -> pd.DataFrame:
    table = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    if y is not None:
        table["y"] = y
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bins", nargs="+", type=int, default=[128, 64, 32])
    args = parser.parse_args()
    print(f"# bin_count — {dt.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} cores\n")
    Xtr, ytr = friedman(20_000, seed=1)
    Xte, yte = friedman(20_000, seed=2)
    sets = {"friedman-20k": (Xtr, ytr, Xte, yte), "chdav-daily": chdav_daily()}
    specs = load_config(REPO / "configs" / "uk_daily_100m.yaml").ensemble.models
    print("| data | model | bins | held-out R² (3 seeds) | ΔR² against the default |")
    print("|---|---|---:|---:|---:|")
    for name, (Xtr, ytr, Xte, yte) in sets.items():
        train_table, test_table = frame(Xtr, ytr), frame(Xte)
        features = [c for c in train_table.columns if c != "y"]
        for spec in specs:
            native, default = get_kind(spec.name).bins
            params = {k: v for k, v in spec.params.items() if k != native}
            base = None
            for bins in (default, *args.bins):
                scores = []
                for seed in SEEDS:
                    model = train(train_table, "y", features, spec.name, random_state=seed, **params, **{native: bins})
                    pred = model.predict(test_table)
                    scores.append(1 - np.sum((pred - yte) ** 2) / np.sum((yte - yte.mean()) ** 2))
                r2 = float(np.mean(scores))
                base = r2 if base is None else base
                print(
                    f"| {name} | {spec.name} | {bins} | {r2:.4f} ({min(scores):.4f}–{max(scores):.4f}) "
                    f"| {r2 - base:+.4f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
