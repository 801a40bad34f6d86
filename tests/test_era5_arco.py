"""ERA5 from analysis-ready Zarr (the ARCO-ERA5 layout) on object storage: the same cube as from CDS files.

The stores are written here from the real CDS files of ../shared/data/real_inputs, in the layout the
ARCO-ERA5 stores use: the CDS API's long variable names, ``time``, latitudes north to south, longitudes
0-360, hourly amounts for accumulations and mean rates in W m-2 and kg m-2 s-1.  They live in the tests'
local S3 server (tests/s3_server.py).
"""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uflux_xr.io.era5 import ARCO_NAMES, ERA5Error, read_era5

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_inputs"
needs_real = pytest.mark.skipif(not REAL.exists(), reason="../shared/data/real_inputs not present")
SHORT_TO_ARCO = {short: long for long, short in ARCO_NAMES.items()}


def arco_layout(files, time=None) -> xr.Dataset:
    """CDS files as an ARCO-ERA5 store holds them (decoded values; ``time`` replaced where given)."""
    ds = (
        xr.open_mfdataset(files, combine="by_coords", compat="no_conflicts").load()
        if len(files) > 1
        else xr.open_dataset(files[0]).load()
    )
    ds = ds.rename({k: "time" for k in ("valid_time",) if k in ds.dims})
    ds = ds.drop_vars([c for c in ("expver", "number") if c in ds.variables])
    ds = ds[[v for v in ds.data_vars if v in SHORT_TO_ARCO]].rename(
        {v: SHORT_TO_ARCO[v] for v in ds.data_vars if v in SHORT_TO_ARCO}
    )
    ds = ds.sortby("latitude", ascending=False)
    ds = ds.assign_coords(longitude=ds["longitude"] % 360.0)
    if time is not None:
        ds = ds.assign_coords(time=time)
    for var in ds.variables.values():
        var.encoding = {}
    return ds


def zarr_url(name: str) -> str:
    return f"s3://uflux-test/arco/{name}"


def write_store(ds: xr.Dataset, url: str, s3) -> None:
    ds.to_zarr(url, storage_options=s3.storage_options, zarr_format=3, mode="w", consolidated=False)


@needs_real
def test_an_arco_store_on_s3_gives_the_cube_of_the_cds_file(s3):
    nc = REAL / "era5_pvlib" / "era5_testfile.nc"
    url = zarr_url("pvlib.zarr")
    write_store(arco_layout([nc]).chunk(time=24 * 31), url, s3)
    from_store = read_era5(url, freq="D", storage_options=s3.storage_options).compute()
    from_file = read_era5(nc, freq="D").compute()
    assert set(from_store.data_vars) == set(from_file.data_vars) == {"TA", "WS", "PA", "SW_IN"}
    for name in from_file.data_vars:
        np.testing.assert_allclose(from_store[name].values, from_file[name].values, rtol=1e-12, err_msg=name)
        assert from_store[name].attrs["units"] == from_file[name].attrs["units"]
    np.testing.assert_array_equal(from_store["time"].values, from_file["time"].values)


@needs_real
def test_arco_accumulations_and_a_cut_domain_match_the_cds_files(s3):
    files = sorted((REAL / "era5_zampy" / "era5").glob("*.nc"))
    url = zarr_url("zampy.zarr")
    write_store(arco_layout(files), url, s3)
    from_store = read_era5(url, storage_options=s3.storage_options).compute()
    from_files = read_era5(files).compute()
    assert set(from_store.data_vars) == {"SW_IN", "LW_IN", "P", "PA", "WS"}
    xr.testing.assert_allclose(from_store.drop_attrs(), from_files.drop_attrs(), rtol=1e-6)
    # bounds: the cells within them and one 0.25° cell around, cut before anything is read
    cut = read_era5(url, bounds=(0.3, 59.3, 0.4, 59.6), storage_options=s3.storage_options).compute()
    np.testing.assert_allclose(cut["lat"].values, [59.25, 59.5, 59.75])
    np.testing.assert_allclose(cut["lon"].values, [0.25, 0.5])
    xr.testing.assert_allclose(cut.drop_attrs(), from_files.sel(lat=cut["lat"], lon=cut["lon"]).drop_attrs())
    with pytest.raises(ERA5Error, match="nothing within"):
        read_era5(url, bounds=(20.0, 10.0, 21.0, 11.0), storage_options=s3.storage_options)
    with pytest.raises(ERA5Error, match="south <= north"):
        read_era5(url, bounds=(0.3, 59.6, 0.4, 59.3), storage_options=s3.storage_options)
    with pytest.raises(ERA5Error, match="first day comes after the last"):
        read_era5(url, period=("2020-02-01", "2020-01-01"), storage_options=s3.storage_options)


@needs_real
def test_a_month_of_a_multi_year_store_reads_only_that_months_chunks(s3):
    """Two years of hourly steps (the 2020 Copenhagen series placed on 2018-2019 time stamps), in chunks
    of two weeks: a March 2019 read asks the server for March's chunks (and the day after), nothing else."""
    nc = REAL / "era5_pvlib" / "era5_testfile.nc"
    one_year = arco_layout([nc])
    years = xr.concat([one_year] * 2, dim="time")
    time = pd.date_range("2018-01-01", periods=years.sizes["time"], freq="h")
    years = years.assign_coords(time=time)
    fortnight = 24 * 14
    url = zarr_url("years.zarr")
    write_store(years.chunk(time=fortnight), url, s3)
    s3.reset_counts()
    cube = read_era5(url, freq="D", period=("2019-03-01", "2019-03-31"), storage_options=s3.storage_options)
    cube = cube.compute()
    assert cube.sizes["time"] == 31 and str(cube["time"].values[0])[:10] == "2019-03-01"
    first = time.get_loc(pd.Timestamp("2019-03-01")) // fortnight
    last = time.get_loc(pd.Timestamp("2019-04-01")) // fortnight
    # chunks of the data variables (the coordinates, 1-D, are read whole to index the store)
    chunk_gets = [p for p in s3.gets("/uflux-test/arco/years.zarr/") if p.split("/")[4] in ARCO_NAMES and "/c/" in p]
    touched = {int(re.search(r"/c/(\d+)/", p).group(1)) for p in chunk_gets}
    n_chunks = -(-years.sizes["time"] // fortnight)
    assert touched and touched <= set(range(first, last + 1)), (sorted(touched), first, last)
    variables = {p.split("/")[4] for p in chunk_gets}
    assert len(chunk_gets) <= len(variables) * (last - first + 1)
    assert n_chunks == 53 and len(touched) <= 4
    whole = read_era5(url, freq="D", storage_options=s3.storage_options)["TA"].sel(time=cube["time"])
    np.testing.assert_allclose(cube["TA"].values, whole.values, rtol=1e-12)
