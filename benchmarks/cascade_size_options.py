"""The cascade forest's size options against model size, predict rate and held-out skill.

Fits uflux-xr's ``CascadeForestRegressor`` with DF21's defaults (2 random + 2
extra-trees forests of 100 trees per layer, up to 20 layers) and with one size
option changed at a time: ``min_samples_leaf``, ``max_depth`` and
``max_leaf_nodes`` (best-first growth), plus the settings the domain configs
use.  Data sets as ``cascade_vs_df21.py``: Friedman #1 (20,000 training rows,
20,000 test rows) and CH-Dav daily drivers -> GPP (train 2013-2020, test
2021-2022; needs ../shared/data).

Per setting, in one process: fit time (all cores), layers kept, nodes, the
model's files as stored in a model archive (zip, deflate level 1) and the
predict rate on one thread (the test rows repeated to at least 20,000 rows,
best of 3), all for ``random_state=0``; held-out R² (NSE) as the mean over
three seeds with its range, because a seed alone moves CH-Dav's R² by up to
0.01.  Ratios are against the default in the same run.

``--domain-only`` fits only the domain settings (50 trees, at most 2 layers),
with ratios against the first of them; with ``friedman-200k`` (200,000
training rows) it shows how each option's size grows with the training table.

Usage: python benchmarks/cascade_size_options.py [--datasets friedman-20k chdav-daily friedman-200k] [--domain-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cascade_vs_df21 import chdav_daily, friedman  # noqa: E402

from uflux_xr.models.cascade import CascadeForestRegressor  # noqa: E402

# DF21's defaults (100 trees, up to 20 layers) with one per-tree option changed, then the
# settings domain configs choose among (50 trees, at most 2 layers).
DOMAIN = {"n_trees": 50, "max_layers": 2}
SETTINGS: dict[str, dict] = {
    "default (fully grown)": {},
    "min_samples_leaf=5": {"min_samples_leaf": 5},
    "min_samples_leaf=20": {"min_samples_leaf": 20},
    "max_depth=10": {"max_depth": 10},
    "max_depth=14": {"max_depth": 14},
    "max_leaf_nodes=256": {"max_leaf_nodes": 256},
    "max_leaf_nodes=1024": {"max_leaf_nodes": 1024},
    "max_leaf_nodes=4096": {"max_leaf_nodes": 4096},
    "50 trees, 2 layers, min_samples_leaf=5": {**DOMAIN, "min_samples_leaf": 5},
    "50 trees, 2 layers, min_samples_leaf=20": {**DOMAIN, "min_samples_leaf": 20},
    "50 trees, 2 layers, max_depth=10": {**DOMAIN, "max_depth": 10},
    "50 trees, 2 layers, max_leaf_nodes=256": {**DOMAIN, "max_leaf_nodes": 256},
    "50 trees, 2 layers, max_leaf_nodes=1024": {**DOMAIN, "max_leaf_nodes": 1024},
    "50 trees, 2 layers, min_samples_leaf=5, max_leaf_nodes=4096": {
        **DOMAIN,
        "min_samples_leaf": 5,
        "max_leaf_nodes": 4096,
    },
}
SEEDS = (0, 1, 2)


def stored_bytes(model: CascadeForestRegressor) -> int:
    """Bytes of the model's files in a zip at deflate level 1, as ``FluxModel.save`` writes them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, blob in model.to_files().items():
            zf.writestr(name, blob)
    return len(buf.getvalue())


def n_nodes(model: CascadeForestRegressor) -> int:
    return sum(f.n_nodes for forests in model.layers_ for f in forests)


def predict_rate(model: CascadeForestRegressor, X: np.ndarray, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(X, n_threads=1)
        times.append(time.perf_counter() - started)
    return X.shape[0] / min(times)


def data_sets(names: list[str]) -> dict[str, tuple]:
    sets = {}
    for name in names:
        if name in ("friedman-20k", "friedman-200k"):
            Xtr, ytr = friedman(20_000 if name == "friedman-20k" else 200_000, seed=1)
            Xte, yte = friedman(20_000, seed=2)
        elif name == "chdav-daily":
            Xtr, ytr, Xte, yte = chdav_daily()
        else:
            raise SystemExit(f"unknown data set {name!r}")
        sets[name] = (Xtr, ytr, Xte, yte)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["friedman-20k", "chdav-daily"])
    parser.add_argument("--domain-only", action="store_true", help="only the settings with DOMAIN's trees and layers")
    args = parser.parse_args()
    settings = {k: v for k, v in SETTINGS.items() if not args.domain_only or DOMAIN.items() <= v.items()}
    print(f"# cascade_size_options — {dt.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} cores\n")
    # Compile the numba kernels outside the timings.
    CascadeForestRegressor(n_trees=2, max_layers=1, max_leaf_nodes=4, random_state=0).fit(
        np.random.default_rng(0).normal(size=(300, 3)), np.arange(300.0)
    )
    print(
        "| data | setting | fit [s] | layers | nodes | file [MB] | smaller | predict [rows/s/core] | faster "
        "| held-out R² (3 seeds) | ΔR² |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (Xtr, ytr, Xte, yte) in data_sets(args.datasets).items():
        timing_rows = np.tile(Xte, (int(np.ceil(20_000 / Xte.shape[0])), 1))
        base = None
        for label, options in settings.items():
            scores = []
            for seed in SEEDS:
                model = CascadeForestRegressor(random_state=seed, n_jobs=-1, **options)
                started = time.perf_counter()
                model.fit(Xtr, ytr)
                if seed == SEEDS[0]:
                    fit_s, first = time.perf_counter() - started, model
                pred = model.predict(Xte)
                scores.append(1 - np.sum((pred - yte) ** 2) / np.sum((yte - yte.mean()) ** 2))
            r2 = float(np.mean(scores))
            row = {"size": stored_bytes(first), "rate": predict_rate(first, timing_rows), "r2": r2}
            base = base or row
            print(
                f"| {name} | {label} | {fit_s:.1f} | {first.n_layers_} | {n_nodes(first):,} | {row['size'] / 1e6:.2f} "
                f"| {base['size'] / row['size']:.1f}x | {row['rate']:,.0f} | {row['rate'] / base['rate']:.1f}x "
                f"| {r2:.4f} ({min(scores):.4f}–{max(scores):.4f}) | {r2 - base['r2']:+.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
