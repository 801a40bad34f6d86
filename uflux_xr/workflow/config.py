"""Run configuration: a YAML file naming domain, period, predictors, fluxes,
models, ensemble members, validation and output, validated into dataclasses.

Every error names the file and the key (``configs/x.yaml: models[1].name: ...``).
Unknown keys are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import datetime as dt
import glob
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from uflux_xr.core.domain import GEOGRAPHIC_CRS, STEPS, Domain
from uflux_xr.core.suggest import did_you_mean
from uflux_xr.core.sun_check import POSITION_CHECK_POLICIES
from uflux_xr.core.variables import known_names, registry
from uflux_xr.grid.features import DERIVED_NAMES
from uflux_xr.models import available_models
from uflux_xr.models.hybrid import BASELINES, RESIDUAL_MODES
from uflux_xr.models.registry import UnknownParameterError, check_params, trained_kind

PRODUCT_FORMATS = ("zarr", "netcdf")
SOURCES = ("demo", "lazy_demo", "files")
#: Model used when a configuration names none: UFLUX's DF21 cascade forest.
DEFAULT_MODEL = "deepforest"


class ConfigError(ValueError):
    """The configuration file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class ModelSpec:
    """One model kind of the ensemble with its hyper-parameters, and its process baseline for a hybrid.

    ``max_bin`` is the config's kind-independent bin count; at parsing it is put into
    ``params`` under the kind's own name (:attr:`uflux_xr.models.registry.ModelKind.bins`).
    """

    name: str
    params: dict = field(default_factory=dict)
    baseline: str | None = None
    residual: str = "auto"
    max_bin: int | None = None

    @property
    def train_options(self) -> dict:
        """Keyword arguments of :func:`uflux_xr.models.train` besides the hyper-parameters."""
        return {} if self.baseline is None else {"baseline": self.baseline, "residual": self.residual}


@dataclass(frozen=True)
class MemberSpec:
    """One ensemble member: a model kind, its seed and the predictors it sees."""

    label: str
    model: ModelSpec
    seed: int
    predictors: tuple[str, ...]


@dataclass(frozen=True)
class RawInputs:
    """The ``data.inputs`` section: raw downloads that ``uflux-xr prepare`` builds into the cube
    and the tower file of a ``files`` run (paths resolved against the config's folder, globs expanded)."""

    climate: tuple[tuple[str, ...], ...] = ()
    regrid: str = "nearest"
    satellite: dict = field(default_factory=dict)
    land_mask: str | None = None
    land_cover: str | None = None
    elevation: str | None = None
    towers: tuple[str, ...] = ()
    tower_format: str = "auto"
    tower_metadata: str | None = None
    tower_year: int | None = None
    tower_min_coverage: float = 1.0
    tower_position_check: str = "raise"

    KEYS = ("climate", "regrid", "satellite", "land_mask", "land_cover", "elevation", "towers")
    TOWER_KEYS = ("files", "format", "metadata", "year", "min_coverage", "position_check")
    SATELLITE_KEYS = ("files", "variable", "scale_factor", "resampling", "units", "qa_variable", "qa_mask")

    @classmethod
    def parse(cls, section, src: str) -> RawInputs:
        """Validate ``data.inputs``; errors name ``src`` and the key."""
        if not isinstance(section, dict):
            raise ConfigError(f"{src}: data.inputs: expected a mapping")
        _check_keys(section, set(cls.KEYS), "data.inputs", src)
        base = Path(src).parent

        def files(value, where: str) -> tuple[str, ...]:
            patterns = [value] if isinstance(value, str) else value
            if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
                raise ConfigError(f"{src}: {where}: expected a path, a glob or a list of them")
            found: list[str] = []
            for pattern in patterns:
                if "://" in pattern:  # an fsspec URL: read where it is, when the inputs are built
                    if any(c in pattern for c in "*?["):
                        raise ConfigError(f"{src}: {where}: {pattern!r}: globs are for local paths; list the URLs")
                    found.append(pattern)
                    continue
                full = pattern if Path(pattern).is_absolute() else str(base / pattern)
                matches = sorted(glob.glob(full))
                if not matches:
                    raise ConfigError(f"{src}: {where}: no file matches {pattern!r} (looked in {base})")
                found += matches
            return tuple(found)

        climate_raw = section.get("climate", [])
        if not isinstance(climate_raw, list):
            raise ConfigError(f"{src}: data.inputs.climate: expected a list of file groups (one product each)")
        climate = tuple(files(group, f"data.inputs.climate[{i}]") for i, group in enumerate(climate_raw))
        regrid = section.get("regrid", "nearest")
        if regrid not in ("nearest", "bilinear"):
            raise ConfigError(f"{src}: data.inputs.regrid: expected 'nearest' or 'bilinear', got {regrid!r}")
        satellite = {}
        for name, spec in (section.get("satellite") or {}).items():
            spec = {"files": spec} if isinstance(spec, str | list) else spec
            if not isinstance(spec, dict) or "files" not in spec:
                raise ConfigError(f"{src}: data.inputs.satellite.{name}: expected files (and variable, scale_factor)")
            _check_keys(spec, set(cls.SATELLITE_KEYS), f"data.inputs.satellite.{name}", src)
            satellite[name] = {**spec, "files": files(spec["files"], f"data.inputs.satellite.{name}.files")}
        land_mask = section.get("land_mask")
        if land_mask not in (None, "era5", "all"):
            land_mask = files(land_mask, "data.inputs.land_mask")[0]
        single = {k: files(section[k], f"data.inputs.{k}")[0] for k in ("land_cover", "elevation") if section.get(k)}
        towers = section.get("towers") or {}
        if towers:
            if not isinstance(towers, dict) or "files" not in towers:
                raise ConfigError(f"{src}: data.inputs.towers: expected files (and format, metadata, year)")
            _check_keys(towers, set(cls.TOWER_KEYS), "data.inputs.towers", src)
        coverage = towers.get("min_coverage", 1.0)
        if not isinstance(coverage, int | float) or not 0 < coverage <= 1:
            raise ConfigError(f"{src}: data.inputs.towers.min_coverage: expected a fraction in (0, 1]")
        position_check = towers.get("position_check", "raise")
        if position_check not in POSITION_CHECK_POLICIES:
            raise ConfigError(
                f"{src}: data.inputs.towers.position_check: expected one of {list(POSITION_CHECK_POLICIES)}, "
                f"got {position_check!r}"
            )
        return cls(
            climate=climate,
            regrid=regrid,
            satellite=satellite,
            land_mask=land_mask,
            towers=files(towers["files"], "data.inputs.towers.files") if towers else (),
            tower_format=towers.get("format", "auto"),
            tower_metadata=files(towers["metadata"], "data.inputs.towers.metadata")[0]
            if towers.get("metadata")
            else None,
            tower_year=towers.get("year"),
            tower_min_coverage=float(coverage),
            tower_position_check=position_check,
            **single,
        )


