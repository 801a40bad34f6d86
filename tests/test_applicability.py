"""Dissimilarity index and area of applicability: CAST's own test expectations, and the rules one by one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.grid.applicability import (
    ApplicabilityError,
    TrainingDissimilarity,
    di_threshold,
    dissimilarity,
    fit_error_model,
    random_error_sd_by_level,
    random_error_variance,
    train_dissimilarity,
)
from uflux_xr.grid.completeness import ERROR_NOISE, flux_error_model
from uflux_xr.workflow.pipeline import format_summary

from .conftest import SHARED_DATA

CAST = SHARED_DATA / "cast_aoa"
CAST_VARIABLES = ["DEM", "NDRE.Sd", "TWI"]


def _cast_fixture():
    rioxarray = pytest.importorskip("rioxarray")
    raster = rioxarray.open_rasterio(CAST / "predictors_2012-03-25.tif")
    cube = xr.Dataset({name: raster.isel(band=i, drop=True) for i, name in enumerate(raster.attrs["long_name"])})
    points = pd.read_csv(CAST / "cast_aoa_training_points.csv")
    # terra::extract takes the cell holding each point; on a regular grid that is the nearest cell centre
    at = {
        "x": xr.DataArray(points["Easting"].to_numpy(), dims="p"),
        "y": xr.DataArray(points["Northing"].to_numpy(), dims="p"),
    }
    train = cube.sel(at, method="nearest").to_dataframe().reset_index(drop=True)
    return cube, train


@pytest.mark.skipif(not CAST.exists(), reason="../shared/data/cast_aoa not present")
def test_cast_aoa_without_a_trained_model():
    """CAST tests/testthat/test-aoa.R, "AOA works without a trained model" (DEM, NDRE.Sd, TWI, unweighted)."""
    cube, train = _cast_fixture()
    # test-trainDI.R: colMeans of the training table (DEM, TWI, NDRE.Sd; R prints 7 decimals)
    means = train[["DEM", "TWI", "NDRE.Sd"]].astype(np.float64).mean().to_numpy()
    np.testing.assert_allclose(means, [795.4426351, 4.0277978, 0.2577245], atol=5e-8)
    result = ux.aoa(train, cube, CAST_VARIABLES)
    assert round(result.threshold, 5) == 0.52872
    di = result.DI.values.ravel()
    flag = result.AOA.values.ravel()
    assert int((flag == 1).sum()) == 3377
    assert int(np.isnan(di).sum()) == 1993 and int((flag == -1).sum()) == 1993
    # R's summary() prints 4 decimals: Min 0, 1st Qu 0.1759, Median 0.2642, Mean 0.3109, 3rd Qu 0.4051, Max 2.6631
    q = np.nanquantile(di, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(q, [0, 0.1759, 0.2642, 0.4051, 2.6631], atol=5e-5)
    assert abs(np.nanmean(di) - 0.3109) < 5e-5
    # the same through the table path, and on a dask cube in odd chunks: the per-row arithmetic is the same, so equal
    table = cube[CAST_VARIABLES].to_dataframe()
    rows = ux.aoa(train, table, CAST_VARIABLES)
    np.testing.assert_array_equal(rows.DI.to_numpy().astype(np.float32), di)
    chunked = ux.aoa(train, cube.chunk({"y": 7, "x": 33}), CAST_VARIABLES)
    np.testing.assert_array_equal(chunked.DI.values.ravel(), di)
    np.testing.assert_array_equal(chunked.AOA.values.ravel(), flag)


def _brute_force(train: np.ndarray, folds=None):
    """An independent reading of CAST's trainDI: full distance matrix, masks, means."""
    z = (train - train.mean(0)) / train.std(0, ddof=1)
    d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
    n = len(z)
    mean_distance = d[~np.eye(n, dtype=bool)].mean()
    masked = d.copy()
    np.fill_diagonal(masked, np.inf)
    if folds is not None:
        folds = np.asarray(folds)
        masked[folds[:, None] == folds[None, :]] = np.inf
    return masked.min(1) / mean_distance, mean_distance


