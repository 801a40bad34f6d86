"""The README's recipe "From downloads to product" end to end on the real sample files:
uflux-xr prepare (real ERA5 + real CH-Dav towers) then uflux-xr run, and the dry run's
report of what the run will find."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from uflux_xr.workflow.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CONFIG = REPO / "configs" / "recipe_real_inputs.yaml"

pytestmark = pytest.mark.skipif(not (SHARED / "real_inputs").exists(), reason="../shared/data not present")


def absolute(path: str) -> str:
    return str((CONFIG.parent / path).resolve())


def recipe_in(tmp_path: Path, **changes) -> Path:
    """The recipe config with its inputs made absolute and its outputs under tmp_path."""
    raw = yaml.safe_load(CONFIG.read_text())
    data = raw["data"]
    data["cube"], data["sites"] = str(tmp_path / "cube.zarr"), str(tmp_path / "sites.nc")
    inputs = data["inputs"]
    inputs["climate"] = [[absolute(p) for p in group] for group in inputs["climate"]]
    inputs["towers"]["files"] = absolute(inputs["towers"]["files"])
    inputs["towers"]["metadata"] = absolute(inputs["towers"]["metadata"])
    for key, value in changes.items():
        raw[key] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_recipe_prepare_then_run(tmp_path, capsys):
    config = recipe_in(tmp_path)
    assert main(["prepare", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "TA           degC" in printed and "1 site(s), 3652 daily steps" in printed
    cube = xr.open_zarr(tmp_path / "cube.zarr", consolidated=False)
    # Copenhagen 2020 from the real ERA5 point: mean TA ~9.5 °C, PA ~101 kPa; the 0.25° cell
    # centred at 55.7 N covers the two southern rows of the 0.1° domain only (north row NaN)
    assert 8.0 < float(cube["TA"].mean()) < 11.0 and 100.0 < float(cube["PA"].mean()) < 102.5
    assert np.isnan(cube["TA"].isel(lat=2).values).all() and np.isfinite(cube["TA"].isel(lat=0, time=0)).all()
    sites = xr.open_dataset(tmp_path / "sites.nc")
    assert sites["GPP"].attrs["units"] == "g m-2 d-1" and sites["PA"].attrs["units"] == "kPa"
    assert 80 < float(sites["PA"].mean()) < 87  # Davos at 1,639 m, read from hPa

    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Trained on the towers' own drivers" in printed
    product = xr.open_zarr(tmp_path / "out" / "product.zarr", consolidated=False)
    gpp = product["GPP"].isel(member=0)
    finite = gpp.notnull().values
    assert finite[:, :2, :].mean() > 0.99 and not finite[:, 2, :].any()  # values where the cube has them
    july, january = float(gpp.sel(time="2020-07").mean()), float(gpp.sel(time="2020-01").mean())
    assert july > january + 2.0  # a spruce forest's GPP in Copenhagen's summer vs winter [g C m-2 d-1]
    totals = pd.read_csv(tmp_path / "out" / "totals.csv")
    assert {"GPP", "RECO"} <= set(totals["variable"]) and (totals["total"] > 0).all()


def test_dry_run_reports_what_the_run_will_find(tmp_path, capsys):
    config = recipe_in(tmp_path)
    assert main(["prepare", str(config)]) == 0
    capsys.readouterr()
    assert main(["run", str(config), "--out", "x", "--dry-run", "--throughput", "1e6"]) == 0
    assert "trained on the towers' own drivers (training.drivers: towers): 3,652 site-steps" in capsys.readouterr().out
    on_cube = recipe_in(tmp_path, training={})  # train on the cube at the towers: Davos is not in it
    assert main(["run", str(on_cube), "--out", "x", "--dry-run", "--throughput", "1e6"]) == 0
    out = capsys.readouterr().out
    assert "training      0 tower rows" in out
    assert "the run would stop: towers at a step" not in out and "CH-Dav (lat=46.8153)" in out
    assert main(["run", str(on_cube), "--out", str(tmp_path / "o2"), "--quiet"]) == 2  # and it does stop
    assert "lie outside the cube's lat cells" in capsys.readouterr().err


def test_data_inputs_errors_name_the_key(tmp_path):
    from uflux_xr.workflow.config import ConfigError, load_config

    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"]["cube"], raw["data"]["sites"] = "c.zarr", "s.nc"
    raw["data"]["inputs"]["climate"] = [["era5_*.nc"]]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"c.yaml: data.inputs.climate\[0\]: no file matches 'era5_\*.nc'"):
        load_config(tmp_path / "c.yaml")
    raw["data"]["inputs"] = {"climate": [], "regrid": "cubic"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"data.inputs.regrid: expected 'nearest' or 'bilinear'"):
        load_config(tmp_path / "c.yaml")
    raw["data"]["inputs"] = {}
    raw["training"] = {"drivers": "satellite"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"training.drivers: expected 'cube' or 'towers'"):
        load_config(tmp_path / "c.yaml")


def test_one_cell_cube_is_refused_before_anything_is_written(tmp_path, capsys):
    config = recipe_in(tmp_path)
    assert main(["prepare", str(config)]) == 0
    one = xr.open_zarr(tmp_path / "cube.zarr", consolidated=False).isel(lat=[0], lon=[0]).load()
    for name in one.variables:
        one[name].encoding = {}
    one.chunk({"time": 64}).to_zarr(tmp_path / "one.zarr", mode="w", consolidated=False)
    raw = yaml.safe_load(config.read_text())
    raw["data"]["cube"] = str(tmp_path / "one.zarr")
    config.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "one cell along ['lat', 'lon']: cell sizes (and so the area-weighted totals) are undefined" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out" / "product.zarr").exists()


def test_cube_that_covers_the_tower_trains_on_the_cube_at_the_tower(tmp_path, capsys):
    # A synthetic ERA5 January 2015 over Davos (the real CH-Dav towers overlap it in place and time):
    # the dry run reports the overlap, the run extracts the tower's cell and reports the distance.
    hours = pd.date_range("2015-01-01 00:00", "2015-02-01 00:00", freq="h")
    lat, lon = 47.0 - 0.25 * np.arange(4), 9.5 + 0.25 * np.arange(4)
    shape = (len(hours), 4, 4)
    sw = np.clip(np.sin(np.pi * ((hours.hour.to_numpy() - 7) / 10)), 0, None) * 400.0 * 3600
    era5 = xr.Dataset(
        {
            "t2m": (("valid_time", "latitude", "longitude"), np.full(shape, 268.0), {"units": "K"}),
            "ssrd": (("valid_time", "latitude", "longitude"), sw[:, None, None] * np.ones(shape), {"units": "J m**-2"}),
        },
        coords={"valid_time": hours, "latitude": lat, "longitude": lon},
    )
    era5.to_netcdf(tmp_path / "era5_davos_2015-01.nc")
    raw = yaml.safe_load(recipe_in(tmp_path).read_text())
    raw["data"]["domain"] = {"crs": "EPSG:4326", "lat": [46.5, 47.0], "lon": [9.5, 10.2], "resolution": 0.1}
    raw["data"]["period"] = {"start": "2015-01-01", "end": "2015-01-31", "step": "daily"}
    raw["data"]["inputs"]["climate"] = [[str(tmp_path / "era5_davos_2015-01.nc")]]
    raw.pop("training")
    config = tmp_path / "davos.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["prepare", str(config)]) == 0
    capsys.readouterr()
    assert main(["run", str(config), "--out", "x", "--dry-run", "--throughput", "1e6"]) == 0
    out = capsys.readouterr().out
    assert "1 on the grid; 31 common time steps" in out and "31 site-steps with GPP/RECO measured" in out
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary = capsys.readouterr().out
    assert "Towers to cells: median" in summary
    # one tower: no other site to measure its days against, so no DI layers, and the summary says so
    assert "No area of applicability for GPP (GPP training rows: every row is in fold 'CH-Dav'" in summary
    cells = pd.read_csv(tmp_path / "out" / "tower_cells.csv")
    # CH-Dav (46.8153 N, 9.8559 E) lies in the 0.1° cell centred at 46.85 N, 9.85 E: ~3.8 km away
    assert cells.loc[0, "site"] == "CH-Dav" and cells.loc[0, "distance_km"] == pytest.approx(3.8, abs=0.3)
    table = pd.read_csv(tmp_path / "out" / "training_table.csv")
    assert len(table) == 31 and np.allclose(table["TA"], 268.0 - 273.15, atol=1e-4)