@dataclass(frozen=True)
class DataConfig:
    """The ``data`` section: where the inputs come from (the grid and period are the run's ``domain``)."""

    source: str
    cube_path: str | None = None
    sites_path: str | None = None
    fallback: str | None = None
    seed: int = 0
    n_sites: int = 60
    inputs: RawInputs | None = None
    climate_km: float | None = None  # lazy demo world: climate from a grid this coarse [km], as a regridded reanalysis
    demo_inputs: bool = False  # a files configuration run on its demo world by request (with_demo_inputs)

    KEYS = ("source", "seed", "domain", "period", "n_sites", "cube", "sites", "fallback", "inputs", "climate_km")

    @property
    def cube_file(self) -> str:
        """``data.cube``; a ConfigError when the configuration names none."""
        if self.cube_path is None:
            raise ConfigError("data.cube: the predictor cube is not named (source: files needs data.cube)")
        return self.cube_path

    @property
    def sites_file(self) -> str:
        """``data.sites``; a ConfigError when the configuration names none."""
        if self.sites_path is None:
            raise ConfigError("data.sites: the tower file is not named (source: files needs data.sites)")
        return self.sites_path

    @classmethod
    def parse(cls, data: dict, domain: Domain | None, src: str) -> DataConfig:
        """Validate ``data`` (its ``domain``/``period`` already parsed into ``domain``)."""
        source = data.get("source")
        kwargs: dict = {"source": source}
        if source in ("demo", "lazy_demo") or data.get("fallback"):
            n_sites = data.get("n_sites", 60)
            if not isinstance(n_sites, int) or n_sites < 3:
                raise ConfigError(f"{src}: data.n_sites: expected an integer of at least 3, got {n_sites!r}")
            seed = data.get("seed", 0)
            if not isinstance(seed, int):
                raise ConfigError(f"{src}: data.seed: expected an integer, got {seed!r}")
            kwargs.update(n_sites=n_sites, seed=seed)
            climate_km = data.get("climate_km")
            if climate_km is not None:
                if isinstance(climate_km, bool) or not isinstance(climate_km, int | float) or climate_km <= 0:
                    raise ConfigError(f"{src}: data.climate_km: expected a positive number [km], got {climate_km!r}")
                if source == "demo":
                    raise ConfigError(f"{src}: data.climate_km: only the lazy demo world has a coarse climate option")
                kwargs["climate_km"] = float(climate_km)
        elif "climate_km" in data:
            raise ConfigError(f"{src}: data.climate_km: only meaningful for the lazy demo world")
        if source == "demo" and domain is not None and (domain.step != "daily" or not domain.geographic):
            raise ConfigError(
                f"{src}: data.source: 'demo' simulates a daily lat/lon world; use 'lazy_demo' for "
                f"{domain.crs} grids or {domain.step} steps"
            )
        if source != "files":
            if "fallback" in data or "inputs" in data:
                key = "fallback" if "fallback" in data else "inputs"
                raise ConfigError(f"{src}: data.{key}: only meaningful with source 'files'")
            return cls(**kwargs)
        for key in ("cube", "sites"):
            if not isinstance(data.get(key), str):
                raise ConfigError(
                    f"{src}: data.{key}: expected a path or URL (s3://...) to a NetCDF or Zarr file with source 'files'"
                )
            if "://" in data[key]:  # an fsspec URL (uflux_xr.io.storage), taken as written
                kwargs[f"{key}_path"] = data[key]
                continue
            path = Path(data[key])
            kwargs[f"{key}_path"] = str(path if path.is_absolute() else Path(src).parent / path)
        fallback = data.get("fallback")
        if fallback not in (None, "lazy_demo"):
            raise ConfigError(f"{src}: data.fallback: expected 'lazy_demo' (or nothing), got {fallback!r}")
        if fallback and domain is None:
            raise ConfigError(f"{src}: data.fallback: needs data.domain and data.period to generate the demo world")
        if "inputs" in data:
            if domain is None:
                raise ConfigError(f"{src}: data.inputs: needs data.domain and data.period (the cube's grid and steps)")
            kwargs["inputs"] = RawInputs.parse(data["inputs"], src)
        return cls(fallback=fallback, **kwargs)


