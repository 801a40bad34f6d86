import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

import uflux_xr as ux
from uflux_xr.workflow.cli import main

from .conftest import SHARED_DATA

TINY = {
    "name": "tiny",
    "data": {
        "source": "demo",
        "seed": 1,
        "domain": {"lat": [44, 52], "lon": [2, 12], "resolution": 1.0},
        "period": {"start": "2020-04-01", "end": "2020-06-30"},
        "n_sites": 12,
    },
    "predictors": ["TA", "SW_IN", "VPD", "SWC", "NIRv", "DOY_SIN", "DOY_COS"],
    "fluxes": ["GPP", "RECO", "LE"],
    "models": [
        {"name": "xgboost", "params": {"n_estimators": 20}},
        {"name": "lightgbm", "params": {"n_estimators": 20}},
    ],
    "members": 1,
    "validation": {"cv": "kfold", "n_splits": 3},
    "explain": {"enabled": True, "period": ["2020-06-01", "2020-06-30"], "fluxes": ["GPP", "LE"], "every": 2},
    "output": {"chunks": {"time": 30}},
}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_run_end_to_end(tiny_config, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(tiny_config), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Validation (kfold, xgboost)" in printed and "against the demo world's truth" in printed
    nc = xr.open_dataset(out / "product.nc")
    zr = xr.open_zarr(out / "product.zarr", consolidated=False)
    assert nc.sizes["member"] == 2 and set(nc["member_name"].values) == {"xgboost-0", "lightgbm-0"}
    np.testing.assert_allclose(nc["GPP"].values, zr["GPP"].values, equal_nan=True)
    assert {"GPP", "RECO", "LE", "NEE_RECO_GPP", "ET"} <= set(nc.data_vars)
    assert "tiny.yaml" in nc.attrs["history"]
    # The explain section: maps of June and the importance table, announced in the summary.
    assert "Leading drivers (2020-06-01T12:00:00 to 2020-06-29T12:00:00 (15 steps, one in every 2)" in printed
    maps = xr.open_dataset(out / "explanations" / "explanation.nc")
    assert {"GPP_leading_driver", "LE_abs_contribution"} <= set(maps.data_vars) and "RECO_n_steps" not in maps
    assert (
        int(maps["GPP_n_steps"].max()) == 15
        and "TreeSHAP (XGBoost pred_contribs)" in maps.attrs["uflux_explain_methods"]
    )
    importance = pd.read_csv(out / "explanations" / "importance.csv")
    assert set(importance["variable"]) == {"GPP", "LE"}
    assert importance.groupby("variable")["share"].sum().round(6).eq(100).all()
    assert "What drives the maps" in (out / "report.html").read_text()
    metrics = pd.read_csv(out / "validation" / "metrics.csv")
    assert list(metrics["target"]) == ["GPP", "RECO", "LE"]
    assert (out / "validation" / "by_igbp.csv").exists() and (out / "validation" / "by_site.csv").exists()
    assert len(list((out / "models").glob("*/*.uxm"))) == 6
    truth = pd.read_csv(out / "product_vs_truth.csv").set_index("variable")
    assert truth.loc["GPP", "nse"] > 0.8
    stats = xr.open_zarr(out / "product_stats.zarr", consolidated=False)
    np.testing.assert_allclose(stats["GPP_mean"].values, zr["GPP"].mean("member").values, rtol=1e-6)
    assert int(stats["GPP_count"].max()) == 2
    totals = pd.read_csv(out / "totals.csv")
    gpp = totals[totals["variable"] == "GPP"].set_index("member")
    assert set(gpp.index) == {"xgboost-0", "lightgbm-0", "ensemble"} and set(gpp["units"]) == {"Pg yr-1"}
    assert gpp.loc["ensemble", "total"] == pytest.approx(gpp.loc[["xgboost-0", "lightgbm-0"], "total"].mean())
    # The same command again: models are reused and the complete product is left as it is.
    stamp = zr.attrs["date_created"]
    assert main(["run", str(tiny_config), "--out", str(out), "--quiet"]) == 0
    assert xr.open_zarr(out / "product.zarr", consolidated=False).attrs["date_created"] == stamp


def test_run_on_a_local_cluster_matches_threaded(tiny_config, tmp_path, caplog, recwarn):
    assert main(["run", str(tiny_config), "--out", str(tmp_path / "threaded"), "--quiet"]) == 0
    with caplog.at_level("INFO"):  # as the command line logs without --verbose
        assert main(["run", str(tiny_config), "--out", str(tmp_path / "cluster"), "--quiet", "--workers", "2"]) == 0
    # quiet: dask.distributed's INFO lines stay off, and the demo world is not shipped to the workers in a graph
    assert not [r for r in caplog.records if r.name.startswith("distributed") and r.levelno < logging.WARNING]
    assert not [w for w in recwarn if "large graph" in str(w.message)]
    a = xr.open_dataset(tmp_path / "threaded" / "product.nc")
    b = xr.open_dataset(tmp_path / "cluster" / "product.nc")
    for name in ("GPP", "RECO", "LE", "ET"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-6, equal_nan=True)


def test_bad_config_exits_2_with_message(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY, "models": [{"name": "svm"}]}))
    assert main(["run", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: models[0].name: unknown model 'svm'" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")
def test_ingest_sites(tmp_path, capsys):
    out = tmp_path / "tha.zarr"
    assert main(["ingest", "sites", str(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "DE-Tha" in printed and "NEE" in printed and "missing  35.7 %" in printed
    ds = xr.open_zarr(out, consolidated=False)
    assert ds.sizes["time"] == 17520 and ds["NEE"].attrs["units"] == "umol m-2 s-1"
    daily = tmp_path / "tha_daily.nc"
    assert (
        main(
            [
                "ingest",
                "sites",
                str(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv"),
                "--out",
                str(daily),
                "--daily",
                "--min-coverage",
                "0.5",
            ]
        )
        == 0
    )
    assert xr.open_dataset(daily)["NEE"].attrs["units"] == "g m-2 d-1"


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")
def test_gapfill_command(tmp_path, capsys):
    out = tmp_path / "filled.nc"
    tsv = str(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv")
    assert main(["gapfill", tsv, "--var", "NEE", "LE", "--out", str(out), "--convention", "hesseflux"]) == 0
    printed = capsys.readouterr().out
    assert "DE-Tha NEE: 6257 gaps, 6257 filled (q1 6017, q2 198, q3 42), 0 left unfilled" in printed
    ds = xr.open_dataset(out)
    assert {"NEE_f", "NEE_fqc", "NEE_fmeth", "LE_f"} <= set(ds.data_vars)


def test_ingest_era5_and_raster(tmp_path, capsys):
    from .test_era5 import write_old_layout
    from .test_raster import target, write_band

    cube = tmp_path / "era5.nc"
    assert main(["ingest", "era5", str(write_old_layout(tmp_path / "in.nc")), "--out", str(cube), "--freq", "D"]) == 0
    assert "TA" in capsys.readouterr().out
    assert xr.open_dataset(cube)["P"].attrs["units"] == "mm d-1"
    grid = tmp_path / "grid.nc"
    target().to_netcdf(grid)
    red = tmp_path / "red.nc"
    args = ["ingest", "raster", str(write_band(tmp_path / "red.tif", 0.1, 0.3)), "--out", str(red), "--like", str(grid)]
    assert main(args) == 2
    assert "needs --like GRID and --resampling" in capsys.readouterr().err
    assert main([*args, "--resampling", "average", "--name", "red"]) == 0
    np.testing.assert_allclose(xr.open_dataset(red)["red"].values, [[0.1, 0.3], [0.1, 0.3]], atol=1e-6)


def test_console_script_help():
    done = subprocess.run(
        [sys.executable, "-m", "uflux_xr.workflow.cli", "run", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "--workers" in done.stdout and "--scheduler" in done.stdout


def test_help_and_version_answer_without_loading_the_science_stack():
    """--help and --version import only the standard library (they took 2-6 s when the package loaded eagerly)."""
    probe = (
        "import sys, uflux_xr.workflow.cli as cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('xarray', 'pandas', 'dask', 'xgboost', 'lightgbm', 'numba', 'sklearn')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "``" not in out and "Upscale flux-tower measurements" in out  # plain text, no reST markup
    version = subprocess.run(
        [sys.executable, "-m", "uflux_xr.workflow.cli", "--version"], capture_output=True, text=True
    )
    assert version.stdout.strip() == f"uflux-xr {ux.__version__}"


def test_cli_choices_are_described_and_match_the_library():
    from uflux_xr.io.towers import _READERS
    from uflux_xr.site.gapfill.options import METHODS
    from uflux_xr.workflow.cli import GAPFILL_METHODS, TOWER_FORMATS, build_parser

    assert list(GAPFILL_METHODS) == list(METHODS)
    assert set(TOWER_FORMATS) == {"auto", *_READERS}
    text = build_parser()._subparsers._group_actions[0].choices["gapfill"].format_help()
    for name in GAPFILL_METHODS:
        assert f"{name}:" in text


def test_unknown_tower_format_names_both_spellings(tmp_path):
    bad = tmp_path / "tower.txt"
    bad.write_text("something else\n1 2 3\n")
    with pytest.raises(ux.TowerFileError, match=r"format= \(command line: --format\), one of fluxnet"):
        ux.read_sites(bad)


def test_ml_baseline_option_resolves_per_variable():
    import argparse

    from uflux_xr.models.hybrid import BaselineError
    from uflux_xr.workflow.cli import _method_options

    args = argparse.Namespace(train_years="all", antecedent_days=[], time_trend=False, ml_members=2, ml_baseline="auto")
    assert _method_options(args, "ml", "RECO")["params"] == {"baseline": "lloyd_taylor"}
    assert _method_options(args, "ml", "NEE")["params"] == {"baseline": "lue_lloyd_taylor"}
    assert "params" not in _method_options(args, "svr", "RECO")  # the baseline is the tree fill's
    args.ml_baseline = "q10"
    assert _method_options(args, "ml", "RECO")["params"] == {"baseline": "q10"}
    args.ml_baseline = "none"
    assert "params" not in _method_options(args, "ml", "RECO")
    args.ml_baseline = "auto"
    with pytest.raises(BaselineError, match="no default baseline for 'SW_OUT'"):
        _method_options(args, "ml", "SW_OUT")
    args.ml_baseline = "arrhenius"
    with pytest.raises(BaselineError, match="unknown baseline 'arrhenius'"):
        _method_options(args, "ml", "RECO")


def test_python_run_shows_progress_without_logging_set_up(tmp_path):
    # ux.run from a plain Python session: the same progress lines as the command line, on stderr, and a
    # result whose repr is the run summary.
    import subprocess
    import sys
    import textwrap

    config = tmp_path / "tiny.yaml"
    config.write_text(
        textwrap.dedent(
            """
            name: tiny
            data: {source: demo, seed: 1, domain: {lat: [45, 55], lon: [0, 10], resolution: 2.0},
                   period: {start: 2020-01-01, end: 2020-02-29}, n_sites: 10}
            predictors: [TA, SW_IN, NIRv, DOY_SIN]
            fluxes: [GPP]
            models: [{name: xgboost, params: {n_estimators: 10}}]
            validation: {cv: none}
            applicability: {enabled: false}
            output: {formats: [zarr]}
            """
        )
    )
    code = f"import uflux_xr as ux; print(repr(ux.run(ux.load_config({str(config)!r}), {str(tmp_path / 'o')!r})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert "training the ensemble: 1/1 models" in done.stderr and "run finished in" in done.stderr
    assert "Products:" in done.stdout and "Timings [s]:" in done.stdout
