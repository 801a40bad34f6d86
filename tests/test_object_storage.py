"""Products, inputs and models on object storage: a local S3 server (moto) stands in for the cloud."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr

from tests.test_resumable import CHILD, lazy_product
from uflux_xr.io.resumable import is_complete, plan_regions, write_resumable
from uflux_xr.io.storage import StorageError, filesystem, is_url, join, redact


def test_urls_and_local_paths_are_told_apart():
    assert is_url("s3://bucket/run") and is_url("gs://b/k") and is_url("memory://x")
    assert not is_url("/data/run") and not is_url("run/product.zarr") and not is_url("file:///data/run")
    assert join("s3://bucket/run/", "/models", "GPP.uxm") == "s3://bucket/run/models/GPP.uxm"
    # what a log line shows of a URL: no credentials, no signed query
    assert redact("s3://key:secret@bucket/run?X-Amz-Signature=abc") == "s3://bucket/run"
    assert redact("/data/run") == "/data/run"


def test_an_unknown_protocol_is_a_clear_error():
    with pytest.raises(StorageError, match="nosuchprotocol://"):
        filesystem("nosuchprotocol://bucket/run")


def _opens(url, s3) -> bool:
    try:
        xr.open_zarr(url, storage_options=s3.storage_options, consolidated=False)
    except (FileNotFoundError, ValueError, KeyError):
        return False
    return True


def test_an_interrupted_write_on_s3_does_not_open_and_resumes(s3, tmp_path):
    url = "s3://uflux-test/interrupted/product.zarr"
    options = s3.storage_options
    flag = tmp_path / "fail"
    flag.touch()
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_resumable(lazy_product(fail_flag=str(flag)), url, progress=False, storage_options=options)
    fs, root = filesystem(url, options)
    fs.invalidate_cache()
    done = fs.ls(root + ".partial/done", detail=False)
    assert 0 < len(done) < 6
    assert fs.exists(root + "/GPP/zarr.json")  # the arrays are there ...
    assert not is_complete(url, options) and not _opens(url, s3)  # ... but no product opens
    flag.unlink()
    calls = []
    assert write_resumable(lazy_product(calls=calls), url, progress=False, storage_options=options) == url
    assert len(calls) == 4 * (6 - len(done))  # only the regions not recorded were computed (4 blocks each)
    assert is_complete(url, options)
    fs.invalidate_cache()
    assert not fs.exists(root + ".partial")
    out = xr.open_zarr(url, storage_options=options)  # consolidated: opens without a warning
    np.testing.assert_array_equal(out["GPP"].values, lazy_product()["GPP"].values)
    local = tmp_path / "product.zarr"
    write_resumable(lazy_product(), local, progress=False)
    xr.testing.assert_identical(out.drop_attrs(), xr.open_zarr(local).drop_attrs())
    calls.clear()
    write_resumable(lazy_product(calls=calls), url, progress=False, storage_options=options)
    assert calls == []  # the same job again: nothing to do


def test_a_different_product_on_s3_never_resumes_an_unfinished_one_and_replaces_a_finished_one(s3, tmp_path):
    url = "s3://uflux-test/different/product.zarr"
    options = s3.storage_options
    flag = tmp_path / "fail"
    flag.touch()
    with pytest.raises(RuntimeError):
        write_resumable(lazy_product(fail_flag=str(flag)), url, progress=False, storage_options=options)
    with pytest.raises(ValueError, match="unfinished write of a different product"):
        write_resumable(lazy_product(n_time=14), url, progress=False, storage_options=options)
    flag.unlink()
    write_resumable(lazy_product(), url, progress=False, storage_options=options)
    write_resumable(lazy_product(n_time=14), url, progress=False, storage_options=options)  # another job
    out = xr.open_zarr(url, storage_options=options)
    assert out.sizes["time"] == 14
    np.testing.assert_array_equal(out["GPP"].values, lazy_product(n_time=14)["GPP"].values)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_product_on_s3(s3, tmp_path, world, small_models):
    """The SIGKILL test of test_resumable.py, with the product in the S3 server: the child process reaches
    it through AWS_ENDPOINT_URL and the dummy credentials the fixture set."""
    cube_path = tmp_path / "cube.zarr"
    world.cube.chunk({"time": 4}).to_zarr(cube_path, zarr_format=3, consolidated=False)
    model_path = tmp_path / "GPP.uxm"
    small_models["xgboost"]["GPP"].save(model_path)
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))

    def command(dest):
        return [sys.executable, str(script), str(cube_path), str(model_path), dest]

    reference = "s3://uflux-test/killed/reference.zarr"
    subprocess.run(command(reference), check=True, timeout=300, env=os.environ)
    url = "s3://uflux-test/killed/product.zarr"
    fs, root = filesystem(url, s3.storage_options)
    child = subprocess.Popen(command(url), env=os.environ)
    deadline = time.monotonic() + 240
    while True:
        fs.invalidate_cache()
        if fs.exists(root + ".partial/done") and len(fs.ls(root + ".partial/done")) >= 3:
            break
        assert child.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    n_regions = len(plan_regions(xr.open_zarr(reference, consolidated=False)[["GPP"]].chunk({"time": 4})))
    fs.invalidate_cache()
    assert 3 <= len(fs.ls(root + ".partial/done")) < n_regions
    assert not is_complete(url) and not _opens(url, s3)  # the killed product never opens, let alone as complete
    subprocess.run(command(url), check=True, timeout=300, env=os.environ)
    assert is_complete(url)
    a, b = (xr.open_zarr(p, consolidated=False) for p in (reference, url))
    np.testing.assert_array_equal(a["GPP"].values, b["GPP"].values)
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())


RUN_CONFIG = """\
name: s3-run
title: a small run whose inputs, models and product are in the local S3 server
data: {{source: files, cube: {cube}, sites: {sites}}}
predictors: [TA, SW_IN, VPD, SWC, NIRv, IGBP, DOY_SIN, DOY_COS]
fluxes: [GPP, LE]
models:
  - name: xgboost
    params: {{n_estimators: 40, max_depth: 4}}
