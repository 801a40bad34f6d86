import json
import zipfile

import numpy as np
import pytest

import uflux_xr as ux
from uflux_xr.models.boosting import DEVICE_VARIABLE, cuda_available

from .conftest import FEATURES, predict_concurrently


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm", "random_forest"])
def test_save_load_identical_predictions_and_metadata(kind, table, tmp_path):
    params = {"n_estimators": 20}
    model = ux.train(table, "GPP", FEATURES, model=kind, random_state=1, **params)
    path = model.save(tmp_path / "gpp.uxm")
    loaded = ux.load_model(path)
    np.testing.assert_array_equal(model.predict(table), loaded.predict(table))
    assert loaded.target == "GPP" and loaded.features == FEATURES
    assert loaded.units["GPP"] == "g m-2 d-1" and loaded.units["TA"] == "degC"
    assert loaded.training_sites == sorted(table["site"].unique())
    assert loaded.params["n_estimators"] == 20 and loaded.params["random_state"] == 1
    assert {"numpy", "scikit-learn", "xgboost", "lightgbm", "python"} <= set(loaded.versions)
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        meta = json.loads(zf.read("metadata.json"))
    assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in names)
    assert meta["kind"] == kind
    # readable like any other output (mkstemp alone gives 0600): the mode a plain open() gives here
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm", "random_forest"])
def test_single_thread_and_concurrent_predictions_agree(kind, table):
    model = ux.train(table, "LE", FEATURES, model=kind, n_estimators=20)
    X = table[FEATURES].dropna().to_numpy(np.float32)
    reference = model.predict_array(X)
    np.testing.assert_allclose(model.predict_array(X, n_threads=1), reference, rtol=1e-6)
    for out in predict_concurrently(lambda: model.predict_array(X, n_threads=1), 4):
        np.testing.assert_allclose(out, reference, rtol=1e-6)


def test_model_learns_and_nan_rows_predict_nan(table):
    model = ux.train(table, "GPP", FEATURES, model="xgboost", n_estimators=50)
    pred = model.predict(table)
    ok = table["GPP"].notna().to_numpy()
    assert ux.metrics.nse(pred[ok], table["GPP"].to_numpy()[ok]) > 0.8
    holed = table.copy()
    holed.loc[holed.index[:5], "TA"] = np.nan
    assert np.isnan(model.predict(holed)[:5]).all()


def test_training_filters_and_errors(table):
    strict = ux.train(table, "GPP", FEATURES, model="lightgbm", n_estimators=5, qc_threshold=0.9)
    loose = ux.train(table, "GPP", FEATURES, model="lightgbm", n_estimators=5)
    assert strict.n_train < loose.n_train
    with pytest.raises(ValueError, match="unknown model 'svm'"):
        ux.train(table, "GPP", FEATURES, model="svm")
    with pytest.raises(KeyError, match="lacks column"):
        ux.train(table, "GPP", FEATURES + ["EVI"])
    with pytest.raises(ValueError, match="usable rows"):
        ux.train(table.iloc[:3], "GPP", FEATURES)


@pytest.mark.parametrize(
    ("kind", "params", "closest"),
    [
        ("lightgbm", {"num_leavs": 15}, "num_leaves"),
        ("xgboost", {"max_dept": 3}, "max_depth"),
        ("random_forest", {"min_sample_leaf": 3}, "min_samples_leaf"),
        ("deepforest", {"n_tree": 3}, "n_trees"),
        ("hybrid", {"max_layer": 2}, "max_layers"),
        ("deepforest", {"predictor": "lightgbm", "predictor_kwargs": {"num_leavs": 3}}, "num_leaves"),
        ("deepforest", {"predictor_kwargs": {"max_dept": 3}}, "max_depth"),
    ],
)
def test_misspelt_hyper_parameter_is_refused(table, kind, params, closest):
    # LightGBM's own warning is off (verbose=-1) and XGBoost only warns: without the check a typo trains
    # the default and is stored in the model's metadata.
    with pytest.raises(ux.models.registry.UnknownParameterError, match=rf"did you mean '{closest}'\?"):
        ux.train(table, "GPP", FEATURES, model=kind, **params)


def test_library_aliases_are_accepted(table):
    # LightGBM's aliases (min_data_in_leaf, bagging_fraction) and XGBoost's (eta, lambda) keep working.
    lgb_model = ux.train(
        table, "GPP", FEATURES, model="lightgbm", n_estimators=5, min_data_in_leaf=3, bagging_fraction=0.9
    )
    xgb_model = ux.train(table, "GPP", FEATURES, model="xgboost", n_estimators=5, eta=0.2, **{"lambda": 2.0})
    assert lgb_model.params["min_data_in_leaf"] == 3 and xgb_model.params["eta"] == 0.2


