"""build_cube / uflux-xr prepare: raw ERA5 / ERA5-Land files, dated satellite rasters, land cover,
land mask and elevation onto one domain, with known values."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uflux_xr.core.domain import Domain
from uflux_xr.io.cube import CubeError, build_cube, cube_coverage, date_from_name, period_start, regrid_climate
from uflux_xr.io.era5 import ERA5Error, read_era5

rioxarray = pytest.importorskip("rioxarray")

DAYS = pd.date_range("2024-01-01 00:00", "2024-03-01 00:00", freq="h")  # Jan + Feb, whole days


def write_era5(path, spacing, lat0, lon0, n, *, t_offset=0.0, lsm=False, land=False):
    """Hourly ERA5-like file: t2m = 280 K + lon [K per degree] + t_offset, tp 0.1 mm h-1, sp 100 kPa."""
    lat = lat0 + spacing * np.arange(n)
    lon = lon0 + spacing * np.arange(n)
    shape = (len(DAYS), n, n)
    t2m = 280.0 + t_offset + lon[None, None, :] * np.ones(shape)
    hour_of_day = ((DAYS - pd.Timedelta(minutes=30)).hour + 1).to_numpy()
    tp = (1e-4 * (hour_of_day if land else np.ones(len(DAYS))))[:, None, None] * np.ones(shape)
    data = {"t2m": (t2m, "K"), "tp": (tp, "m"), "sp": (np.full(shape, 1.0e5), "Pa")}
    if lsm:
        frac = np.where(lon[None, None, :] < lon0 + spacing * n / 2, 1.0, 0.0) * np.ones(shape)
        data["lsm"] = (frac, "(0 - 1)")
    ds = xr.Dataset(
        {k: (("valid_time", "latitude", "longitude"), v, {"units": u}) for k, (v, u) in data.items()},
        coords={"valid_time": DAYS, "latitude": lat[::-1].copy(), "longitude": lon},
    )
    ds = ds.assign(**{k: ds[k][:, ::-1] for k in data}).assign_coords(latitude=lat[::-1].copy())
    ds.to_netcdf(path)
    return path


def domain(step="daily", **kw):
    base = {"x_range": (10.0, 11.0), "y_range": (50.0, 51.0), "resolution": 0.1, "start": "2024-01-01"}
    base.update(kw)
    return Domain(end=base.pop("end", "2024-02-29"), step=step, **base)


def test_period_start_of_each_step():
    t = pd.DatetimeIndex(["2024-02-10 12:00", "2024-05-01", "2024-11-30", "2025-01-15"])
    assert list(period_start(t, "monthly").month) == [2, 5, 11, 1]
    assert [str(d.date()) for d in period_start(t, "biannual")] == [
        "2023-10-01",
        "2024-04-01",
        "2024-10-01",
        "2024-10-01",
    ]


def test_nearest_regrid_keeps_source_cells_and_never_extrapolates(tmp_path):
    era5 = read_era5(write_era5(tmp_path / "e.nc", 0.25, 50.0, 10.0, 3), freq="D")  # cells 10.0, 10.25, 10.5 E
    out = regrid_climate(era5, domain(), "nearest").isel(time=0).compute()
    lon = domain().x()
    # each 0.1° cell takes the 0.25° cell its centre lies in: TA = 280 + that cell's longitude - 273.15
    source_lon = np.array([10.0, 10.25, 10.5])[np.abs(lon[:, None] - np.array([10.0, 10.25, 10.5])).argmin(1)]
    inside = lon <= 10.625
    np.testing.assert_allclose(out["TA"].values[0, inside], 280 + source_lon[inside] - 273.15, rtol=1e-6)
    assert np.isnan(out["TA"].values[:, ~inside]).all()  # beyond half a source cell: NaN, not copied
    bil = regrid_climate(era5, domain(), "bilinear").isel(time=0).compute()
    mid = (lon > 10.0) & (lon < 10.5)
    np.testing.assert_allclose(bil["TA"].values[1, mid], 280 + lon[mid] - 273.15, rtol=1e-6)  # linear in lon


def test_era5_and_era5_land_on_one_domain_with_lsm_land_cover_and_elevation(tmp_path):
    era5 = write_era5(tmp_path / "era5.nc", 0.25, 49.875, 9.875, 6, lsm=True)
    land = write_era5(tmp_path / "land.nc", 0.1, 49.95, 9.95, 13, t_offset=1.0, land=True)
    # land cover: IGBP 1 (ENF) west of 10.5 E, 12 (CRO) east of it; water (17) in the north row
    x = np.arange(10.0025, 11.0, 0.005)
    y = np.arange(50.9975, 50.0, -0.005)
    codes = np.where(x[None, :] < 10.5, 1, 12) * np.ones((y.size, 1), dtype=np.int16)
    codes[y > 50.9] = 17
    lc = xr.DataArray(codes.astype(np.int16), dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs("EPSG:4326")
    lc.rio.to_raster(tmp_path / "igbp.tif")
    dem = xr.DataArray(np.full((y.size, x.size), 300.0, np.float32), dims=("y", "x"), coords={"y": y, "x": x})
    dem.rio.write_crs("EPSG:4326").rio.to_raster(tmp_path / "dem.tif")
    cube = build_cube(
        domain(),
        climate=[[land], [era5]],  # ERA5-Land first: its TA wins
        land_cover=tmp_path / "igbp.tif",
        elevation=tmp_path / "dem.tif",
    ).compute()
    assert set(cube.data_vars) == {"TA", "P", "PA", "IGBP", "land_mask", "elevation"}
    land_cells = cube["land_mask"].values == 1
    assert (cube["IGBP"].values[~land_cells] == 17).all() and set(np.unique(cube["IGBP"].values)) == {1, 12, 17}
    lon = domain().x()
    # ERA5-Land's 0.1° cells coincide with the domain's: TA = 281 + lon - 273.15 on land, NaN on water
    expected = 281.0 + lon[None, :] - 273.15
    np.testing.assert_allclose(
        cube["TA"].values[0][land_cells], np.broadcast_to(expected, land_cells.shape)[land_cells], rtol=1e-6
    )
    assert np.isnan(cube["TA"].values[:, ~land_cells]).all()
    # ERA5-Land's running sums (0.1 mm x hours since 00 UTC) de-accumulated: 2.4 mm d-1
    # (summed as if they were hourly amounts they would give 30 mm d-1)
    np.testing.assert_allclose(cube["P"].values[:, land_cells], 2.4, rtol=1e-5)
    np.testing.assert_allclose(cube["elevation"].values, 300.0)
    table = cube_coverage(cube)
    assert table.set_index("variable").loc["TA", "land_coverage"] == pytest.approx(1.0)
    # ERA5's lsm gives the mask when asked: land west of the middle of its grid
    by_lsm = build_cube(domain(), climate=[[era5]], land_mask="era5")
    assert 0.2 < float(by_lsm["land_mask"].mean()) < 0.8


def test_monthly_and_biannual_domains(tmp_path):
    path = write_era5(tmp_path / "e.nc", 0.25, 49.875, 9.875, 6)
    monthly = build_cube(domain("monthly"), climate=[[path]], land_mask="all").compute()
    assert [str(t) for t in monthly.indexes["time"]] == ["2024-01-16 12:00:00", "2024-02-15 12:00:00"]
    np.testing.assert_allclose(monthly["P"], 2.4, rtol=1e-6)  # 0.1 mm h-1 = 2.4 mm d-1
    half = build_cube(domain("biannual", start="2023-10-01", end="2024-03-31"), climate=[[path]], land_mask="all")
    assert np.isnan(half["TA"].values).all()  # Jan-Feb are not the whole winter half-year: NaN, not a biased mean


def test_dated_satellite_rasters_are_composited_per_month(tmp_path):
    x = np.arange(10.0025, 11.0, 0.005)
    y = np.arange(50.9975, 50.0, -0.005)
    files = {}
    for day, red, nir in (("20240105", 0.05, 0.30), ("20240120", 0.07, 0.34), ("2024-02-10", 0.06, 0.40)):
        for band, value in (("red", red), ("nir", nir)):
            da = xr.DataArray(
                np.full((y.size, x.size), value * 1e4, np.float32), dims=("y", "x"), coords={"y": y, "x": x}
            )
            path = tmp_path / f"MOD_{band}_{day}.tif"
            da.rio.write_crs("EPSG:4326").rio.to_raster(path)
            files.setdefault(band, []).append(path)
    satellite = {
        "RED": {"files": files["red"], "scale_factor": 1e-4},
        "NIR": {"files": files["nir"], "scale_factor": 1e-4},
    }
    cube = build_cube(domain("monthly"), satellite=satellite, land_mask="all").compute()
    ndvi = lambda r, n: (n - r) / (n + r)  # noqa: E731
    jan = (ndvi(0.05, 0.30) * 0.30 + ndvi(0.07, 0.34) * 0.34) / 2  # mean of the two dates' NIRv
    np.testing.assert_allclose(cube["NIRv"].values[0], jan, rtol=1e-5)
    np.testing.assert_allclose(cube["NIRv"].values[1], ndvi(0.06, 0.40) * 0.40, rtol=1e-5)
    with pytest.raises(Exception, match=r"RED has .*likely cause: reflectance stored x 10\^"):
        build_cube(
            domain("monthly"),
            satellite={"RED": {"files": files["red"]}, "NIR": {"files": files["nir"]}},
            land_mask="all",
        )


def test_dates_from_file_names_and_errors(tmp_path):
    assert date_from_name("MOD09GA.A2020032.h18v03.061.hdf") == pd.Timestamp("2020-02-01")
    assert date_from_name("ndvi_2021-07-04.tif") == pd.Timestamp("2021-07-04")
    assert date_from_name("S2_20190815_B04.tif") == pd.Timestamp("2019-08-15")
    with pytest.raises(CubeError, match="no date"):
        date_from_name("ndvi.tif")
    path = write_era5(tmp_path / "e.nc", 0.25, 49.875, 9.875, 6)
    # the ERA5 reader cuts the file to the domain's period first, and says what the file covers
    with pytest.raises(ERA5Error, match=r"e.nc: no time step inside the period 2025-01-01..2025-02-28 \(the file"):
        build_cube(domain(start="2025-01-01", end="2025-02-28"), climate=[[path]], land_mask="all")
    with pytest.raises(CubeError, match="a land mask is needed"):
        build_cube(domain(), climate=[[path]])


def test_projected_domain(tmp_path):
    path = write_era5(tmp_path / "e.nc", 0.25, 49.875, 9.875, 6)
    # 10 km x 10 km of EPSG:3035 around 10.5 E, 50.5 N (4,356,476 E, 3,043,244 N)
    laea = Domain(
        crs="EPSG:3035",
        x_range=(4350000, 4360000),
        y_range=(3040000, 3050000),
        resolution=1000,
        start="2024-01-01",
        end="2024-01-31",
    )
    cube = build_cube(laea, climate=[[path]], land_mask="all").compute()
    assert cube.rio.crs.to_epsg() == 3035 and cube["TA"].dims == ("time", "y", "x")
    assert cube_coverage(cube).set_index("variable").loc["TA", "land_coverage"] == 1.0
    # the file's 0.25° cells are centred at 9.875 + 0.25 k E: around 10.5 E the nearest are 10.375 and
    # 10.625, and TA = 280 K + that cell's longitude - 273.15
    assert set(np.round(np.unique(cube["TA"].values) - 6.85, 4).tolist()) == {10.375, 10.625}


MODIS = (
    Path(__file__).resolve().parents[2] / "shared/data/real_inputs/modis_rioxarray/MODIS_MYD09GQ_15TWF79_20171019.nc"
)


@pytest.mark.skipif(not MODIS.exists(), reason="../shared/data/real_inputs not present")
def test_real_modis_scene_onto_a_250_m_utm_domain():
    # The README's satellite example: the real MYD09GQ piece (Iowa, 19 October 2017, reflectance x 10^4
    # without a scale_factor) composited to an October 2017 cube on its own UTM zone.
    iowa = Domain(
        crs="EPSG:32615",
        x_range=(570000, 580000),
        y_range=(4590250, 4599750),
        resolution=250,
        start="2017-10-01",
        end="2017-10-31",
        step="monthly",
    )
    bands = {"RED": "sur_refl_b01_1_MYD09GQ", "NIR": "sur_refl_b02_1_MYD09GQ"}
    satellite = {k: {"files": [MODIS], "variable": v, "scale_factor": 1e-4} for k, v in bands.items()}
    cube = build_cube(iowa, land_mask="all", satellite=satellite).compute()
    assert cube.rio.crs.to_epsg() == 32615 and cube.sizes == {"time": 1, "y": 38, "x": 40}
    assert cube_coverage(cube).set_index("variable").loc["NIRv", "land_coverage"] == 1.0
    # after harvest: NDVI 0.2-0.6, NIRv a few hundredths
    assert 0.2 < float(cube["NDVI"].mean()) < 0.6 and 0.02 < float(cube["NIRv"].mean()) < 0.15
