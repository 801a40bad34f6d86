import pytest
import yaml

import uflux_xr as ux
from uflux_xr.workflow.config import ConfigError, parse_config

from .conftest import REPO


def base() -> dict:
    return yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())


def test_demo_config_is_valid():
    cfg = ux.load_config(REPO / "configs" / "demo.yaml")
    assert cfg.fluxes == ["GPP", "RECO", "NEE", "LE", "H"]
    assert [m.name for m in cfg.ensemble.models] == ["xgboost", "lightgbm"]
    assert cfg.ensemble.members == 2 and cfg.validation.cv == "loso" and cfg.data.source == "demo"
    assert cfg.domain.y_range == (35.0, 70.0) and cfg.domain.resolution == 0.5
    assert cfg.output.attrs["title"].startswith("uflux-xr demo")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(colour="blue"), r"top level: unknown key\(s\) 'colour'"),
        (lambda c: c.pop("name"), "name: expected a non-empty string"),
        (lambda c: c["data"].update(source="ftp"), "data.source: expected one of"),
        (lambda c: c["data"]["domain"].update(lat=[70, 35]), "data.domain.lat: min 70.0 must be below max 35.0"),
        (lambda c: c["data"]["domain"].update(resolution=-1), "data.domain.resolution: expected a positive"),
        (lambda c: c["data"]["period"].update(start="2020-13-01"), "data.period.start: expected an ISO date"),
        (lambda c: c.update(fluxes=["GPP", "FCH4"]), r"fluxes: unknown flux\(es\) \['FCH4'\]"),
        (lambda c: c.update(predictors=["TA", "TA"]), "predictors: duplicate names"),
        (lambda c: c.update(predictors=["TA", "WIND"]), r"predictors: unknown predictor\(s\) \['WIND'\]"),
        (lambda c: c["models"].append({"name": "svm"}), r"models\[2\].name: unknown model 'svm'"),
        (lambda c: c["models"][0].update(depth=3), r"models\[0\]: unknown key\(s\) 'depth'"),
        (
            lambda c: c["models"][0].update(parms={}),
            r"models\[0\]: unknown key\(s\) 'parms' \(did you mean 'params'\?\)",
        ),
        (
            lambda c: c["models"][1]["params"].update(num_leavs=15),
            r"models\[1\].params: model kind 'lightgbm' has no hyper-parameter 'num_leavs' \(did you mean 'num_leaves'",
        ),
        (
            lambda c: c["validation"].update(params={"n_estimator": 5}),
            r"validation.params: model kind 'lightgbm' has no hyper-parameter 'n_estimator' \(did you mean",
        ),
        (lambda c: c.update(members=0), "members: expected a positive integer"),
        (lambda c: c["validation"].update(cv="random"), "validation.cv: expected 'loso', 'kfold' or 'none'"),
        (lambda c: c["output"].update(formats=["grib"]), "output.formats: expected a list from"),
        (lambda c: c.update(extraction={"method": "window", "window": 4}), "extraction.window: expected an odd"),
        (lambda c: c["data"].update(source="files"), "data.cube: expected a path"),
        (lambda c: c["data"]["period"].update(step="weekly"), "data.period.step: expected one of"),
        (lambda c: c["data"]["domain"].update(crs="EPSG:27700"), "data.domain.x: a projected grid"),
        (lambda c: c["data"]["domain"].update(crs="EPSG:99999"), "data.domain.crs: not a CRS pyproj knows"),
        (lambda c: c["data"]["domain"].update(x=[0, 1]), r"data.domain: \['x'\] are for projected grids"),
        (lambda c: c["data"]["period"].update(step="monthly"), "data.source: 'demo' simulates a daily"),
        (lambda c: c["data"].update(fallback="lazy_demo"), "data.fallback: only meaningful with source"),
        (lambda c: c.update(ensemble={"proxies": {"NIRv": ["NIRv"]}}), "ensemble: replaces the top-level"),
    ],
)
def test_bad_config_names_file_and_key(change, message):
    raw = base()
    change(raw)
    with pytest.raises(ConfigError, match=f"^my.yaml: {message}"):
        parse_config(raw, "my.yaml")


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        ux.load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        ux.load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a YAML mapping"):
        ux.load_config(listy)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    if path.name == "recipe_real_inputs.yaml" and not (REPO.parent / "shared" / "data").exists():
        pytest.skip("the recipe's data.inputs are the files in ../shared/data, absent here")
    cfg = ux.load_config(path)
    assert cfg.fluxes and cfg.ensemble.models