def test_units_mismatch_and_bad_files(table, tmp_path):
    model = ux.train(table, "GPP", FEATURES, model="lightgbm", n_estimators=5)
    kelvin = table.copy()
    kelvin.attrs = {"units": {**table.attrs["units"], "TA": "K"}}
    with pytest.raises(ValueError, match="feature 'TA' is in 'K'"):
        model.predict(kelvin)
    garbage = tmp_path / "x.uxm"
    garbage.write_bytes(b"\x80\x04not a zip")
    with pytest.raises(ValueError, match="not a uflux-xr model archive"):
        ux.load_model(garbage)
    path = model.save(tmp_path / "ok.uxm")
    tampered = tmp_path / "tampered.uxm"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            blob = src.read(name)
            dst.writestr(name, blob if name == "metadata.json" else blob.replace(b"tree", b"TREE"))
    with pytest.raises(ValueError, match="checksum mismatch"):
        ux.load_model(tampered)


def test_xgboost_device_choice(table, monkeypatch):
    from uflux_xr.models.boosting import xgboost_device

    monkeypatch.setenv(DEVICE_VARIABLE, "cpu")
    assert xgboost_device() == "cpu"
    monkeypatch.setenv(DEVICE_VARIABLE, "auto")
    assert xgboost_device() == ("cuda" if cuda_available() else "cpu")
    monkeypatch.setenv(DEVICE_VARIABLE, "tpu")
    with pytest.raises(RuntimeError, match="expected auto, cpu or cuda"):
        xgboost_device()
    if not cuda_available():
        monkeypatch.setenv(DEVICE_VARIABLE, "cuda")
        with pytest.raises(RuntimeError, match="cannot use a CUDA GPU"):
            xgboost_device()


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU usable by XGBoost on this machine")
def test_xgboost_gpu_predictions_equal_cpu(table, monkeypatch):
    model = ux.train(table, "GPP", FEATURES, model="xgboost", n_estimators=50)
    X = table[FEATURES].to_numpy(np.float32)
    monkeypatch.setenv(DEVICE_VARIABLE, "cpu")
    cpu = model.predict_array(X, n_threads=1)
    monkeypatch.setenv(DEVICE_VARIABLE, "cuda")
    gpu = model.predict_array(X, n_threads=1)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-5)


def test_gpu_probe_is_quiet(capfd):
    """The CUDA probe prints nothing, also from concurrent dask threads (XGBoost's C++ logger warned
    "No visible GPU is found" there on every CPU run)."""
    import threading

    cuda_available.cache_clear()
    start = threading.Barrier(4)

    def probe():
        start.wait()
        cuda_available()

    threads = [threading.Thread(target=probe) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    captured = capfd.readouterr()
    assert "WARNING" not in captured.err and "GPU" not in captured.err, captured.err


def _finishes(target, within_s: float) -> bool:
    """Whether ``target()`` run in a thread returns within ``within_s`` [s]; the thread is left to end."""
    import threading

    done = threading.Event()
    threading.Thread(target=lambda: (target(), done.set()), daemon=True).start()
    return done.wait(within_s)


def test_lightgbm_calls_with_another_thread_count_wait_at_the_gate():
    # LightGBM keeps one process-wide thread count set by every call; a fit with one thread beside a
    # predict with all cores crashed the process (SIGSEGV in the README's LOSO run).  While a call
    # with one thread runs, calls with one thread go on, and calls with another count wait.
    import lightgbm as lgb

    from uflux_xr.models.boosting import LIGHTGBM_THREADS, LightGBMRuntime, _lgb_build

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=200)
    runtime = LightGBMRuntime(lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, y).booster_.model_to_string())
    with LIGHTGBM_THREADS(1):
        assert _finishes(lambda: runtime.predict(X, n_threads=1), 30)
        assert _finishes(lambda: _lgb_build(n_estimators=5, n_jobs=1).fit(X, y), 30)
        # 2 s is long beside these calls' milliseconds; they must still be waiting.
        default_predict = _finishes(lambda: runtime.predict(X), 2)
        two_thread_fit = _finishes(lambda: _lgb_build(n_estimators=5, n_jobs=2).fit(X, y), 2)
        assert not default_predict and not two_thread_fit
    # Released: a call with the default thread count runs.
    assert _finishes(lambda: runtime.predict(X), 30)