@dataclass(frozen=True)
class EnsembleConfig:
    """Predictors, model kinds, proxy sets and seeds (``predictors``/``members``/``models``, or ``ensemble``)."""

    predictors: list[str]
    models: list[ModelSpec]
    members: int = 1
    proxies: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: dict, fluxes: list[str], src: str) -> EnsembleConfig:
        """Validate the top-level ``predictors``, ``members``, ``ensemble`` and ``models`` keys."""
        if "ensemble" in raw:
            if "predictors" in raw or "members" in raw:
                raise ConfigError(
                    f"{src}: ensemble: replaces the top-level 'predictors' and 'members'; give one or the other"
                )
            predictors, proxies, members = _parse_ensemble(raw["ensemble"], src)
        else:
            predictors, proxies = _name_list(raw, "predictors", src), {}
            members = raw.get("members", 1)
            if not isinstance(members, int) or members < 1:
                raise ConfigError(f"{src}: members: expected a positive integer (seeds per model), got {members!r}")
        _check_predictors(predictors, "ensemble" if proxies else "predictors", fluxes, src)
        return cls(predictors, _parse_models(raw.get("models", [DEFAULT_MODEL]), src), members, proxies)

    @property
    def member_specs(self) -> list[MemberSpec]:
        """Every ensemble member, UFLUX-style: proxy set × model kind × seed.

        Without an ``ensemble`` section there is one proxy set (all ``predictors``)
        and members are labelled ``<model>-<seed>``; with one, each member sees the
        shared predictors plus its proxy set and is labelled ``<proxy>-<model>-<seed>``.
        """
        proxy_names = {p for names in self.proxies.values() for p in names}
        shared = tuple(p for p in self.predictors if p not in proxy_names)
        sets = {name: shared + names for name, names in self.proxies.items()} or {"": tuple(self.predictors)}
        return [
            MemberSpec(f"{proxy}-{m.name}-{seed}" if proxy else f"{m.name}-{seed}", m, seed, predictors)
            for proxy, predictors in sets.items()
            for m in self.models
            for seed in range(self.members)
        ]


@dataclass(frozen=True)
class ExtractionConfig:
    """The ``extraction`` section: nearest cell or a window mean at each tower."""

    method: str = "nearest"
    window: int = 3

    @classmethod
    def parse(cls, section: dict, src: str) -> ExtractionConfig:
        _check_keys(section, {"method", "window"}, "extraction", src)
        method = section.get("method", cls.method)
        if method not in ("nearest", "window"):
            raise ConfigError(f"{src}: extraction.method: expected 'nearest' or 'window', got {method!r}")
        window = section.get("window", cls.window)
        if not isinstance(window, int) or window < 1 or window % 2 == 0:
            raise ConfigError(f"{src}: extraction.window: expected an odd positive integer, got {window!r}")
        return cls(method, window)


#: Tower records a windowed run trains on: the window's time steps, or all of the domain's period.
TRAINING_PERIODS = ("window", "all")