def test_models_default_to_the_cascade_forest():
    raw = base()
    raw.pop("models")
    raw["validation"].pop("model")
    cfg = parse_config(raw, "my.yaml")
    assert [m.name for m in cfg.ensemble.models] == ["deepforest"] and cfg.validation.model == "deepforest"


def test_ensemble_members_are_proxy_sets_times_models_times_seeds():
    raw = base()
    del raw["predictors"], raw["members"]
    raw["data"]["source"] = "lazy_demo"
    raw["ensemble"] = {
        "climate": ["TA", "SW_IN"],
        "static": ["IGBP"],
        "harmonics": ["DOY_SIN"],
        "proxies": {"NIRv": ["NIRv"], "greenness": ["NDVI", "EVI2"]},
        "seeds": 2,
    }
    cfg = parse_config(raw, "my.yaml")
    specs = cfg.ensemble.member_specs
    assert len(specs) == 2 * len(cfg.ensemble.models) * 2
    assert specs[0].label == f"NIRv-{cfg.ensemble.models[0].name}-0"
    assert specs[-1].predictors == ("TA", "SW_IN", "IGBP", "DOY_SIN", "NDVI", "EVI2")
    assert cfg.ensemble.predictors == ["TA", "SW_IN", "IGBP", "DOY_SIN", "NIRv", "NDVI", "EVI2"]
    raw["ensemble"]["climate"] = ["TA", "NIRv"]
    with pytest.raises(ConfigError, match=r"ensemble: \['NIRv'\] are both shared predictors and vegetation proxies"):
        parse_config(raw, "my.yaml")


def test_max_bin_sets_each_kinds_own_bin_parameter():
    raw = base()
    raw["models"] = [
        {"name": "xgboost", "max_bin": 64},
        {"name": "lightgbm", "max_bin": 63, "params": {"n_estimators": 10}},
        {"name": "deepforest", "max_bin": 64},
        {"name": "random_forest"},
    ]
    models = {m.name: m for m in parse_config(raw, "my.yaml").ensemble.models}
    assert models["xgboost"].params == {"max_bin": 64} and models["xgboost"].max_bin == 64
    assert models["lightgbm"].params == {"n_estimators": 10, "max_bin": 63}
    assert models["deepforest"].params == {"n_bins": 64}
    assert models["random_forest"].max_bin is None and models["random_forest"].params == {}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"name": "random_forest", "max_bin": 64}, r"models\[0\].max_bin: random_forest splits on raw values"),
        ({"name": "deepforest", "max_bin": 256}, r"models\[0\].max_bin: expected an integer 2 to 255, got 256"),
        ({"name": "xgboost", "max_bin": 1}, r"models\[0\].max_bin: expected an integer at least 2, got 1"),
        ({"name": "xgboost", "max_bin": "64"}, r"models\[0\].max_bin: expected an integer at least 2, got '64'"),
        (
            {"name": "hybrid", "max_bin": 64, "params": {"n_bins": 32}},
            r"models\[0\]: give the bin count once, as max_bin or as params.n_bins",
        ),
    ],
)
def test_bad_max_bin(model, message):
    raw = base()
    raw["models"] = [model]
    with pytest.raises(ConfigError, match=f"^my.yaml: {message}"):
        parse_config(raw, "my.yaml")
