"""LightGBM calls in parallel threads with different thread counts: crashes with and without the gate.

LightGBM keeps its thread count in one process-wide variable, set by every call
from its own ``num_threads``; a fit with one thread beside a predict with the
default count can index past a per-thread buffer and kill the process (SIGSEGV).
Each run below trains models with one thread and predicts with the default
count, 16 at a time in 8 threads, for ``SECONDS``, in a child process, and counts
the runs that died by a signal: LightGBM called directly, then through
uflux-xr's wrappers (:data:`uflux_xr.models.boosting.LIGHTGBM_THREADS`).

    python benchmarks/lightgbm_threads.py [RUNS]     # 8 runs per way by default: about 4 minutes
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time

import lightgbm

RUNS = 8
SECONDS = 15

CHILD = """
import sys, time
from concurrent.futures import ThreadPoolExecutor
import lightgbm as lgb
import numpy as np
from uflux_xr.models.boosting import LightGBMRuntime, _lgb_build

rng = np.random.default_rng(0)
X = rng.normal(size=(2000, 8))
y = X[:, 0] + rng.normal(size=2000)
gated = sys.argv[1] == "gated"

def job(seed):
    # A short fit with one thread, then many small predictions with the default thread count: each
    # prediction sizes its per-thread buffers afresh, so the window for the race opens often.
    if gated:
        fitted = _lgb_build(random_state=seed, n_estimators=10, n_jobs=1).fit(X, y)
        runtime = LightGBMRuntime(fitted.booster_.model_to_string())
        return sum(runtime.predict(X[:300]).sum() for _ in range(20))
    fitted = lgb.LGBMRegressor(random_state=seed, n_estimators=10, n_jobs=1, verbose=-1).fit(X, y)
    booster = lgb.Booster(model_str=fitted.booster_.model_to_string())
    return sum(booster.predict(X[:300]).sum() for _ in range(20))

start, models = time.perf_counter(), 0
with ThreadPoolExecutor(8) as pool:
    while time.perf_counter() - start < float(sys.argv[2]):
        list(pool.map(job, range(16)))
        models += 16
print(models)
"""


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else RUNS
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"LightGBM {lightgbm.__version__}, {runs} runs of {SECONDS} s per way"
    )
    for way in ("direct", "gated"):
        crashed, models = 0, 0
        for _ in range(runs):
            run = subprocess.run([sys.executable, "-c", CHILD, way, str(SECONDS)], capture_output=True, text=True)
            if run.returncode < 0:
                crashed += 1
            elif run.returncode == 0:
                models += int(run.stdout.split()[-1])
            else:
                raise RuntimeError(run.stderr)
        print(
            f"{way:>6}: {crashed} of {runs} runs crashed; {models / max(runs - crashed, 1):.0f} models per finished run"
        )


if __name__ == "__main__":
    main()