@dataclass(frozen=True)
class TrainingConfig:
    """The ``training`` section: the QC fraction a training row needs, where its drivers come from, and
    which tower records a run on a window of the domain trains on (``period``: ``window``, the window's
    time steps; ``all``, every record of the domain's period, so the window is predicted by the models
    the whole run would make)."""

    qc_threshold: float | None = None
    drivers: str = "cube"
    period: str = "window"

    @classmethod
    def parse(cls, section: dict, src: str) -> TrainingConfig:
        _check_keys(section, {"qc_threshold", "drivers", "period"}, "training", src)
        qc = section.get("qc_threshold", cls.qc_threshold)
        if qc is not None and (not isinstance(qc, int | float) or not 0 <= qc <= 1):
            raise ConfigError(f"{src}: training.qc_threshold: expected a fraction in [0, 1], got {qc!r}")
        drivers = section.get("drivers", cls.drivers)
        if drivers not in ("cube", "towers"):
            raise ConfigError(f"{src}: training.drivers: expected 'cube' or 'towers', got {drivers!r}")
        period = section.get("period", cls.period)
        if period not in TRAINING_PERIODS:
            raise ConfigError(f"{src}: training.period: expected one of {TRAINING_PERIODS}, got {period!r}")
        return cls(qc, drivers, period)


@dataclass(frozen=True)
class ValidationConfig:
    """The ``validation`` section: grouped cross-validation scheme, model and folds."""

    cv: str | None = "loso"
    model: str = "deepforest"
    n_splits: int = 5
    params: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, section: dict, default_model: str, src: str) -> ValidationConfig:
        _check_keys(section, {"cv", "model", "n_splits", "params"}, "validation", src)
        cv = section.get("cv", cls.cv)
        if cv not in ("loso", "kfold", None, "none"):
            raise ConfigError(f"{src}: validation.cv: expected 'loso', 'kfold' or 'none', got {cv!r}")
        model = section.get("model", default_model)
        if model not in _model_names():
            raise ConfigError(f"{src}: validation.model: unknown model {model!r}; available: {_model_names()}")
        n_splits = section.get("n_splits", cls.n_splits)
        if not isinstance(n_splits, int) or n_splits < 2:
            raise ConfigError(f"{src}: validation.n_splits: expected an integer of at least 2, got {n_splits!r}")
        params = _hyper_parameters(section.get("params"), model, "validation.params", src)
        return cls(None if cv in (None, "none") else cv, model, n_splits, params)


@dataclass(frozen=True)
class OutputConfig:
    """The ``output`` section: product formats, dask chunks, global attributes and
    deduplicated inference (``dedup``: auto, true or false; see :func:`uflux_xr.grid.upscale.upscale`)."""

    formats: tuple[str, ...] = PRODUCT_FORMATS
    chunks: dict = field(default_factory=lambda: {"time": 32})
    attrs: dict = field(default_factory=dict)
    dedup: bool | str = "auto"

    @classmethod
    def parse(cls, section: dict, title: str | None, src: str) -> OutputConfig:
        _check_keys(section, {"formats", "chunks", "attrs", "dedup"}, "output", src)
        formats = section.get("formats", list(PRODUCT_FORMATS))
        if not isinstance(formats, list) or not formats or any(f not in PRODUCT_FORMATS for f in formats):
            raise ConfigError(f"{src}: output.formats: expected a list from {list(PRODUCT_FORMATS)}, got {formats!r}")
        chunks = section.get("chunks", {"time": 32})
        if not isinstance(chunks, dict) or not all(isinstance(v, int) and v > 0 for v in chunks.values()):
            raise ConfigError(f"{src}: output.chunks: expected {{dim: positive integer}}, got {chunks!r}")
        attrs = dict(section.get("attrs") or {})
        if title is not None:
            attrs = {"title": title, **attrs}
        dedup = section.get("dedup", "auto")
        if dedup not in (True, False, "auto"):
            raise ConfigError(f"{src}: output.dedup: expected auto, true or false, got {dedup!r}")
        return cls(tuple(formats), dict(chunks), attrs, dedup)