members: 2
validation: {{cv: none}}
output:
  formats: [zarr, netcdf]
  chunks: {{time: 46}}
{storage}"""


def _inputs(tmp_path, world):
    """The demo world's cube and towers, on the local disk and in the bucket (the same bytes)."""
    from uflux_xr.io.storage import upload_folder

    local = tmp_path / "inputs"
    world.cube.isel(time=slice(0, 92)).chunk({"time": 46}).to_zarr(
        local / "cube.zarr", zarr_format=3, consolidated=False
    )
    world.sites.isel(time=slice(0, 92)).to_netcdf(local / "sites.nc")
    upload_folder(local, "s3://uflux-test/run-inputs")
    return local


def _run_config(tmp_path, name: str, cube: str, sites: str, storage: str = ""):
    from uflux_xr.workflow.config import load_config

    path = tmp_path / f"{name}.yaml"
    path.write_text(RUN_CONFIG.format(cube=cube, sites=sites, storage=storage))
    return load_config(path)


def _same_product(url: str, local) -> None:
    a = xr.open_zarr(url)
    b = xr.open_zarr(local)
    stamped = ("date_created", "date_modified", "history", "id", "uflux_job_fingerprint")
    for name in b.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert {k: v for k, v in a.attrs.items() if k not in stamped} == {
        k: v for k, v in b.attrs.items() if k not in stamped
    }


@pytest.mark.slow
@pytest.mark.parametrize("workers", [None, 2])
def test_a_run_with_inputs_models_and_product_in_s3_makes_the_local_runs_product(
    s3, tmp_path, world, workers, monkeypatch
):
    """``uflux-xr run`` with ``s3://`` in the configuration and in ``--out`` (here ``ux.run`` and, with
    workers, the CLI's local cluster): the product equals the run's on the local disk, bit for bit.  The
    endpoint comes from the configuration's ``storage_options`` only (not the environment), so the
    workers get it from the run too."""
    from uflux_xr.io.storage import exists, fsspec_defaults
    from uflux_xr.workflow.cli import _scheduler
    from uflux_xr.workflow.pipeline import run

    local = _inputs(tmp_path, world)
    on_disk = _run_config(tmp_path, "disk", str(local / "cube.zarr"), str(local / "sites.nc"))
    in_s3 = _run_config(
        tmp_path,
        "s3",
        "s3://uflux-test/run-inputs/cube.zarr",
        "s3://uflux-test/run-inputs/sites.nc",
        storage=f"storage_options: {{s3: {{endpoint_url: '{s3.endpoint}'}}}}\n",
    )
    assert in_s3.storage_options == {"s3": {"endpoint_url": s3.endpoint}}
    run(on_disk, tmp_path / "disk-run", progress=False, report=workers is None)
    url = f"s3://uflux-test/runs/workers-{workers}"
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the workers start without it
    with _scheduler(workers, None):
        result = run(in_s3, url, progress=False, report=workers is None)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    assert result.out_dir == url and result.products["zarr"] == f"{url}/product.zarr"
    for name in ("product.nc", "run.json", "totals.csv", "models/fingerprint.txt", "product_stats.zarr/zarr.json"):
        assert exists(f"{url}/{name}"), name
    if workers is None:
        assert result.products["report"] == f"{url}/report.html" and exists(f"{url}/report.html")
    with fsspec_defaults({"s3": {}}):  # nothing of the run's settings is left behind in this process
        import fsspec.config

        assert "endpoint_url" not in fsspec.config.conf.get("s3", {})
    assert not exists(f"{url}/product.zarr.partial")
    assert is_complete(f"{url}/product.zarr")
    _same_product(f"{url}/product.zarr", tmp_path / "disk-run" / "product.zarr")
    _same_product(f"{url}/product_stats.zarr", tmp_path / "disk-run" / "product_stats.zarr")
    assert exists(f"{url}/models/{in_s3.ensemble.member_specs[0].label}/GPP.uxm")  # what the workers loaded


def test_credentials_in_a_configuration_are_refused(tmp_path):
    from uflux_xr.workflow.config import ConfigError

    with pytest.raises(ConfigError, match=r"storage_options: \['s3.secret'\] hold credentials.*environment"):
        _run_config(tmp_path, "leaky", "s3://b/cube.zarr", "s3://b/sites.nc", "storage_options: {s3: {secret: x}}\n")
    with pytest.raises(ConfigError, match="options per protocol"):
        _run_config(tmp_path, "flat", "s3://b/cube.zarr", "s3://b/sites.nc", "storage_options: {anon: true}\n")
    anon = "storage_options: {gs: {token: anon}}\n"
    public = _run_config(tmp_path, "gcs", "gs://b/cube.zarr", "gs://b/sites.nc", anon)
    assert public.storage_options == {"gs": {"token": "anon"}} and public.data.cube_path == "gs://b/cube.zarr"
