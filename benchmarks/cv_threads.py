"""Leave-one-site-out cross-validation: folds in parallel (the default) against one fold at a time
with every model on all cores (the earlier default), idle and beside one busy process (issue #14).

    python benchmarks/cv_threads.py        # about 2 minutes on 2 cores
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import platform
import time

import uflux_xr as ux

FEATURES = ["TA", "SW_IN", "VPD", "SWC", "NIRv", "IGBP", "DOY_SIN", "DOY_COS"]
#: The old default may take very long beside a busy process: stop waiting after this [s].
CAP_S = 180


def _busy(stop) -> None:
    while not stop.is_set():
        sum(range(10_000))


def _timed(table, fold_jobs, queue) -> None:
    t0 = time.perf_counter()
    ux.cross_validate(table, "GPP", FEATURES, model="lightgbm", cv="loso", fold_jobs=fold_jobs, n_estimators=150)
    queue.put(time.perf_counter() - t0)


def measure(table, fold_jobs) -> float:
    """Seconds, or inf past CAP_S (run in a child process so it can be stopped)."""
    queue = mp.get_context("fork").Queue()
    child = mp.get_context("fork").Process(target=_timed, args=(table, fold_jobs, queue))
    child.start()
    child.join(CAP_S)
    if child.is_alive():
        child.terminate()
        child.join()
        return float("inf")
    return queue.get()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    world = ux.demo.make_world(42)
    table = ux.extract_at_sites(world.cube, world.sites, FEATURES, targets=["GPP", "GPP_QC"])
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cores, {len(table)} rows, "
        f"{table['site'].nunique()} sites, LightGBM 150 trees"
    )
    for busy in (False, True):
        stop = mp.Event()
        hog = mp.Process(target=_busy, args=(stop,)) if busy else None
        if hog:
            hog.start()
        new, old = measure(table, None), measure(table, 1)
        if hog:
            stop.set()
            hog.join()
        label = "beside one busy process" if busy else "idle"
        print(
            f"{label}: folds in parallel, single-threaded models {new:.1f} s; one fold at a time, models on "
            f"all cores {old:.1f} s ({old / new:.1f}x)"
        )


if __name__ == "__main__":
    main()
