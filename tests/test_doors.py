"""Every door where data come in checks plausibility: readers, ERA5, rasters, extraction,
aggregation and the upscaler's chunks; and the run refuses a cube whose product would be
all NaN."""

import inspect

import numpy as np
import pytest

import uflux_xr as ux
from uflux_xr.core.plausibility import PlausibilityError, check_values, plausible_range
from uflux_xr.grid import extract as sites
from uflux_xr.io import cube, era5, raster, towers
from uflux_xr.site import aggregate
from uflux_xr.sources.files import FileSource
from uflux_xr.workflow.preflight import check_predictor_coverage

from .conftest import FEATURES


@pytest.mark.parametrize(
    "function",
    [
        towers._to_dataset,  # every tower reader builds its dataset here
        era5.read_era5,
        raster.read_raster,
        raster.vegetation_indices,
        sites.extract_at_sites,
        aggregate.to_daily,
        cube.build_cube,
        FileSource.read,  # a run's cube and towers from files
    ],
    ids=lambda f: f"{f.__module__}.{f.__name__}",
)
def test_every_door_calls_the_plausibility_check(function):
    source = inspect.getsource(function)
    assert "check_plausible(" in source or "screen_physical_range(" in source


def test_tower_readers_all_go_through_the_checked_builder():
    for reader in (towers.read_fluxnet, towers.read_ameriflux_base, towers.read_reddyproc, towers.read_diive_parquet):
        assert "_to_dataset(" in inspect.getsource(reader), reader.__name__


def test_upscaler_checks_each_chunk(world, small_models):
    assert "check_values(" in inspect.getsource(ux.upscale.__globals__["predict_models_block"])
    cube = world.cube.copy()
    cube["TA"] = cube["TA"] + 273.15  # kelvin values under a degC label
    product = ux.upscale({"GPP": [small_models["xgboost"]["GPP"]]}, cube.chunk({"time": 40}), derived=False)
    with pytest.raises(PlausibilityError, match=r"a chunk being predicted\): TA has .* kelvin but labelled degC"):
        product["GPP"].isel(time=slice(0, 40)).compute()


def test_ranges_by_resolution_and_expert_override():
    assert plausible_range("SW_IN", "subdaily")[:2] == (-30.0, 1400.0)
    assert plausible_range("SW_IN", "daily")[:2] == (-10.0, 500.0)
    assert plausible_range("TA_orig", "subdaily")[:2] == (-80.0, 60.0)  # variants use their variable's range
    with pytest.raises(PlausibilityError, match=r"PA has 1 of 1 values .* hPa labelled kPa"):
        check_values([836.0], "PA", "kPa", source="site.csv", resolution="subdaily")
    with ux.set_options(ranges={"PA": (30.0, 900.0)}):
        assert check_values([836.0], "PA", "kPa", source="site.csv") == 0
    with ux.set_options(range_check="warn"):
        assert check_values([836.0], "PA", "kPa", source="site.csv") == 1
    with pytest.raises(PlausibilityError):  # the context restored the default
        check_values([836.0], "PA", "kPa", source="site.csv")


def test_env_variable_turns_errors_into_warnings(monkeypatch, caplog):
    monkeypatch.setenv("UFLUX_RANGE_CHECK", "warn")
    with caplog.at_level("WARNING", logger="uflux_xr.core.plausibility"):
        assert check_values([2000.0], "SW_IN", "W m-2", source="x.nc", resolution="subdaily") == 1
    assert "x.nc: SW_IN has 1 of 1 values" in caplog.text


def test_fill_values_and_units_in_the_cause():
    with pytest.raises(PlausibilityError, match=r"fill value \(-9999\) not marked as missing"):
        check_values([12.0, -9999.0], "TA", "degC", source="f.csv")
    with pytest.raises(PlausibilityError, match=r"J m-2 accumulated over an hour"):
        check_values([0.0, 3.0e6], "SW_IN", "W m-2", source="f.nc", resolution="subdaily")


def test_cube_whose_product_would_be_all_nan_is_refused(world):
    cube = world.cube.copy()
    shares = check_predictor_coverage(cube, FEATURES)
    assert shares["all"] > 0.9
    cube["NIRv"] = cube["NIRv"].where(cube["land_mask"] == 0)  # vegetation only over the sea
    with pytest.raises(ValueError, match=r"no land cell has predictor\(s\) \['NIRv'\].*all NaN"):
        check_predictor_coverage(cube, FEATURES)


def test_daily_means_of_a_gap_filled_record_follow_fluxnet(tmp_path):
    # Half-hourly NEE with a quarter of the records missing, filled by MDV: the daily value comes from
    # NEE_f, its QC is the share of measured or good-fill records, text labels are left out.
    import pandas as pd
    import xarray as xr

    time = pd.date_range("2020-06-01 00:15", periods=48 * 20, freq="30min")
    hour = time.hour + time.minute / 60
    nee = np.where((hour > 6) & (hour < 18), -10.0, 4.0)
    missing = np.random.default_rng(0).random(time.size) < 0.25
    measured = np.where(missing, np.nan, nee)
    ds = xr.Dataset(
        {
            "NEE": (("site", "time"), measured[None], {"units": "umol m-2 s-1"}),
            "PPFD_IN": (("site", "time"), np.where(nee < 0, 1000.0, 0.0)[None], {"units": "umol m-2 s-1"}),
        },
        coords={"site": ["XX-Tst"], "time": time},
    )
    filled = ux.gapfill(ds, "NEE", method="mdv")
    assert filled["NEE_fmeth"].dtype == object
    daily = aggregate.to_daily(filled)
    assert "NEE_fmeth" not in daily and "NEE_f" not in daily
    # 12 h at -10 and 12 h at +4, every day alike, so MDV's fills are exact: mean -3 umol m-2 s-1
    np.testing.assert_allclose(daily["NEE"].values, -3.0 * 1.0377504, rtol=1e-6)
    # MDV fills within its window have quality 1, which FLUXNET's daily QC counts as good
    qc_one = (filled["NEE_fqc"] <= 1).groupby("time.date").mean().values
    np.testing.assert_allclose(daily["NEE_QC"].values[0], qc_one[0], rtol=0, atol=1e-12)
    assert float(daily["NEE_QC"].min()) > 0.9
    assert daily["PPFD_IN"].attrs["units"] == "umol m-2 s-1"
    np.testing.assert_allclose(daily["PPFD_IN"].values, 500.0)  # a photon flux stays a photon flux