@dataclass(frozen=True)
class ApplicabilityConfig:
    """The ``applicability`` section: dissimilarity index, area of applicability and per-cell error
    (:mod:`uflux_xr.grid.applicability`).

    ``enabled`` (default true) writes ``<FLUX>_DI``, ``<FLUX>_AOA`` and, with validation on,
    ``<FLUX>_error`` into the product; ``weights``: ``importance`` (permutation importance of
    the members, as CAST weights by the model's variable importance) or ``none``; ``threshold``:
    ``cast`` or ``cast-boxplot``; ``error_noise``: ``none`` (the error against tower values, as CAST),
    ``nugget`` (the towers' random error taken out; :func:`uflux_xr.grid.applicability.random_error_variance`)
    or ``level`` (taken out per row, its SD growing with the flux;
    :func:`uflux_xr.grid.applicability.random_error_sd_by_level`); ``regions``: a cube variable of
    class codes, one map (``IGBP``, or a region layer with CF ``flag_values``/``flag_meanings``),
    over which ``completeness.csv`` also gives the shares inside the AOA (default: the whole
    domain only); ``hybrid_residual``: ``keep`` (default) leaves the hybrid members as they
    are, ``fade`` scales their machine-learned part by min(1, threshold / DI), so that outside
    the AOA they tend to their process baseline (:func:`uflux_xr.models.hybrid.residual_weight`).
    """

    enabled: bool = True
    weights: str = "importance"
    threshold: str = "cast"
    error_noise: str = "none"
    regions: str | None = None
    hybrid_residual: str = "keep"

    @classmethod
    def parse(cls, section: dict, src: str) -> ApplicabilityConfig:
        from uflux_xr.grid.applicability import THRESHOLD_CONVENTIONS
        from uflux_xr.grid.completeness import ERROR_NOISE

        _check_keys(
            section,
            {"enabled", "weights", "threshold", "error_noise", "regions", "hybrid_residual"},
            "applicability",
            src,
        )
        enabled = section.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{src}: applicability.enabled: expected true or false, got {enabled!r}")
        weights = section.get("weights", "importance")
        if weights not in ("importance", "none"):
            raise ConfigError(f"{src}: applicability.weights: expected importance or none, got {weights!r}")
        threshold = section.get("threshold", "cast")
        if threshold not in THRESHOLD_CONVENTIONS:
            raise ConfigError(
                f"{src}: applicability.threshold: expected one of {list(THRESHOLD_CONVENTIONS)}, got {threshold!r}"
            )
        error_noise = section.get("error_noise", "none")
        if error_noise not in ERROR_NOISE:
            raise ConfigError(
                f"{src}: applicability.error_noise: expected one of {list(ERROR_NOISE)}, got {error_noise!r}"
            )
        regions = section.get("regions")
        if regions is not None and not isinstance(regions, str):
            raise ConfigError(f"{src}: applicability.regions: expected a cube variable's name, got {regions!r}")
        hybrid_residual = section.get("hybrid_residual", "keep")
        if hybrid_residual not in ("fade", "keep"):
            raise ConfigError(f"{src}: applicability.hybrid_residual: expected fade or keep, got {hybrid_residual!r}")
        return cls(enabled, weights, threshold, error_noise, regions, hybrid_residual)


@dataclass(frozen=True)
class ExplainConfig:
    """The ``explain`` section: maps of the leading driver and importance tables (:mod:`uflux_xr.grid.explain`).

    ``enabled`` (default false: it costs several times the upscaling of the same period) writes
    ``explanations/explanation.nc`` and ``explanations/importance.csv``; ``period``: ``[first, last]``
    ISO dates (default the whole run); ``fluxes``: the fluxes to explain (default all);
    ``every``: explain every n-th time step only (default 1, all; the cost falls by that factor);
    ``surrogate_rows``: rows a surrogate of a kind without exact TreeSHAP is fitted on at most.
    """

    enabled: bool = False
    period: tuple[str, str] | None = None
    fluxes: tuple[str, ...] | None = None
    surrogate_rows: int = 20_000
    every: int = 1

    @classmethod
    def parse(cls, section: dict, fluxes: list[str], src: str) -> ExplainConfig:
        _check_keys(section, {"enabled", "period", "fluxes", "surrogate_rows", "every"}, "explain", src)
        enabled = section.get("enabled", False)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{src}: explain.enabled: expected true or false, got {enabled!r}")
        period = section.get("period")
        if period is not None:
            if not isinstance(period, list) or len(period) != 2:
                raise ConfigError(f"{src}: explain.period: expected [first, last] ISO dates, got {period!r}")
            first, last = (_date(v, "explain.period", src) for v in period)
            if first > last:
                raise ConfigError(f"{src}: explain.period: {first} is after {last}")
            period = (first, last)
        chosen = section.get("fluxes")
        if chosen is not None:
            chosen = tuple(_name_list({"explain.fluxes": chosen}, "explain.fluxes", src))
            unknown = [f for f in chosen if f not in fluxes]
            if unknown:
                raise ConfigError(f"{src}: explain.fluxes: {unknown} are not modelled; the run models {fluxes}")
        rows = section.get("surrogate_rows", 20_000)
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 100:
            raise ConfigError(f"{src}: explain.surrogate_rows: expected an integer of at least 100, got {rows!r}")
        every = section.get("every", 1)
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ConfigError(
                f"{src}: explain.every: expected a positive integer (every n-th time step), got {every!r}"
            )
        return cls(enabled, period, chosen, rows, every)


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration (see ``configs/demo.yaml`` for every key), one dataclass per section."""

    name: str
    fluxes: list[str]
    data: DataConfig
    ensemble: EnsembleConfig
    domain: Domain | None = None
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    applicability: ApplicabilityConfig = field(default_factory=ApplicabilityConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    #: fsspec options per protocol for the run's URLs (``{"s3": {"endpoint_url": ...}}``); no credentials
    storage_options: dict[str, dict] = field(default_factory=dict)
    path: str = "<config>"
    text: str = ""  # the YAML as read, for the run's provenance

    @property
    def grid(self) -> Domain:
        """The run's domain; a ConfigError when the configuration has none (data.domain and data.period)."""
        if self.domain is None:
            raise ConfigError(f"{self.path}: data.domain and data.period are needed here")
        return self.domain


