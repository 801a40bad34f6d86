"""Memory is bounded by the chunk, not the domain: the peak memory of a dask worker
process stays the same while the domain it produces grows 4x, and within the
dry-run's prediction."""

from __future__ import annotations

import dataclasses
import importlib
import resource

import pytest
from distributed import Client, LocalCluster

from tests.conftest import REPO
from uflux_xr.grid.upscale import upscale
from uflux_xr.io.resumable import write_resumable
from uflux_xr.models import train
from uflux_xr.sources.demo.lazy import LazyWorld, site_table
from uflux_xr.workflow.config import load_config
from uflux_xr.workflow.plan import plan_run

CHUNKS = {"time": 8, "y": 250, "x": 250}  # 0.5 M cells per chunk
FEATURES = ["TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv", "IGBP", "DOY_SIN", "DOY_COS"]


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _worker_peak_increase(world, model_path, window, out) -> int:
    """Bytes by which one single-threaded worker's peak RSS grows while it writes the window's product."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            # Warm the worker: libraries imported and the model loaded, as after the first task.
            client.run(lambda: importlib.import_module("uflux_xr.grid.upscale").cached_model(model_path) and None)
            before = next(iter(client.run(_peak_rss_bytes).values()))
            cube = world.cube(CHUNKS, ["TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv"], window)
            write_resumable(upscale({"GPP": [model_path]}, cube), out, progress=False)
            after = next(iter(client.run(_peak_rss_bytes).values()))
    return after - before


@pytest.mark.slow
def test_worker_peak_memory_does_not_grow_with_the_domain(tmp_path):
    config = load_config(REPO / "configs" / "uk_daily_100m.yaml", demo_inputs=True)
    world = LazyWorld(config.domain, seed=config.data.seed, n_sites=20)
    table = site_table(world, FEATURES, ["GPP", "GPP_QC"])
    model = train(table, "GPP", FEATURES, model="xgboost", n_estimators=30, max_depth=4)
    model_path = str(model.save(tmp_path / "GPP.uxm"))

    small = {"time": slice(0, 8), "y": slice(4000, 4500), "x": slice(2000, 2500)}  # 4 chunks
    large = {"time": slice(0, 8), "y": slice(4000, 5000), "x": slice(2000, 3000)}  # 16 chunks, 4x the cells
    grow_small = _worker_peak_increase(world, model_path, small, tmp_path / "small.zarr")
    grow_large = _worker_peak_increase(world, model_path, large, tmp_path / "large.zarr")

    mb = 1e6
    # If memory followed the domain, the large run would need 4x the small one's growth.
    assert grow_large <= 1.3 * grow_small + 40 * mb, (grow_small / mb, grow_large / mb)
    # And the dry run's per-thread model (which counts no sharing) bounds what a task held.
    plan = plan_run(
        dataclasses.replace(config, output=dataclasses.replace(config.output, chunks=CHUNKS)),
        window=large,
        throughput=1e6,
    )
    assert grow_large <= plan.worker_thread_bytes, (grow_large / mb, plan.worker_thread_bytes / mb)
