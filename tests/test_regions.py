"""Region sums: the dense index, names, errors, and sums against a masked sum written out."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.grid.completeness import aoa_tables
from uflux_xr.grid.regions import RegionError, region_index, region_sums
from uflux_xr.workflow.config import ConfigError
from uflux_xr.workflow.pipeline import _region_layer

from .conftest import REPO

COORDS = {"lat": [50.0, 50.5, 51.0], "lon": [0.0, 0.5, 1.0, 1.5]}


def _layer(values, name="region", **attrs):
    return xr.DataArray(np.asarray(values), dims=("lat", "lon"), coords=COORDS, name=name, attrs=attrs)


def test_region_index_names_igbp_flags_and_plain_codes():
    igbp = _layer([[1, 1, 4, 0], [4, 7, 255, 1], [12, 12, 1, 0]], name="IGBP")
    index, names = region_index(igbp)
    assert names == ["ENF", "DBF", "OSH", "CRO"]  # 0 and 255 are not IGBP classes: no region
    np.testing.assert_array_equal(index.values, [[0, 0, 1, -1], [1, 2, -1, 0], [3, 3, 0, -1]])
    flagged = _layer(
        [[1.0, 2.0, np.nan, 2.0]] * 3, flag_values=np.array([1, 2]), flag_meanings="north_basin south_basin"
    )
    index, names = region_index(flagged.chunk({"lat": 1}))
    assert names == ["north_basin", "south_basin"] and index.chunks is not None
    np.testing.assert_array_equal(index.values[0], [0, 1, -1, 1])
    assert region_index(_layer([[3, 9, 3, 9]] * 3))[1] == ["3", "9"]


def test_region_layers_that_cannot_be_used_are_errors():
    with pytest.raises(RegionError, match=r"cube.nc: region layer 'region': 6 values are not whole numbers"):
        region_index(_layer([[1.0, 1.5, 2.0, 2.5]] * 3), "cube.nc")
    with pytest.raises(RegionError, match=r"codes \[3\] are not in its flag_values"):
        region_index(_layer([[1, 3, 1, 1]] * 3, flag_values=[1, 2], flag_meanings="a b"))
    timed = xr.DataArray(np.ones((2, 3, 4)), dims=("time", "lat", "lon"), coords=COORDS, name="IGBP")
    with pytest.raises(RegionError, match=r"dimension\(s\) \['time'\]; a region layer is one map"):
        region_index(timed)


def test_region_sums_equal_masked_sums_numpy_and_dask():
    rng = np.random.default_rng(5)
    codes = rng.integers(1, 4, (30, 40)).astype(np.float64)
    codes[rng.random(codes.shape) < 0.1] = np.nan
    layer = xr.DataArray(codes, dims=("lat", "lon"), name="zone")
    values = xr.DataArray(rng.normal(size=(6, 30, 40)), dims=("time", "lat", "lon"))
    values = values.assign_coords(time=pd.date_range("2020-01-01", periods=6))
    index, names = region_index(layer)
    want = np.stack([np.nansum(np.where(codes == c, values.values, 0.0), axis=(1, 2)) for c in (1, 2, 3)], axis=1)
    eager = region_sums(values, index, len(names))
    lazy = region_sums(values.chunk({"time": 4, "lat": 7, "lon": 16}), index, len(names))
    assert eager.dims == ("time", "region") and names == ["1", "2", "3"]
    # float64 sums of the same values in another order: 1e-12 relative
    np.testing.assert_allclose(eager.values, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lazy.values, want, rtol=1e-12, atol=1e-12)


def test_aoa_tables_per_region_add_up_to_the_domain():
    rng = np.random.default_rng(6)
    time = pd.date_range("2020-01-01", periods=3)
    dims = ("time", "lat", "lon")
    aoa = rng.choice([-1, 0, 1], size=(3, 3, 4), p=[0.2, 0.3, 0.5]).astype(np.int8)
    nee = rng.normal(size=(3, 3, 4)).astype(np.float32)  # both signs
    product = xr.Dataset(
        {"NEE": (dims, nee, {"units": "g C m-2 d-1"}), "NEE_AOA": (dims, aoa)}, coords={"time": time, **COORDS}
    )
    stats = xr.Dataset({"NEE_mean": (dims, np.where(aoa >= 0, nee, np.nan))}, coords=product.coords)
    regions = _layer([[1, 1, 4, 4], [1, 4, 4, 7], [7, 7, 7, 1]], name="IGBP")
    inside, table = aoa_tables(product, stats, regions)
    # the totals inside and outside the AOA, against area_weighted_total of the masked mean
    mean = stats["NEE_mean"].assign_attrs(units="g C m-2 d-1")
    for column, flag in (("total_inside_aoa", 1), ("total_outside_aoa", 0)):
        want_total = float(ux.area_weighted_total(mean.where(product["NEE_AOA"] == flag)))
        assert inside[column].iloc[0] == pytest.approx(want_total, rel=1e-12)
    # the same tables from a chunked product and statistics (one pass per chunk, summed)
    chunked_inside, chunked = aoa_tables(
        product.chunk({"time": 2, "lat": 2}), stats.chunk({"time": 2, "lat": 2}), regions
    )
    pd.testing.assert_frame_equal(chunked_inside, inside, rtol=1e-12)
    pd.testing.assert_frame_equal(chunked, table, rtol=1e-12)
    whole, parts = table[table["region"] == "all"], table[table["region"] != "all"]
    assert len(whole) == 3 and set(parts["region"]) == {"ENF", "DBF", "OSH"}
    assert table["area_share_inside_aoa"].dropna().between(0, 1).all()
    assert table["flux_share_inside_aoa"].dropna().between(0, 1).all()  # of |NEE|
    for t, rows in parts.groupby("time"):
        domain = whole[whole["time"] == t].iloc[0]
        assert rows["land_area_km2"].sum() == pytest.approx(domain["land_area_km2"], rel=1e-12)
        inside = (rows["area_share_inside_aoa"] * rows["land_area_km2"]).sum()
        assert inside / domain["land_area_km2"] == pytest.approx(domain["area_share_inside_aoa"], rel=1e-12)
    # the first day's ENF share written out: cell areas of the ENF land cells with a DI
    area = ux.cell_area(product).values
    enf = (regions.values == 1) & (aoa[0] >= 0)
    want = (area * (enf & (aoa[0] == 1))).sum() / (area * enf).sum()
    got = parts[(parts["region"] == "ENF") & (parts["time"] == time[0])]["area_share_inside_aoa"].iloc[0]
    assert got == pytest.approx(want, rel=1e-12)


def test_regions_config_is_checked_before_training():
    config = ux.load_config(REPO / "configs" / "demo.yaml")
    cube = xr.Dataset({"IGBP": _layer([[1, 4, 4, 1]] * 3, name="IGBP"), "TA": _layer(np.zeros((3, 4)), name="TA")})
    assert _region_layer(config, cube).name == "IGBP"  # the demo's choice
    other = dataclasses.replace(config, applicability=dataclasses.replace(config.applicability, regions="basins"))
    with pytest.raises(ConfigError, match=r"applicability.regions: 'basins' is not a variable of the cube"):
        _region_layer(other, cube)
    cube["basins"] = _layer([[0.5, 1, 1, 1]] * 3, name="basins")
    with pytest.raises(RegionError, match="demo.yaml: applicability.regions: region layer 'basins'"):
        _region_layer(other, cube)