def test_training_di_excludes_the_row_and_its_fold():
    rng = np.random.default_rng(3)
    # rows of one site cluster together, as a tower's days do
    values = np.repeat(rng.normal(size=(8, 3)), 5, axis=0) + rng.normal(scale=0.1, size=(40, 3))
    table = pd.DataFrame(values, columns=["a", "b", "c"])
    table["site"] = np.repeat(list("ABCDEFGH"), 5)
    ref = train_dissimilarity(table, ["a", "b", "c"])
    want, mean_distance = _brute_force(table[["a", "b", "c"]].to_numpy())
    np.testing.assert_allclose(ref.train_di, want, rtol=1e-12)
    np.testing.assert_allclose(ref.mean_distance, mean_distance, rtol=1e-12)
    by_site = train_dissimilarity(table, ["a", "b", "c"], folds="site")
    want_folds, _ = _brute_force(table[["a", "b", "c"]].to_numpy(), table["site"])
    np.testing.assert_allclose(by_site.train_di, want_folds, rtol=1e-12)
    assert (by_site.train_di >= ref.train_di).all() and (by_site.train_di > ref.train_di).any()
    with pytest.raises(ApplicabilityError, match="two folds"):
        train_dissimilarity(table, ["a", "b"], folds=np.zeros(40))


def test_threshold_conventions_by_hand():
    di = np.r_[np.arange(1.0, 11.0), 100.0]
    # type-7 quartiles 3.5 and 8.5: 8.5 + 1.5 * 5 = 16 (below the maximum, so not capped)
    assert di_threshold(di, "cast") == 16.0
    # Tukey hinges of 11 values are also 3.5 and 8.5; the whisker is the largest value <= 16, 10
    assert di_threshold(di, "cast-boxplot") == 10.0
    assert di_threshold(np.array([0.1, 0.2, 0.3, 0.4]), "cast") == 0.4  # Q75 + 1.5 IQR above the maximum: capped
    with pytest.raises(ValueError, match="convention"):
        di_threshold(di, "mean")


def test_weights_scale_free_negative_zeroed_and_categorical_one_hot():
    rng = np.random.default_rng(5)
    table = pd.DataFrame(
        {"a": rng.normal(size=30), "b": rng.normal(size=30), "k": rng.integers(1, 4, 30).astype(float)}
    )
    new = pd.DataFrame({"a": [0.0, 3.0, np.nan], "b": [0.0, -2.0, 1.0], "k": [1.0, 9.0, 2.0]})
    once = ux.aoa(table, new, ["a", "b"], weights={"a": 2.0, "b": 1.0})
    tenfold = ux.aoa(table, new, ["a", "b"], weights=[20.0, 10.0])
    np.testing.assert_allclose(once.DI.to_numpy(), tenfold.DI.to_numpy(), rtol=1e-12)  # DI ignores the weights' scale
    assert np.isnan(once.DI.iloc[2]) and once.AOA.iloc[2] == -1
    negative = ux.aoa(table, new, ["a", "b"], weights=[-1.0, 1.0])
    only_b = ux.aoa(table, new, ["b"])
    np.testing.assert_allclose(negative.DI.to_numpy()[:2], only_b.DI.to_numpy()[:2], rtol=1e-12)
    with pytest.raises(ApplicabilityError, match="every DI weight is 0"):
        ux.aoa(table, new, ["a", "b"], weights=[0.0, -1.0])
    coded = train_dissimilarity(table, ["a", "k"], categorical=["k"])
    assert coded.points.shape == (30, 4)  # a, k=1, k=2, k=3
    unseen = coded.transform(np.array([[0.0, 9.0]]))
    np.testing.assert_allclose(unseen[0, 1:], -coded.center[1:] / coded.scale[1:])  # level 9 is 0 in every column


