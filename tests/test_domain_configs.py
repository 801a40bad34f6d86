"""The four product-domain configurations: each passes --dry-run and runs end to end
on a small window of its real grid (on the lazy demo world, as the real inputs are
not on the test machine)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.conftest import REPO
from uflux_xr.grid.upscale import upscale
from uflux_xr.io.resumable import is_complete
from uflux_xr.models import load_model
from uflux_xr.workflow.cli import main, parse_window
from uflux_xr.workflow.config import load_config
from uflux_xr.workflow.pipeline import prepare_inputs
from uflux_xr.workflow.plan import measure_throughput, plan_run

DOMAINS = {
    "global_monthly_025": ("time=0:2,lat=400:430,lon=700:730", (240, 720, 1440), "EPSG:4326"),
    "europe_daily_025": ("time=0:4,lat=60:90,lon=100:130", (7305, 152, 280), "EPSG:4326"),
    "europe_biannual_100m": ("time=0:2,y=20000:20030,x=20000:20030", (40, 41_000, 50_000), "EPSG:3035"),
    "uk_daily_100m": ("time=0:4,y=4000:4030,x=2000:2030", (366, 12_500, 7_000), "EPSG:27700"),
}


def _config(name):
    return load_config(REPO / "configs" / f"{name}.yaml", demo_inputs=True)


@pytest.mark.parametrize("name", DOMAINS)
def test_domain_config_grid_and_ensemble(name):
    config = _config(name)
    _, shape, crs = DOMAINS[name]
    assert config.domain.shape == shape and config.domain.crs == crs
    labels = [m.label for m in config.ensemble.member_specs]
    # UFLUX's enumeration: vegetation proxy sets x model kinds; each member sees one proxy.
    assert len(labels) == 12 and len(set(labels)) == 12
    assert {m.split("-")[0] for m in labels} == {"NIRv", "EVI2", "NDVI", "SIF"}
    for spec in config.ensemble.member_specs:
        proxies = [p for p in ("NIRv", "EVI2", "NDVI", "SIF") if p in spec.predictors]
        assert proxies == [spec.label.split("-")[0]]
        assert {"TA", "SW_IN", "VPD", "SWC", "DOY_SIN", "DOY_COS", "IGBP"} <= set(spec.predictors)
    assert len(labels) * len(config.fluxes) == 60


@pytest.mark.parametrize("name", DOMAINS)
def test_dry_run_plans_the_whole_domain(name, capsys):
    config = _config(name)
    assert (
        main(["run", str(REPO / "configs" / f"{name}.yaml"), "--out", "unused", "--dry-run", "--throughput", "1e6"])
        == 0
    )
    text = capsys.readouterr().out
    nt, ny, nx = config.domain.shape
    ydim, xdim = config.domain.dims
    expected_chunks = (
        math.ceil(nt / config.output.chunks["time"])
        * math.ceil(ny / config.output.chunks[ydim])
        * math.ceil(nx / config.output.chunks[xdim])
    )
    assert f"chunks        {expected_chunks:,} " in text
    assert "12 members x 5 fluxes = 60 models" in text
    plan = plan_run(config, throughput=1e6)
    assert 0.2 < plan.land_fraction < 0.9
    assert plan.predictions == pytest.approx(nt * ny * nx * plan.land_fraction * 60)
    assert plan.core_hours() == pytest.approx(plan.predictions / 1e6 / 3600)
    # Memory is set by the chunk, not the domain: the whole domain plans the same per worker as a window.
    window = {"time": slice(0, config.output.chunks["time"]), ydim: slice(0, 100), xdim: slice(0, 100)}
    assert plan_run(config, throughput=1e6, window=window).worker_thread_bytes <= plan.worker_thread_bytes
    assert "per worker" in text and "core-hours" in text and "uncompressed" in text


@pytest.mark.parametrize("name", DOMAINS)
def test_domain_runs_end_to_end_on_a_window(name, tmp_path):
    window, _, crs = DOMAINS[name]
    out = tmp_path / name
    config = str(REPO / "configs" / f"{name}.yaml")
    assert main(["run", config, "--out", str(out), "--window", window, "-q", "--demo-inputs"]) == 0
    assert is_complete(out / "product.zarr")
    product = xr.open_zarr(out / "product.zarr", consolidated=False)
    # asked for, the demo world says what it is in words nobody can miss
    assert product.attrs["title"].startswith("SYNTHETIC INPUTS (demo world, not measurements): ")
    assert product.attrs["synthetic_inputs"].startswith("yes: made from the synthetic lazy_demo world")
    assert json.loads((out / "run.json").read_text())["notes"][0].startswith("SYNTHETIC INPUTS")
    assert "SYNTHETIC INPUTS" in (out / "report.html").read_text()
    sizes = {d: s.stop - s.start for d, s in parse_window(window).items()}
    assert {d: product.sizes[d] for d in sizes} == sizes and product.sizes["member"] == 12
    assert {"GPP", "RECO", "NEE", "LE", "H", "NEE_RECO_GPP", "ET"} <= set(product.data_vars)
    gpp = product["GPP"].values
    land = np.isfinite(gpp).any(axis=(0, 1))
    assert land.any() and np.isfinite(gpp[:, :, land]).all()  # every member, every step, every land cell
    if crs != "EPSG:4326":
        assert product["crs"].attrs["crs_wkt"] and product["GPP"].attrs["grid_mapping"] == "crs"
        assert str(crs.split(":")[1]) in product["crs"].attrs["crs_wkt"]
    if name == "uk_daily_100m":
        _check_planned_tasks(name, window, out)
    totals = pd.read_csv(out / "totals.csv")
    assert set(totals.loc[totals["member"] == "ensemble", "variable"]) >= {"GPP", "RECO", "LE"}
    assert len(pd.read_csv(out / "validation" / "metrics.csv")) == 5


def _check_planned_tasks(name, window, out):
    """The dry run's task count against the real graph of the run (upscale + one write per output chunk)."""
    config = _config(name)
    window = parse_window(window)
    inputs = prepare_inputs(config, out, window)
    members = {
        d.name: {f.stem: load_model(f) for f in d.glob("*.uxm")} for d in (out / "models").iterdir() if d.is_dir()
    }
    product = upscale(members, inputs.cube)
    writes = sum(math.prod(len(c) for c in v.chunks) for v in product.data_vars.values())
    real = len(dict(product.__dask_graph__())) + writes
    assert plan_run(config, window=window, throughput=1e6).tasks == pytest.approx(real, rel=0.1)


