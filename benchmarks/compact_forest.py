"""The cascade forest's layouts side by side: builder arrays (HistForest) vs prediction records (CompactForest).

Fits the forests a DF21 layer holds (random forest and extra-trees, 100 fully
grown trees each, ``min_samples_leaf=1``) on Friedman #1 (20,000 rows, 8
features, binned to 255 bins as the cascade does) and on CH-Dav daily GPP
(../shared/data, as in ``cascade_vs_df21.py``), then, in one process, for the
same trees:

* prediction time of 20,000 held-out rows on one thread, each layout, best of 3;
* whether the predictions are identical (``np.array_equal``);
* the stored size as in a model file (npz in a zip, deflate level 1) and the
  bytes held in memory.

Usage: python benchmarks/compact_forest.py
"""

from __future__ import annotations

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

from uflux_xr.models.compactforest import CompactForest  # noqa: E402
from uflux_xr.models.histforest import Binner, fit_forest  # noqa: E402


def stored_bytes(arrays: dict) -> int:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("forest.npz", buf.getvalue())
    return len(zipped.getvalue())


def best_of(predict, rows, n=3) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        predict(rows)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    print(f"# compact_forest — {dt.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} cores\n")
    Xtr, ytr = friedman(20_000, seed=1)
    Xte, _ = friedman(20_000, seed=2)
    sets = {"friedman-20k": (Xtr, ytr, Xte)}
    try:
        Xa, ya, Xb, _ = chdav_daily()
        sets["chdav-daily"] = (Xa, ya, Xb)
    except FileNotFoundError as err:
        print(f"chdav-daily skipped: {err}")
    print(
        f"{'data':<13} {'forest':<7} {'nodes':>10} {'hist rows/s':>12} {'compact rows/s':>15} {'speed-up':>9} "
        f"{'identical':>9} {'hist file':>10} {'compact file':>13} {'smaller':>8} {'memory':>7}"
    )
    for name, (X, y, Xt) in sets.items():
        binner = Binner.fit(X, 255)
        xt = np.ascontiguousarray(binner.transform(X).T)
        test = binner.transform(Xt)
        test = np.concatenate([test] * max(1, 20_000 // len(test)))[:20_000]
        for extra in (False, True):
            hist, _ = fit_forest(xt, y, n_trees=100, extra=extra, seed=0, n_threads=os.cpu_count() or 1)
            compact = CompactForest.from_hist(hist)
            compact.predict_binned(test[:100])  # compile
            a, b = hist.predict_binned(test), compact.predict_binned(test)
            th, tc = best_of(hist.predict_binned, test), best_of(compact.predict_binned, test)
            fh, fc = stored_bytes(hist.to_arrays("f_")), stored_bytes(compact.to_arrays("f_"))
            mem_h = sum(getattr(hist, k).nbytes for k in ("feature", "threshold", "left", "value", "offsets"))
            print(
                f"{name:<13} {'extra' if extra else 'random':<7} {hist.n_nodes:>10,} {len(test) / th:>12,.0f} "
                f"{len(test) / tc:>15,.0f} {th / tc:>8.2f}x {str(np.array_equal(a, b)):>9} {fh / 1e6:>8.1f}MB "
                f"{fc / 1e6:>11.1f}MB {fh / fc:>7.2f}x {mem_h / compact.nbytes:>6.2f}x"
            )


if __name__ == "__main__":
    main()