def _check_keys(section: dict, allowed: set[str], where: str, src: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        named = ", ".join(f"{key!r}{did_you_mean(key, allowed)}" for key in unknown)
        raise ConfigError(f"{src}: {where}: unknown key(s) {named}; allowed: {sorted(allowed)}")


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


def _parse_domain(data: dict, src: str) -> Domain:
    """Grid and period: lat/lon in degrees (``lat``, ``lon``) or a projected CRS (``crs``, ``x``, ``y`` [m])."""
    domain = data.get("domain") or {}
    if not isinstance(domain, dict):
        raise ConfigError(f"{src}: data.domain: expected a mapping")
    _check_keys(domain, {"crs", "lat", "lon", "x", "y", "resolution"}, "data.domain", src)
    crs = str(domain.get("crs", GEOGRAPHIC_CRS))
    geographic = crs.upper() in (GEOGRAPHIC_CRS, "WGS84")
    if geographic:
        bad = sorted({"x", "y"} & set(domain))
        if bad:
            raise ConfigError(f"{src}: data.domain: {bad} are for projected grids; a lat/lon grid takes lat and lon")
        y_range = _pair(domain["lat"], "data.domain.lat", src) if "lat" in domain else Domain.y_range
        x_range = _pair(domain["lon"], "data.domain.lon", src) if "lon" in domain else Domain.x_range
    else:
        try:
            from pyproj import CRS

            CRS.from_user_input(crs)
        except Exception as err:  # pyproj raises CRSError; any failure means the same to the user
            raise ConfigError(f"{src}: data.domain.crs: not a CRS pyproj knows ({crs!r}): {err}") from None
        for key in ("x", "y"):
            if key not in domain:
                raise ConfigError(f"{src}: data.domain.{key}: a projected grid ({crs}) needs [min, max] in metres")
        bad = sorted({"lat", "lon"} & set(domain))
        if bad:
            raise ConfigError(f"{src}: data.domain: {bad} are for lat/lon grids; a {crs} grid takes x and y [m]")
        x_range, y_range = _pair(domain["x"], "data.domain.x", src), _pair(domain["y"], "data.domain.y", src)
    res = domain.get("resolution", Domain.resolution)
    unit = "degrees" if geographic else "metres"
    if not isinstance(res, int | float) or res <= 0:
        raise ConfigError(f"{src}: data.domain.resolution: expected a positive number of {unit}, got {res!r}")
    period = data.get("period") or {}
    _check_keys(period, {"start", "end", "step"}, "data.period", src)
    start = _date(period.get("start", Domain.start), "data.period.start", src)
    end = _date(period.get("end", Domain.end), "data.period.end", src)
    if start >= end:
        raise ConfigError(f"{src}: data.period: start {start} must be before end {end}")
    step = period.get("step", Domain.step)
    if step not in STEPS:
        raise ConfigError(f"{src}: data.period.step: expected one of {list(STEPS)}, got {step!r}")
    try:
        parsed = Domain(crs, x_range, y_range, float(res), start, end, step)
    except ValueError as err:
        raise ConfigError(f"{src}: data.domain: {err}") from None
    if len(parsed.time()) < 1:
        raise ConfigError(f"{src}: data.period: no {step} step has its middle inside {start}..{end}")
    return parsed


def _parse_ensemble(section, src: str) -> tuple[list[str], dict[str, tuple[str, ...]], int]:
    """Predictors, proxy sets and seeds of a UFLUX-style ensemble section."""
    if not isinstance(section, dict):
        raise ConfigError(f"{src}: ensemble: expected a mapping with proxies, climate, static, harmonics, seeds")
    _check_keys(section, {"proxies", "climate", "static", "harmonics", "seeds"}, "ensemble", src)
    proxies_raw = section.get("proxies")
    if not isinstance(proxies_raw, dict) or not proxies_raw:
        raise ConfigError(
            f"{src}: ensemble.proxies: expected a mapping {{set name: [predictors]}}, got {proxies_raw!r}"
        )
    proxies = {}
    for name, names in proxies_raw.items():
        if not isinstance(names, list) or not names or not all(isinstance(v, str) for v in names):
            raise ConfigError(f"{src}: ensemble.proxies.{name}: expected a non-empty list of predictor names")
        proxies[str(name)] = tuple(names)
    shared = []
    for key in ("climate", "static", "harmonics"):
        names = section.get(key, [])
        if not isinstance(names, list) or not all(isinstance(v, str) for v in names):
            raise ConfigError(f"{src}: ensemble.{key}: expected a list of predictor names, got {names!r}")
        shared += names
    if not shared:
        raise ConfigError(f"{src}: ensemble: climate, static and harmonics are all empty; members need predictors")
    in_proxies = [p for p in shared if any(p in names for names in proxies.values())]
    if in_proxies:
        raise ConfigError(f"{src}: ensemble: {in_proxies} are both shared predictors and vegetation proxies")
    seeds = section.get("seeds", 1)
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"{src}: ensemble.seeds: expected a positive integer, got {seeds!r}")
    every = shared + [p for names in proxies.values() for p in names if p not in shared]
    predictors = list(dict.fromkeys(every))
    if len(set(shared)) != len(shared):
        raise ConfigError(f"{src}: ensemble: duplicate names in climate/static/harmonics {shared}")
    return predictors, proxies, seeds


