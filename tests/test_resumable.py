"""Resumable Zarr products: regions, records, restarts after failures and after SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uflux_xr.io.resumable import is_complete, partial_path, plan_regions, write_resumable


def lazy_product(n_time=12, fail_flag=None, calls=None):
    """(member, time, lat, lon) product, chunked 2 days x 3 lat rows; a block fails while ``fail_flag`` exists."""
    time_ = pd.date_range("2020-01-01 12:00", periods=n_time, freq="D")
    base = da.arange(2 * n_time * 6 * 4, dtype="float32").reshape(2, n_time, 6, 4).rechunk((1, 2, 3, 4))

    def block(x, block_info=None):
        if calls is not None:
            calls.append(block_info[0]["chunk-location"])
        if fail_flag is not None and os.path.exists(fail_flag) and block_info[0]["chunk-location"][1] >= 3:
            raise RuntimeError("simulated crash")
        return x * 2.0

    data = base.map_blocks(block, dtype="float32")
    return xr.Dataset(
        {"GPP": (("member", "time", "lat", "lon"), data, {"units": "g m-2 d-1"})},
        coords={
            "member": ["a", "b"],
            "time": time_,
            "lat": [50.5, 51.5, 52.5, 53.5, 54.5, 55.5],
            "lon": [0, 1, 2, 3.0],
        },
    )


def test_regions_are_whole_chunks_covering_the_product():
    ds = lazy_product()
    regions = plan_regions(ds)
    assert len(regions) == 6  # one per time chunk; members, lat and lon whole
    assert regions[0] == {"member": (0, 2), "time": (0, 2), "lat": (0, 6), "lon": (0, 4)}
    tiles = plan_regions(ds, {"time": 3, "lat": 1, "member": 2})
    assert len(tiles) == 2 * 2 and {r["lat"] for r in tiles} == {(0, 3), (3, 6)}


def test_an_interrupted_write_is_never_complete_and_resumes(tmp_path):
    flag = tmp_path / "fail"
    flag.touch()
    dest = tmp_path / "product.zarr"
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_resumable(lazy_product(fail_flag=str(flag)), dest, progress=False)
    assert not dest.exists() and not is_complete(dest)
    done = sorted(p.name for p in (partial_path(dest) / "done").iterdir())
    assert 0 < len(done) < 6
    flag.unlink()
    calls = []
    write_resumable(lazy_product(calls=calls), dest, progress=False)
    assert is_complete(dest) and not partial_path(dest).exists()
    assert len(calls) == 4 * (6 - len(done))  # only the regions not recorded were computed (4 blocks each)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consolidated at completion: a user's plain open warns of nothing
        out = xr.open_zarr(dest)
    np.testing.assert_array_equal(out["GPP"].values, lazy_product()["GPP"].values)
    assert out.attrs["uflux_complete"] == "true"
    calls.clear()
    write_resumable(lazy_product(calls=calls), dest, progress=False)  # same job again: nothing to do
    assert calls == []


def test_a_different_product_never_resumes_an_unfinished_one(tmp_path):
    flag = tmp_path / "fail"
    flag.touch()
    dest = tmp_path / "product.zarr"
    with pytest.raises(RuntimeError):
        write_resumable(lazy_product(fail_flag=str(flag)), dest, progress=False)
    with pytest.raises(ValueError, match="unfinished write of a different product"):
        write_resumable(lazy_product(n_time=14), dest, progress=False)
    with pytest.raises(ValueError, match="unfinished write of a different product"):
        write_resumable(lazy_product(), dest, identity="other models", progress=False)


CHILD = """
import time, sys
import numpy as np
import xarray as xr
import uflux_xr as ux
from uflux_xr.io.resumable import write_resumable

cube = xr.open_zarr(sys.argv[1], consolidated=False)
model = ux.load_model(sys.argv[2])
product = ux.upscale({"m0": {"GPP": model}}, cube)

def slow(x):
    time.sleep(0.05)  # so that the parent can kill the run part-way
    return x

product["GPP"] = product["GPP"].copy(data=product["GPP"].data.map_blocks(slow, dtype=product["GPP"].dtype))
write_resumable(product, sys.argv[3], progress=False)
"""


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_product(tmp_path, world, small_models):
    cube_path = tmp_path / "cube.zarr"
    world.cube.chunk({"time": 4}).to_zarr(cube_path, zarr_format=3, consolidated=False)
    model_path = tmp_path / "GPP.uxm"
    small_models["xgboost"]["GPP"].save(model_path)
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))

    def command(dest):
        return [sys.executable, str(script), str(cube_path), str(model_path), str(dest)]

    reference = tmp_path / "reference.zarr"
    subprocess.run(command(reference), check=True, timeout=300)
    dest = tmp_path / "product.zarr"
    done = partial_path(dest) / "done"
    child = subprocess.Popen(command(dest))
    deadline = time.monotonic() + 240
    while not (done.exists() and len(os.listdir(done)) >= 3):
        assert child.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    n_regions = len(plan_regions(xr.open_zarr(reference, consolidated=False)[["GPP"]].chunk({"time": 4})))
    assert 3 <= len(os.listdir(done)) < n_regions
    assert not dest.exists() and not is_complete(dest)  # the killed product is never marked complete
    subprocess.run(command(dest), check=True, timeout=300)
    assert is_complete(dest) and not partial_path(dest).exists()
    a, b = (xr.open_zarr(p, consolidated=False) for p in (reference, dest))
    np.testing.assert_array_equal(a["GPP"].values, b["GPP"].values)
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
