"""Shared fixtures: a small demo world, a training table and trained models."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import dask
import numpy as np
import pytest

import uflux_xr as ux

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FEATURES = ["TA", "SW_IN", "VPD", "SWC", "NIRv", "IGBP", "DOY_SIN", "DOY_COS"]
FLUXES = ["GPP", "RECO", "NEE", "LE", "H"]

#: Set by .ci/run: a reference check that skips (its files absent) fails the run instead.
REQUIRE_REFERENCE_DATA = os.environ.get("UFLUX_REQUIRE_REFERENCE_DATA") == "1"
#: What the skip reasons of reference checks mention (../shared/data, its real_inputs, the ruff and mypy checks,
#: the browser that renders the reports: .ci/run installs Debian's chromium).
REFERENCE_SKIP_WORDS = ("shared/data", "ruff is not installed", "mypy is not installed", "chromium is not installed")


def pytest_collection_modifyitems(config, items):
    """Mark every test that skips without ../shared/data as ``reference_data``."""
    for item in items:
        reasons = [m.kwargs.get("reason", "") for m in item.iter_markers("skipif")]
        if any(word in r for r in reasons for word in REFERENCE_SKIP_WORDS):
            item.add_marker(pytest.mark.reference_data)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under UFLUX_REQUIRE_REFERENCE_DATA=1, a reference check that skips is a failure, not a pass."""
    outcome = yield
    report = outcome.get_result()
    if not (REQUIRE_REFERENCE_DATA and report.skipped):
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(word in reason for word in REFERENCE_SKIP_WORDS):
        report.outcome = "failed"
        report.longrepr = f"reference check skipped where it must run (UFLUX_REQUIRE_REFERENCE_DATA=1): {reason}"


class CountingScheduler:
    """dask scheduler that counts computes and fails past ``max_computes`` (as xarray's tests do)."""

    def __init__(self, max_computes: int = 0):
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(f"too many dask computes: {self.total_computes} > {self.max_computes}")
        return dask.get(dsk, keys, **kwargs)


def raise_if_dask_computes(max_computes: int = 0):
    return dask.config.set(scheduler=CountingScheduler(max_computes))


#: A small world: 1° cells over 12° x 14°, half a year, 16 towers (seed 3).
SMALL_WORLD = {
    "lat_range": (40.0, 52.0),
    "lon_range": (0.0, 14.0),
    "resolution": 1.0,
    "start": "2020-01-01",
    "end": "2020-06-30",
    "n_sites": 16,
}


@pytest.fixture(scope="session")
def world():
    return ux.demo.make_world(seed=3, **SMALL_WORLD)


def predict_concurrently(predict, n_threads: int = 3) -> list:
    """Results of ``predict()`` called from ``n_threads`` threads at once."""
    out = [None] * n_threads

    def work(i):
        out[i] = predict()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def assert_product_matches_table(product, name, model, world, table):
    """The product at the tower cells equals the model's prediction on the training table."""
    at_towers = (
        product[name]
        .isel(member=0)
        .sel(lat=world.sites["lat"], lon=world.sites["lon"], method="nearest")
        .transpose("site", "time")
    )
    expected = model.predict(table).reshape(world.sites.sizes["site"], world.sites.sizes["time"])
    if name in ("GPP", "RECO"):  # products never negative (uflux_xr.grid.upscale.NON_NEGATIVE_FLUXES)
        expected = np.where(expected < 0, 0.0, expected)
    np.testing.assert_allclose(at_towers.values, expected, rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.fixture(scope="session")
def table(world):
    targets = FLUXES + [f"{f}_QC" for f in FLUXES]
    return ux.extract_at_sites(world.cube, world.sites, FEATURES, targets=targets)


@pytest.fixture(scope="session")
def small_models(table, tmp_path_factory):
    """Two saved members (xgboost, lightgbm) for GPP, RECO and LE, small and fast."""
    root = tmp_path_factory.mktemp("models")
    members = {}
    for kind in ("xgboost", "lightgbm"):
        members[kind] = {}
        for flux in ("GPP", "RECO", "LE"):
            m = ux.train(table, flux, FEATURES, model=kind, n_estimators=30)
            m.save(root / kind / f"{flux}.uxm")
            members[kind][flux] = m
    return members


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The README's demo job (configs/demo.yaml) run once for the session, report included."""
    config = ux.load_config(REPO / "configs" / "demo.yaml")
    return ux.run(config, tmp_path_factory.mktemp("demo_run"), progress=False)


@pytest.fixture(scope="session")
def s3():
    """A local S3 server (moto, 127.0.0.1, a free port) with a bucket ``uflux-test``; counts its requests.

    Dummy credentials and ``AWS_ENDPOINT_URL`` are in the environment while it runs, so subprocesses and
    dask workers reach it too.  See ``tests/s3_server.py``.
    """
    from tests.s3_server import CountingServer, s3_environment

    server = CountingServer().start()
    with s3_environment(server.endpoint):
        server.make_bucket("uflux-test")
        yield server
    server.stop()