def _check_predictors(predictors: list[str], where: str, fluxes: list[str], src: str) -> None:
    bad = [p for p in predictors if p not in known_names() and p not in DERIVED_NAMES]
    if bad:
        raise ConfigError(
            f"{src}: {where}: unknown predictor(s) {bad}; expected registry names or {list(DERIVED_NAMES)}"
        )
    bad = [p for p in predictors if p in fluxes]
    if bad:
        raise ConfigError(f"{src}: {where}: {bad} are also fluxes to predict")


def _model_names() -> list[str]:
    """Model names a config may use: the registered kinds and ``hybrid`` (the cascade forest with its baseline)."""
    return [*available_models(), "hybrid"]


def _parse_models(models_raw, src: str) -> list[ModelSpec]:
    if not isinstance(models_raw, list) or not models_raw:
        raise ConfigError(f"{src}: models: expected a non-empty list of {{name: ..., params: {{...}}}}")
    models = []
    for i, m in enumerate(models_raw):
        m = {"name": m} if isinstance(m, str) else m
        if not isinstance(m, dict):
            raise ConfigError(f"{src}: models[{i}]: expected a model name or a mapping")
        _check_keys(m, {"name", "params", "baseline", "residual", "max_bin"}, f"models[{i}]", src)
        if m.get("name") not in _model_names():
            raise ConfigError(f"{src}: models[{i}].name: unknown model {m.get('name')!r}; available: {_model_names()}")
        params = _hyper_parameters(m.get("params"), m["name"], f"models[{i}].params", src)
        baseline = m.get("baseline", "auto" if m["name"] == "hybrid" else None)
        if baseline is not None and baseline != "auto" and baseline not in BASELINES:
            raise ConfigError(
                f"{src}: models[{i}].baseline: unknown baseline {baseline!r}; available: 'auto' or {sorted(BASELINES)}"
            )
        residual = m.get("residual", "auto")
        if residual not in ("auto", *RESIDUAL_MODES):
            raise ConfigError(
                f"{src}: models[{i}].residual: expected 'auto' or one of {list(RESIDUAL_MODES)}, got {residual!r}"
            )
        if "residual" in m and baseline is None:
            raise ConfigError(f"{src}: models[{i}].residual: only a hybrid model (with a baseline) has a residual")
        max_bin = m.get("max_bin")
        if max_bin is not None:
            params.update(_bin_param(m["name"], max_bin, params, f"models[{i}]", src))
        models.append(ModelSpec(m["name"], params, baseline, residual, max_bin))
    if len({m.name for m in models}) != len(models):
        raise ConfigError(f"{src}: models: each model kind may appear once (use 'members' for more seeds)")
    return models


def _hyper_parameters(raw, model: str, where: str, src: str) -> dict:
    """A ``params`` mapping of ``model`` as given, every name one the kind has (``check_params``)."""
    params = raw or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{src}: {where}: expected a mapping of hyper-parameters")
    try:
        check_params(model, params)
    except UnknownParameterError as err:
        raise ConfigError(f"{src}: {where}: {err}") from None
    return dict(params)


def _bin_param(name: str, max_bin, params: dict, where: str, src: str) -> dict:
    """The kind's own hyper-parameter for a config's ``max_bin`` (bins per feature)."""
    kind = trained_kind(name)
    if kind.bins is None:
        raise ConfigError(f"{src}: {where}.max_bin: {name} splits on raw values and has no bin count")
    native = kind.bins[0]
    limit = 255 if native == "n_bins" else None  # the cascade's bins are uint8 with one kept for NaN
    if not isinstance(max_bin, int) or isinstance(max_bin, bool) or max_bin < 2 or (limit and max_bin > limit):
        bound = f"2 to {limit}" if limit else "at least 2"
        raise ConfigError(f"{src}: {where}.max_bin: expected an integer {bound}, got {max_bin!r}")
    if native in params:
        raise ConfigError(f"{src}: {where}: give the bin count once, as max_bin or as params.{native}, not both")
    return {native: max_bin}