@pytest.mark.parametrize("name", DOMAINS)
def test_missing_inputs_are_an_error_without_demo_inputs(name, tmp_path, capsys):
    # The shipped configs name files that are not here: the run stops (it no longer makes a product from
    # the demo world with one warning) and says how to go on.
    rc = main(["run", str(REPO / "configs" / f"{name}.yaml"), "--out", str(tmp_path / "o"), "--window", "time=0:1"])
    err = capsys.readouterr().err
    assert rc == 2 and "not found (data.cube / data.sites)" in err and "--demo-inputs" in err
    assert not (tmp_path / "o" / "product.zarr").exists()


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_plans_from_stored_rates(path, tmp_path, capsys, monkeypatch):
    # Every shipped configuration's dry run, as a user types it: no --throughput, nothing measured.
    monkeypatch.setenv("UFLUX_CACHE_DIR", str(tmp_path / "cache"))  # a fresh machine: the shipped rates
    if path.stem == "recipe_real_inputs":  # its inputs are made by uflux-xr prepare first
        from tests.test_recipe import recipe_in

        path = recipe_in(tmp_path)
        assert main(["prepare", str(path)]) == 0
        capsys.readouterr()
    assert main(["run", str(path), "--out", str(tmp_path / "unused"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "core-hours" in text and "shipped default of the kind" in text
    if path.stem in DOMAINS:
        assert "standing in: the input files do not exist yet" in text


def test_unknown_window_dim_is_refused(capsys):
    rc = main(["run", str(REPO / "configs" / "uk_daily_100m.yaml"), "--out", "x", "--window", "lat=0:5", "--dry-run"])
    assert rc == 2 and "unknown dim(s) ['lat']" in capsys.readouterr().err


def test_measured_throughput_is_positive_and_model_size_real():
    rate, size, rows = measure_throughput(_config("uk_daily_100m").ensemble.models[0], n_rows=20_000)
    assert rate > 1e4 and 1e4 < size < 1e8 and rows > 1000


def test_real_inputs_must_match_the_domain_grid(tmp_path):
    import yaml

    raw = yaml.safe_load((REPO / "configs" / "uk_daily_100m.yaml").read_text())
    # A 200 m cube where the config says 100 m: the run refuses it, naming the file.
    from uflux_xr.core.domain import Domain
    from uflux_xr.sources.demo.lazy import LazyWorld

    domain = Domain("EPSG:27700", (0, 4000), (300_000, 304_000), 200, "2020-01-01", "2020-01-05")
    coarse = LazyWorld(domain, seed=17, n_sites=3)
    coarse.cube({}).to_zarr(tmp_path / "cube.zarr", zarr_format=3, consolidated=False)
    coarse.sites().to_netcdf(tmp_path / "sites.nc")
    raw["data"].update(cube=str(tmp_path / "cube.zarr"), sites=str(tmp_path / "sites.nc"))
    cfg = tmp_path / "uk.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    from uflux_xr.workflow.config import load_config as load
    from uflux_xr.workflow.pipeline import prepare_inputs

    with pytest.raises(ValueError, match=r"cube.zarr: y spacing 200 differs from the domain resolution 100 m"):
        prepare_inputs(load(cfg), tmp_path / "out")


def test_dry_run_states_what_regridding_costs():
    """Nearest regridding is what lets 100 m rows repeat; the dry run bounds bilinear's cost by the plain rate."""
    plan = plan_run(_config("uk_daily_100m"), throughput=1e6)
    assert plan.regrid == "nearest"  # the lazy world's climate on a 9 km grid, given to its 100 m cells
    for tp in plan.throughput.values():
        tp.unique_fraction, tp.dedup_predictions_per_s = 0.05, 1e7  # as a sampled chunk would measure
    hours = plan.predictions / 3600
    line = next(x for x in plan.format().splitlines() if x.startswith("  regrid"))
    assert f"up to {hours / 1e6:.3g} core-hours (the plain rate) instead of {hours / 1e7:.3g}" in line
    plan.regrid = "bilinear"
    line = next(x for x in plan.format().splitlines() if x.startswith("  regrid"))
    assert line.startswith("  regrid        bilinear: every cell has its own climate values")
    assert plan_run(_config("europe_daily_025"), throughput=1e6).regrid is None  # no coarse climate to regrid


def test_full_run_core_hours_share_the_inputs_among_all_models():
    """Per member and flux: its predictions, 1/60 of making the inputs, its outputs' writes and summaries."""
    plan = plan_run(_config("uk_daily_100m"), throughput=1e6)
    # [s per cell-step] as a sample would measure them (summary: per member and output)
    plan.input_s_per_cell, plan.write_s_per_cell, plan.summary_s_per_cell = 600e-9, 10e-9, 50e-9
    member = plan.members[0]
    # 12 members x 7 outputs (5 fluxes, NEE_RECO_GPP and ET) written by 60 models: 1.4 outputs a model.
    expected = plan.predictions_per_member_flux / 1e6 + plan.cells * (600e-9 / 60 + 1.4 * 60e-9)
    assert plan.full_run_core_hours(member) == pytest.approx(expected / 3600, rel=1e-12)
    # Where the upscaler's own rate was measured, it replaces the model calls' rate.
    plan.throughput[plan.member_kinds[member]].upscaler_predictions_per_s = 5e5
    expected += plan.predictions_per_member_flux * (1 / 5e5 - 1 / 1e6)
    assert plan.full_run_core_hours(member) == pytest.approx(expected / 3600, rel=1e-12)
    assert "with inputs (shared by all models) and writing, per member and flux:" in plan.format()


def test_measured_dry_run_times_the_upscaler_and_the_passes_on_sampled_chunks():
    """The dry run fits each kind on the run's towers and times the run's own functions on two chunks."""
    config = _config("uk_daily_100m")
    small = {"xgboost": {"n_estimators": 20}, "lightgbm": {"n_estimators": 20}, "deepforest": {"n_trees": 5}}
    models = [dataclasses.replace(m, params={**m.params, **small[m.name]}) for m in config.ensemble.models]
    config = dataclasses.replace(config, ensemble=dataclasses.replace(config.ensemble, models=models))
    window = {"time": slice(0, 8), "y": slice(4000, 4700), "x": slice(2000, 2200)}  # two chunks of land
    plan = plan_run(config, window=window, measure=True)
    assert plan.sampled_chunks == 2
    assert plan.input_s_per_cell > 0 and plan.write_s_per_cell > 0 and plan.summary_s_per_cell > 0
    for kind, tp in plan.throughput.items():
        assert tp.unique_fraction is not None and 0 < tp.unique_fraction < 0.5, kind  # 9 km climate repeats
        assert tp.upscaler_predictions_per_s and tp.upscaler_predictions_per_s > 0, kind
    text = plan.format()
    assert "upscaler      predictions/s per core and model through the upscaler's block function" in text
    assert "ns per cell-step, member and output for the statistics and totals" in text


def test_measured_dry_run_of_a_hybrid_with_an_annual_maximum_predictor(tmp_path, monkeypatch):
    """NIRv_MAX is derived from the whole year of NIRv before the dry run cuts its sample chunks (it used to
    stop with a KeyError), the calibration models are hybrids as the run's (they were pure trees), and a
    time window of the lazy world is refused as the run refuses it."""
    import yaml

    import uflux_xr.models

    raw = yaml.safe_load((REPO / "configs" / "uk_daily_100m.yaml").read_text())
    raw["ensemble"]["proxies"] = {"NIRv": ["NIRv", "NIRv_MAX"]}
    raw["models"] = [{"name": "lightgbm", "baseline": "auto", "params": {"n_estimators": 10}}]
    raw["data"] |= {"cube": str(tmp_path / "none.zarr"), "sites": str(tmp_path / "none.nc")}  # lazy fallback
    path = tmp_path / "maxima.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    baselines = []
    train = uflux_xr.models.train

    def spy(*args, **kwargs):
        baselines.append(kwargs.get("baseline"))
        return train(*args, **kwargs)

    monkeypatch.setattr(uflux_xr.models, "train", spy)
    plan = plan_run(config, window={"y": slice(4000, 4300), "x": slice(2000, 2100)}, measure=True)
    assert plan.sampled_chunks >= 1
    assert plan.throughput["lightgbm"].upscaler_predictions_per_s > 0
    assert len(baselines) == len(config.fluxes) and set(baselines) == {"auto"}
    with pytest.raises(ValueError, match=r"\['NIRv_MAX'\] are annual maxima.*without a time window"):
        plan_run(config, window={"time": slice(0, 8), "y": slice(4000, 4300), "x": slice(2000, 2100)}, measure=True)
