"""Run configuration: a YAML file naming domain, period, predictors, fluxes,
models, ensemble members, validation and output, validated into dataclasses.

Every error names the file and the key (``configs/x.yaml: models[1].name: ...``).
Unknown keys are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from uflux_xr.features import HARMONIC_NAMES
from uflux_xr.models import available_models
from uflux_xr.variables import known_names, registry

PRODUCT_FORMATS = ("zarr", "netcdf")
#: Model used when a configuration names none: UFLUX's DF21 cascade forest.
DEFAULT_MODEL = "deepforest"


class ConfigError(ValueError):
    """The configuration file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class ModelSpec:
    """One model kind of the ensemble with its hyper-parameters."""

    name: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration (see ``configs/demo.yaml`` for every key)."""

    name: str
    source: str
    fluxes: list[str]
    predictors: list[str]
    models: list[ModelSpec]
    members: int = 1
    seed: int = 0
    lat: tuple[float, float] = (35.0, 70.0)
    lon: tuple[float, float] = (-10.0, 40.0)
    resolution: float = 0.5
    start: str = "2020-01-01"
    end: str = "2020-12-31"
    n_sites: int = 60
    cube_path: str | None = None
    sites_path: str | None = None
    extraction_method: str = "nearest"
    extraction_window: int = 3
    qc_threshold: float | None = None
    cv: str | None = "loso"
    cv_model: str | None = None
    cv_splits: int = 5
    cv_params: dict = field(default_factory=dict)
    chunks: dict = field(default_factory=lambda: {"time": 32})
    formats: tuple[str, ...] = PRODUCT_FORMATS
    attrs: dict = field(default_factory=dict)
    path: str = "<config>"


def _check_keys(section: dict, allowed: set[str], where: str, src: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"{src}: {where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _section(raw: dict, key: str, src: str) -> dict:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{src}: {key}: expected a mapping, got {type(value).__name__}")
    return value


def _pair(value, where: str, src: str) -> tuple[float, float]:
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value)):
        raise ConfigError(f"{src}: {where}: expected [min, max] numbers, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if lo >= hi:
        raise ConfigError(f"{src}: {where}: min {lo} must be below max {hi}")
    return lo, hi


def _date(value, where: str, src: str) -> str:
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ConfigError(f"{src}: {where}: expected an ISO date (YYYY-MM-DD), got {value!r}") from None


def _name_list(raw: dict, key: str, src: str) -> list[str]:
    value = raw.get(key)
    if not value or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{src}: {key}: expected a non-empty list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{src}: {key}: duplicate names in {value}")
    return list(value)


def parse_config(raw: dict, src: str = "<config>") -> RunConfig:
    """Validate a configuration mapping (as loaded from YAML).

    Raises
    ------
    ConfigError
        Naming ``src``, the offending key and what was expected.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{src}: expected a YAML mapping at the top level")
    _check_keys(
        raw,
        {
            "name",
            "title",
            "data",
            "predictors",
            "fluxes",
            "extraction",
            "training",
            "models",
            "members",
            "validation",
            "output",
        },
        "top level",
        src,
    )
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{src}: name: expected a non-empty string")

    data = _section(raw, "data", src)
    _check_keys(data, {"source", "seed", "domain", "period", "n_sites", "cube", "sites"}, "data", src)
    source = data.get("source")
    if source not in ("demo", "files"):
        raise ConfigError(f"{src}: data.source: expected 'demo' or 'files', got {source!r}")
    kwargs: dict = {"source": source}
    if source == "demo":
        domain = data.get("domain") or {}
        _check_keys(domain, {"lat", "lon", "resolution"}, "data.domain", src)
        if "lat" in domain:
            kwargs["lat"] = _pair(domain["lat"], "data.domain.lat", src)
        if "lon" in domain:
            kwargs["lon"] = _pair(domain["lon"], "data.domain.lon", src)
        res = domain.get("resolution", 0.5)
        if not isinstance(res, int | float) or res <= 0:
            raise ConfigError(f"{src}: data.domain.resolution: expected a positive number of degrees, got {res!r}")
        kwargs["resolution"] = float(res)
        period = data.get("period") or {}
        _check_keys(period, {"start", "end"}, "data.period", src)
        kwargs["start"] = _date(period.get("start", "2020-01-01"), "data.period.start", src)
        kwargs["end"] = _date(period.get("end", "2020-12-31"), "data.period.end", src)
        if kwargs["start"] >= kwargs["end"]:
            raise ConfigError(f"{src}: data.period: start {kwargs['start']} must be before end {kwargs['end']}")
        n_sites = data.get("n_sites", 60)
        if not isinstance(n_sites, int) or n_sites < 3:
            raise ConfigError(f"{src}: data.n_sites: expected an integer of at least 3, got {n_sites!r}")
        kwargs["n_sites"] = n_sites
        seed = data.get("seed", 0)
        if not isinstance(seed, int):
            raise ConfigError(f"{src}: data.seed: expected an integer, got {seed!r}")
        kwargs["seed"] = seed
    else:
        for key in ("cube", "sites"):
            if not isinstance(data.get(key), str):
                raise ConfigError(f"{src}: data.{key}: expected a path to a NetCDF or Zarr file with source 'files'")
            path = Path(data[key])
            if not path.is_absolute():
                path = Path(src).parent / path
            kwargs[f"{key}_path"] = str(path)

    fluxes = _name_list(raw, "fluxes", src)
    bad = [f for f in fluxes if f not in registry()["fluxes"]]
    if bad:
        raise ConfigError(f"{src}: fluxes: unknown flux(es) {bad}; expected some of {sorted(registry()['fluxes'])}")
    predictors = _name_list(raw, "predictors", src)
    bad = [p for p in predictors if p not in known_names() and p not in HARMONIC_NAMES]
    if bad:
        raise ConfigError(
            f"{src}: predictors: unknown predictor(s) {bad}; expected registry names or {list(HARMONIC_NAMES)}"
        )
    bad = [p for p in predictors if p in fluxes]
    if bad:
        raise ConfigError(f"{src}: predictors: {bad} are also fluxes to predict")

    models_raw = raw.get("models", [DEFAULT_MODEL])
    if not isinstance(models_raw, list) or not models_raw:
        raise ConfigError(f"{src}: models: expected a non-empty list of {{name: ..., params: {{...}}}}")
    models = []
    for i, m in enumerate(models_raw):
        m = {"name": m} if isinstance(m, str) else m
        if not isinstance(m, dict):
            raise ConfigError(f"{src}: models[{i}]: expected a model name or a mapping")
        _check_keys(m, {"name", "params"}, f"models[{i}]", src)
        if m.get("name") not in available_models():
            raise ConfigError(
                f"{src}: models[{i}].name: unknown model {m.get('name')!r}; available: {available_models()}"
            )
        params = m.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{src}: models[{i}].params: expected a mapping of hyper-parameters")
        models.append(ModelSpec(m["name"], dict(params)))
    if len({m.name for m in models}) != len(models):
        raise ConfigError(f"{src}: models: each model kind may appear once (use 'members' for more seeds)")
    members = raw.get("members", 1)
    if not isinstance(members, int) or members < 1:
        raise ConfigError(f"{src}: members: expected a positive integer (seeds per model), got {members!r}")

    extraction = _section(raw, "extraction", src)
    _check_keys(extraction, {"method", "window"}, "extraction", src)
    method = extraction.get("method", "nearest")
    if method not in ("nearest", "window"):
        raise ConfigError(f"{src}: extraction.method: expected 'nearest' or 'window', got {method!r}")
    window = extraction.get("window", 3)
    if not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ConfigError(f"{src}: extraction.window: expected an odd positive integer, got {window!r}")

    training = _section(raw, "training", src)
    _check_keys(training, {"qc_threshold"}, "training", src)
    qc = training.get("qc_threshold")
    if qc is not None and (not isinstance(qc, int | float) or not 0 <= qc <= 1):
        raise ConfigError(f"{src}: training.qc_threshold: expected a fraction in [0, 1], got {qc!r}")

    validation = _section(raw, "validation", src)
    _check_keys(validation, {"cv", "model", "n_splits", "params"}, "validation", src)
    cv = validation.get("cv", "loso")
    if cv not in ("loso", "kfold", None, "none"):
        raise ConfigError(f"{src}: validation.cv: expected 'loso', 'kfold' or 'none', got {cv!r}")
    cv_model = validation.get("model", models[0].name)
    if cv_model not in available_models():
        raise ConfigError(f"{src}: validation.model: unknown model {cv_model!r}; available: {available_models()}")
    n_splits = validation.get("n_splits", 5)
    if not isinstance(n_splits, int) or n_splits < 2:
        raise ConfigError(f"{src}: validation.n_splits: expected an integer of at least 2, got {n_splits!r}")

    output = _section(raw, "output", src)
    _check_keys(output, {"formats", "chunks", "attrs"}, "output", src)
    formats = output.get("formats", list(PRODUCT_FORMATS))
    if not isinstance(formats, list) or not formats or any(f not in PRODUCT_FORMATS for f in formats):
        raise ConfigError(f"{src}: output.formats: expected a list from {list(PRODUCT_FORMATS)}, got {formats!r}")
    chunks = output.get("chunks", {"time": 32})
    if not isinstance(chunks, dict) or not all(isinstance(v, int) and v > 0 for v in chunks.values()):
        raise ConfigError(f"{src}: output.chunks: expected {{dim: positive integer}}, got {chunks!r}")
    attrs = output.get("attrs") or {}
    if "title" in raw:
        attrs = {"title": raw["title"], **attrs}

    return RunConfig(
        name=name,
        fluxes=fluxes,
        predictors=predictors,
        models=models,
        members=members,
        extraction_method=method,
        extraction_window=window,
        qc_threshold=qc,
        cv=None if cv in (None, "none") else cv,
        cv_model=cv_model,
        cv_splits=n_splits,
        cv_params=dict(validation.get("params") or {}),
        chunks=dict(chunks),
        formats=tuple(formats),
        attrs=dict(attrs),
        path=src,
        **kwargs,
    )


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run configuration.

    Raises
    ------
    ConfigError
        When the file is missing, is not valid YAML, or fails validation.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the configuration ({err.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_config(raw, str(path))