TOP_LEVEL_KEYS = (
    "name",
    "title",
    "data",
    "predictors",
    "fluxes",
    "extraction",
    "training",
    "models",
    "members",
    "ensemble",
    "validation",
    "applicability",
    "explain",
    "output",
    "storage_options",
)


def _parse_storage_options(raw, src: str) -> dict[str, dict]:
    """``storage_options``: fsspec options per protocol; credentials are refused (they belong in the
    environment: the configuration is copied into run.json)."""
    from uflux_xr.io.storage import secret_options

    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in raw.items()):
        raise ConfigError(
            f"{src}: storage_options: expected options per protocol, e.g. "
            "{s3: {endpoint_url: 'http://minio:9000'}, gs: {token: anon}}"
        )
    secrets = secret_options(raw)
    if secrets:
        raise ConfigError(
            f"{src}: storage_options: {secrets} hold credentials, and the configuration is copied into run.json; "
            "give them through the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
            "GOOGLE_APPLICATION_CREDENTIALS, ...) or the backend's own configuration file instead"
        )
    return {k: dict(v) for k, v in raw.items()}


def parse_config(raw: dict, src: str = "<config>") -> RunConfig:
    """Validate a configuration mapping (as loaded from YAML), section by section.

    Raises
    ------
    ConfigError
        Naming ``src``, the offending key and what was expected.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{src}: expected a YAML mapping at the top level")
    _check_keys(raw, set(TOP_LEVEL_KEYS), "top level", src)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{src}: name: expected a non-empty string")
    data = _section(raw, "data", src)
    _check_keys(data, set(DataConfig.KEYS), "data", src)
    if data.get("source") not in SOURCES:
        raise ConfigError(f"{src}: data.source: expected one of {list(SOURCES)}, got {data.get('source')!r}")
    domain = _parse_domain(data, src) if data["source"] != "files" or "domain" in data else None
    fluxes = _name_list(raw, "fluxes", src)
    bad = [f for f in fluxes if f not in registry()["fluxes"]]
    if bad:
        raise ConfigError(f"{src}: fluxes: unknown flux(es) {bad}; expected some of {sorted(registry()['fluxes'])}")
    ensemble = EnsembleConfig.parse(raw, fluxes, src)
    return RunConfig(
        name=name,
        fluxes=fluxes,
        data=DataConfig.parse(data, domain, src),
        ensemble=ensemble,
        domain=domain,
        extraction=ExtractionConfig.parse(_section(raw, "extraction", src), src),
        training=TrainingConfig.parse(_section(raw, "training", src), src),
        validation=ValidationConfig.parse(_section(raw, "validation", src), ensemble.models[0].name, src),
        applicability=ApplicabilityConfig.parse(_section(raw, "applicability", src), src),
        explain=ExplainConfig.parse(_section(raw, "explain", src), fluxes, src),
        output=OutputConfig.parse(_section(raw, "output", src), raw.get("title"), src),
        storage_options=_parse_storage_options(raw.get("storage_options"), src),
        path=src,
    )


#: What a product made from a demo world in place of a configuration's inputs says, in its title first.
SYNTHETIC_LABEL = "SYNTHETIC INPUTS (demo world, not measurements)"


def with_demo_inputs(config: RunConfig) -> RunConfig:
    """``config`` run on the demo world of its domain (``data.fallback``) in place of its input files.

    The product's title starts with :data:`SYNTHETIC_LABEL`, its ``synthetic_inputs`` attribute says so,
    and the run summary and report carry the same words.  A demo configuration is returned as it is.

    Raises
    ------
    ConfigError
        When the configuration reads files and names no demo world (``data.fallback``).
    """
    data = config.data
    if data.source != "files":
        return config
    if not data.fallback:
        raise ConfigError(
            f"{config.path}: --demo-inputs needs data.fallback: lazy_demo (and data.domain, data.period) "
            "to know which demo world stands in for the inputs"
        )
    attrs = dict(config.output.attrs)
    attrs["title"] = f"{SYNTHETIC_LABEL}: {attrs.get('title', config.name)}"
    attrs["synthetic_inputs"] = (
        f"yes: made from the synthetic {data.fallback} world of the domain, not from the files the configuration "
        f"names ({data.cube_path}, {data.sites_path}); for testing the run, not for science"
    )
    return replace(
        config,
        data=replace(data, source=data.fallback, demo_inputs=True),
        output=replace(config.output, attrs=attrs),
    )


def load_config(path: str | Path, *, demo_inputs: bool = False) -> RunConfig:
    """Read and validate a YAML run configuration.

    Parameters
    ----------
    path : str or path-like
        The YAML file.
    demo_inputs : bool
        Run on the demo world of the configuration's domain in place of its input files
        (:func:`with_demo_inputs`; command line: ``--demo-inputs``).

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
    config = replace(parse_config(raw, str(path)), text=text)
    return with_demo_inputs(config) if demo_inputs else config
