"""Raster reader on small GeoTIFFs and a NetCDF written here, with known values."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from uflux_xr.core.plausibility import PlausibilityError
from uflux_xr.io.raster import RasterError, read_raster, vegetation_indices

rioxarray = pytest.importorskip("rioxarray")


def write_band(path, left, right, crs="EPSG:4326", hole=True):
    """0.01° raster over 0–0.2° E, 50–50.2° N: ``left`` west of 0.1° E, ``right`` east of it,
    stored as int16 reflectance × 10000 with nodata -9999 (one missing pixel)."""
    x = np.arange(0.005, 0.2, 0.01)
    y = np.arange(50.195, 50.0, -0.01)
    values = np.where(x[None, :] < 0.1, left, right) * np.ones((y.size, 1))
    raw = np.round(values * 10000).astype(np.int16)
    if hole:
        raw[3, 3] = -9999
    da = xr.DataArray(raw, dims=("y", "x"), coords={"y": y, "x": x}, name="refl")
    da = da.rio.write_crs(crs).rio.write_nodata(-9999, encoded=False)
    da.attrs["scale_factor"] = 0.0001
    da.rio.to_raster(path)
    return path


def target(res=0.1):
    lat = np.arange(50.0 + res / 2, 50.2, res)
    lon = np.arange(0.0 + res / 2, 0.2, res)
    return xr.Dataset({"TA": (("lat", "lon"), np.zeros((lat.size, lon.size)))}, coords={"lat": lat, "lon": lon})


def test_scale_fill_and_average_onto_a_geographic_grid(tmp_path):
    red_path = write_band(tmp_path / "red.tif", 0.1, 0.3)
    native = read_raster(red_path)
    assert np.isnan(native.values[3, 3])  # nodata -> NaN
    assert float(native.max()) == pytest.approx(0.3, abs=1e-6)  # int16 * 0.0001
    red = read_raster(red_path, like=target(), resampling="average", name="red")
    assert red.dims == ("lat", "lon") and red.name == "red"
    np.testing.assert_allclose(red.values, [[0.1, 0.3], [0.1, 0.3]], atol=1e-6)  # NaN ignored by average
    nearest = read_raster(red_path, like=target(), resampling="nearest")
    np.testing.assert_allclose(nearest.values[:, 1], 0.3, atol=1e-6)


def test_vegetation_indices(tmp_path):
    red = read_raster(write_band(tmp_path / "red.tif", 0.1, 0.1), like=target(), resampling="average")
    nir = read_raster(write_band(tmp_path / "nir.tif", 0.4, 0.4), like=target(), resampling="average")
    vi = vegetation_indices(red, nir)
    np.testing.assert_allclose(vi["NDVI"], 0.6, atol=1e-5)  # (0.4 - 0.1) / 0.5
    np.testing.assert_allclose(vi["NIRv"], 0.24, atol=1e-5)  # NDVI * NIR
    np.testing.assert_allclose(vi["EVI2"], 2.5 * 0.3 / (0.4 + 0.24 + 1), atol=1e-5)
    with pytest.raises(RasterError, match="not on the same grid"):
        vegetation_indices(red, nir.isel(lat=slice(0, 1)))


def test_projected_target_grid(tmp_path):
    from pyproj import Transformer

    x0, y0 = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True).transform(0.1, 50.1)
    grid = xr.DataArray(
        np.zeros((5, 5)),
        dims=("y", "x"),
        coords={"y": y0 + 1000.0 * np.arange(2, -3, -1), "x": x0 + 1000.0 * np.arange(-2, 3)},
    )
    grid = grid.rio.write_crs("EPSG:27700")
    out = read_raster(write_band(tmp_path / "red.tif", 0.1, 0.3), like=grid, resampling="nearest")
    assert out.dims == ("y", "x") and str(out.rio.crs) == "EPSG:27700"
    finite = out.values[np.isfinite(out.values)]
    assert finite.size > 0 and (np.isclose(finite, 0.1) | np.isclose(finite, 0.3)).all()
    np.testing.assert_array_equal(out["x"].values, grid["x"].values)


def test_netcdf_raster(tmp_path):
    da = read_raster(write_band(tmp_path / "red.tif", 0.2, 0.2, hole=False))
    ds = da.to_dataset(name="red").rio.write_crs("EPSG:4326")
    ds.to_netcdf(tmp_path / "red.nc")
    out = read_raster(tmp_path / "red.nc", like=target(), resampling="average", variable="red")
    np.testing.assert_allclose(out.values, 0.2, atol=1e-6)


def test_errors(tmp_path):
    red = write_band(tmp_path / "red.tif", 0.1, 0.3)
    with pytest.raises(RasterError, match="resampling= is required"):
        read_raster(red, like=target())
    with pytest.raises(RasterError, match="unknown resampling 'spline'"):
        read_raster(red, like=target(), resampling="spline")
    other = write_band(tmp_path / "other.tif", 0.1, 0.3, crs="EPSG:3857")
    with pytest.raises(RasterError, match="tiles in different CRS"):
        read_raster([red, other])
    nocrs = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), coords={"y": [1.0, 0.0], "x": [0.0, 1.0]})
    with pytest.raises(RasterError, match="no CRS"):
        read_raster(red, like=nocrs, resampling="nearest")
    with pytest.raises(FileNotFoundError):
        read_raster(tmp_path / "missing.tif")


def test_raster_outside_the_grid_is_an_error(tmp_path):
    path = write_band(tmp_path / "red.tif", 0.1, 0.3)
    far = target().assign_coords(lat=target()["lat"] + 10.0)
    with pytest.raises(RasterError, match=r"red.tif: no value on the target grid: the raster .* does not overlap"):
        read_raster(path, like=far, resampling="average")


def test_unreadable_hdf4_names_the_way_out(tmp_path):
    (tmp_path / "MOD09GA.A2020001.h18v03.hdf").write_bytes(b"\x0e\x03\x13\x01" + b"\0" * 100)
    with pytest.raises(RasterError, match=r"MOD09GA.*cannot be read as a raster .*HDF4 .*gdal_translate"):
        read_raster(tmp_path / "MOD09GA.A2020001.h18v03.hdf")


MODIS = (
    Path(__file__).resolve().parents[2] / "shared/data/real_inputs/modis_rioxarray/MODIS_MYD09GQ_15TWF79_20171019.nc"
)


@pytest.mark.skipif(not MODIS.exists(), reason="../shared/data/real_inputs not present")
def test_real_modis_reflectance_without_scale_factor():
    # The file stores reflectance x 10^4 and declares no scale_factor: read as is, a canonical
    # name must stop on the range check with the likely cause, and scale_factor= fixes it.
    with pytest.raises(PlausibilityError, match=r"RED has .* outside .*likely cause: reflectance stored x 10\^4"):
        read_raster(MODIS, variable="sur_refl_b01_1_MYD09GQ", name="RED")
    raw_red = read_raster(MODIS, variable="sur_refl_b01_1_MYD09GQ")
    raw_nir = read_raster(MODIS, variable="sur_refl_b02_1_MYD09GQ")
    with pytest.raises(PlausibilityError, match="RED has"):
        vegetation_indices(raw_red, raw_nir)
    red = read_raster(MODIS, variable="sur_refl_b01_1_MYD09GQ", name="RED", scale_factor=1e-4)
    nir = read_raster(MODIS, variable="sur_refl_b02_1_MYD09GQ", name="NIR", scale_factor=1e-4)
    vi = vegetation_indices(red, nir)
    # Iowa farmland on 19 October (after harvest): low NIRv, NDVI within (-1, 1)
    assert 0.0 < float(vi["NIRv"].mean()) < 0.3 and float(vi["NDVI"].max()) < 1.0


@pytest.mark.skipif(not MODIS.exists(), reason="../shared/data/real_inputs not present")
def test_qa_bits_mask_pixels_before_resampling():
    # Every pixel of the scene has QC 4096: bit 12 (atmospheric correction performed) set, MODLAND bits 00.
    kw = {"variable": "sur_refl_b01_1_MYD09GQ", "name": "RED", "scale_factor": 1e-4}
    ideal = read_raster(MODIS, qa_variable="QC_250m_1_MYD09GQ", qa_mask=0b11, **kw)
    assert int(ideal.notnull().sum()) == int(read_raster(MODIS, **kw).notnull().sum())
    with pytest.raises(RasterError, match=r"QA mask 0b1000000000000 on 'QC_250m_1_MYD09GQ' rejects every pixel"):
        read_raster(MODIS, qa_variable="QC_250m_1_MYD09GQ", qa_mask=1 << 12, **kw)
    with pytest.raises(RasterError, match="go together"):
        read_raster(MODIS, qa_variable="QC_250m_1_MYD09GQ", **kw)