def test_di_of_repeated_rows_equals_one_query_per_row():
    # A fine grid's rows repeat (coarse climate); DI queries each distinct row once and scatters back.
    rng = np.random.default_rng(11)
    table = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40), "site": np.repeat(list("ABCD"), 10)})
    ref = train_dissimilarity(table, ["a", "b"], folds="site")
    distinct = np.array([[0.0, 0.1], [-0.0, 0.1], [1.5, -2.0], [0.3, np.nan], [3.0, 3.0]])
    X = distinct[rng.integers(0, len(distinct), 500)]
    got = ref.di(X)
    complete = np.isfinite(X).all(axis=1)
    assert np.isnan(got[~complete]).all()
    # every row queried on its own: the same arithmetic, so exactly equal
    alone = np.array([ref.di(row[None])[0] for row in X[complete]])
    np.testing.assert_array_equal(got[complete], alone)
    # and the nearest training row by brute force (float64 sums in another order: rtol 1e-12)
    brute = np.sqrt(((ref.transform(X[complete])[:, None, :] - ref.points[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(got[complete], brute / ref.mean_distance, rtol=1e-12)


def test_errors_name_what_is_wrong():
    table = pd.DataFrame({"a": [1.0, 2.0, 3.0], "flat": [5.0, 5.0, 5.0]})
    with pytest.raises(ApplicabilityError, match=r"\['flat'\] have no variance"):
        train_dissimilarity(table, ["a", "flat"])
    with pytest.raises(ApplicabilityError, match=r"lacks predictor column\(s\) \['zz'\]"):
        train_dissimilarity(table, ["a", "zz"])
    with pytest.raises(ApplicabilityError, match="at least 2"):
        train_dissimilarity(pd.DataFrame({"a": [1.0, np.nan]}), ["a"])


def test_save_load_and_cube_variables(tmp_path):
    rng = np.random.default_rng(8)
    table = pd.DataFrame(
        {"TA": rng.normal(10, 5, 50), "SW_IN": rng.uniform(0, 300, 50), "site": np.repeat(list("ABCDE"), 10)}
    )
    ref = train_dissimilarity(table, ["TA", "SW_IN"], folds="site")
    ref.save(tmp_path / "ref.npz")
    back = TrainingDissimilarity.load(tmp_path / "ref.npz")
    np.testing.assert_array_equal(back.points, ref.points)
    np.testing.assert_array_equal(back.folds, ref.folds)
    assert (back.threshold, back.mean_distance, back.features) == (ref.threshold, ref.mean_distance, ref.features)
    time = pd.date_range("2020-01-01", periods=4)
    cube = xr.Dataset(
        {
            "TA": (("time", "lat", "lon"), rng.normal(10, 8, (4, 3, 5))),
            "SW_IN": (("time", "lat", "lon"), rng.uniform(0, 400, (4, 3, 5))),
        },
        coords={"time": time, "lat": [50.0, 51.0, 52.0], "lon": np.arange(5.0)},
    ).chunk({"time": 1})
    out = dissimilarity(cube, back, name="GPP")  # by file path: how workers get it
    assert set(out.data_vars) == {"GPP_DI", "GPP_AOA"} and out["GPP_AOA"].encoding["_FillValue"] == -1
    X = np.stack([cube["TA"].values.ravel(), cube["SW_IN"].values.ravel()], axis=1)
    np.testing.assert_array_equal(out["GPP_DI"].values.ravel(), ref.di(X).astype(np.float32))
    np.testing.assert_array_equal(out["GPP_AOA"].values.ravel(), ref.aoa(out["GPP_DI"].values.ravel()))


def test_error_model_is_monotone_and_recovers_a_known_relation():
    rng = np.random.default_rng(11)
    di = rng.uniform(0, 2, 40_000)
    predicted = rng.normal(size=di.size)
    observed = predicted + rng.normal(scale=0.5 + di)  # true RMSE at DI d: 0.5 + d
    model = fit_error_model(di, observed, predicted)
    assert np.all(np.diff(model.error) >= 0)
    np.testing.assert_allclose(model(np.array([0.25, 1.0, 1.75])), [0.75, 1.5, 2.25], rtol=0.1)
    assert np.isnan(model(np.array([np.nan]))[0])
    # with a known noise variance taken out, the RMSE left is sqrt(rmse^2 - noise)
    quieter = fit_error_model(di, observed, predicted, noise_variance=0.25)
    np.testing.assert_allclose(quieter(np.array([1.0])), np.sqrt(1.5**2 - 0.25), rtol=0.1)


def test_random_error_variance_from_consecutive_days():
    rng = np.random.default_rng(12)
    time = pd.date_range("2020-01-01", periods=365)
    frames = []
    for site in range(20):
        slow = 1.5 * np.sin(2 * np.pi * (np.arange(365) / 365 + site / 20))  # model error following the season
        frames.append(pd.DataFrame({"site": site, "time": time, "residual": slow + rng.normal(scale=0.3, size=365)}))
    residuals = pd.concat(frames).sample(frac=1.0, random_state=0)  # order must not matter
    assert abs(random_error_variance(residuals) - 0.09) < 0.09 * 0.1


def test_error_model_takes_out_a_noise_variance_per_row():
    rng = np.random.default_rng(13)
    di = rng.uniform(0, 2, 40_000)
    predicted = rng.normal(size=di.size)
    noise_sd = rng.uniform(0.1, 2.0, di.size)  # the towers' noise, known per row
    observed = predicted + rng.normal(scale=0.5 + di) + rng.normal(scale=noise_sd)
    model = fit_error_model(di, observed, predicted, noise_variance=noise_sd**2, noise_sd=(0.1, 0.0))
    # the error against the noise-free value is 0.5 + d (10 % for the windows' sampling error)
    np.testing.assert_allclose(model(np.array([0.25, 1.0, 1.75])), [0.75, 1.5, 2.25], rtol=0.1)
    assert model.noise_sd == (0.1, 0.0) and abs(model.noise_variance - np.mean(noise_sd**2)) < 1e-9
    # one variance given for all rows or as an array of that value: the same arithmetic
    scalar = fit_error_model(di, observed, predicted, noise_variance=0.25)
    array = fit_error_model(di, observed, predicted, noise_variance=np.full(di.size, 0.25))
    np.testing.assert_array_equal(scalar.error, array.error)


def test_random_error_sd_grows_with_the_flux_level():
    rng = np.random.default_rng(14)
    time = pd.date_range("2020-01-01", periods=365)
    frames = []
    for site in range(30):
        season = np.arange(365) / 365 + site / 30
        level = 5 + 5 * np.sin(2 * np.pi * season)  # |flux| from 0 to 10 through the year
        slow = 0.8 * np.cos(2 * np.pi * season)  # model error following the season
        noise = rng.normal(scale=0.3 + 0.1 * level)  # Richardson et al. (2006): SD linear in |F|
        frames.append(pd.DataFrame({"site": site, "time": time, "residual": slow + noise, "level": level}))
    a, b = random_error_sd_by_level(pd.concat(frames).sample(frac=1.0, random_state=0))
    # 10 950 rows in 8 level bins: the line's ends within 0.1 of 0.3 and 1.3 [flux units]
    assert abs(a - 0.3) < 0.1 and abs((a + 10 * b) - 1.3) < 0.1
    # a constant noise gives no slope
    flat = pd.concat(frames).assign(residual=lambda f: rng.normal(scale=0.5, size=len(f)))
    a, b = random_error_sd_by_level(flat)
    assert abs(a + 5 * b - 0.5) < 0.05 and b < 0.01


def test_flux_error_model_conventions_on_towers_with_known_noise():
    """Towers whose noise SD is 0.2 + 0.1 |F| and a model whose error is 0.3: ``level`` finds both."""
    rng = np.random.default_rng(15)
    time = pd.date_range("2020-01-01", periods=200)
    frames = []
    for k in range(12):
        x = np.sin(2 * np.pi * (np.arange(200) / 200 + k / 12)) + rng.normal(scale=0.05, size=200)
        flux = 5 + 4 * x
        pred = flux + 0.3 * np.sin(np.arange(200) / 9 + k)  # slow model error, RMS 0.3 / sqrt(2)
        obs = flux + rng.normal(scale=0.2 + 0.1 * np.abs(flux))
        frames.append(pd.DataFrame({"site": f"S{k}", "time": time, "x": x, "obs": obs, "pred": pred}))
    rows = pd.concat(frames, ignore_index=True)
    table = rows[["site", "time", "x"]]
    predictions = rows[["site", "time", "obs", "pred"]].assign(target="GPP", fold=rows["site"])
    reference = train_dissimilarity(table, ["x"], folds="site")
    models = {noise: flux_error_model(reference, table, predictions, "GPP", noise) for noise in ERROR_NOISE}
    truth = 0.3 / np.sqrt(2)  # the model's own RMS error [flux units]
    middle = np.array([np.median(models["none"].di)])
    with_noise = np.sqrt(truth**2 + np.mean((0.2 + 0.1 * np.abs(rows["obs"] - 0)) ** 2))
    np.testing.assert_allclose(models["none"](middle), with_noise, rtol=0.15)
    a, b = models["level"].noise_sd
    assert abs(a - 0.2) < 0.1 and abs(b - 0.1) < 0.02
    # the noise is 95 % of the squared error here: 25 % on the RMSE left is the demo's precision
    np.testing.assert_allclose(models["level"](middle), truth, rtol=0.25)
    assert models["nugget"].noise_sd is None and models["nugget"].noise_variance > 0
    assert "row by row" in models["level"].noise_text("g C m-2 d-1")
    assert "included" in models["none"].noise_text("g C m-2 d-1")


def test_demo_run_writes_di_aoa_and_error(demo_run):
    product = xr.open_zarr(demo_run.products["zarr"])
    for flux in ("GPP", "RECO", "NEE", "LE", "H"):
        di, flag, error = product[f"{flux}_DI"], product[f"{flux}_AOA"], product[f"{flux}_error"]
        assert di.dims == ("time", "lat", "lon") and error.attrs["units"] == product[flux].attrs["units"]
        assert "flag_meanings" in flag.attrs and "1.645" in error.attrs["comment"]
        day = product.isel(time=100)
        land = day["GPP"].isel(member=0).notnull().values
        assert np.isfinite(day[f"{flux}_DI"].values[land]).all() and np.isnan(day[f"{flux}_DI"].values[~land]).all()
        threshold = demo_run.applicability[flux]["threshold"]
        np.testing.assert_array_equal(day[f"{flux}_AOA"].values[land] == 1, day[f"{flux}_DI"].values[land] <= threshold)
    totals = pd.read_csv(demo_run.out_dir / "totals.csv")
    ensemble = totals[(totals["member"] == "ensemble") & totals["variable"].isin(["GPP", "RECO", "LE"])]
    assert ensemble["area_share_inside_aoa"].between(0.5, 1.0).all()
    carbon = ensemble[ensemble["variable"] == "GPP"].iloc[0]
    # inside + outside is the whole ensemble-mean total (float64 sums of the same float32 values in another order)
    assert carbon["total_inside_aoa"] + carbon["total_outside_aoa"] == pytest.approx(carbon["total"], rel=1e-5)
    completeness = pd.read_csv(demo_run.out_dir / "completeness.csv")
    whole = completeness[completeness["region"] == "all"]
    assert len(whole) == 5 * product.sizes["time"] and whole["area_share_inside_aoa"].between(0, 1).all()
    # configs/demo.yaml asks for the IGBP classes too: the demo world's 7 land classes, every day and flux
    by_class = completeness[completeness["region"] != "all"]
    assert sorted(set(by_class["region"])) == ["CRO", "DBF", "ENF", "GRA", "MF", "OSH", "SAV"]
    assert len(by_class) == 7 * len(whole) and by_class["flux_share_inside_aoa"].between(0, 1).all()
    # every land cell has a class, so the classes' areas and inside areas add up to the domain's
    # (float64 sums of the same cell areas in another order: 1e-9 relative)
    summed = by_class.assign(inside=by_class["area_share_inside_aoa"] * by_class["land_area_km2"])
    summed = summed.groupby(["time", "flux"])[["land_area_km2", "inside"]].sum()
    domain = whole.set_index(["time", "flux"]).loc[summed.index]
    np.testing.assert_allclose(summed["land_area_km2"], domain["land_area_km2"], rtol=1e-9)
    np.testing.assert_allclose(summed["inside"] / summed["land_area_km2"], domain["area_share_inside_aoa"], rtol=1e-9)
    assert demo_run.aoa_summary.startswith("Inside the area of applicability")
    assert "Inside the area of applicability" in format_summary(demo_run)
