"""The upscaling job: inputs -> training table -> validation -> ensemble -> product.

:func:`run` reads nothing from the command line and prints nothing; the CLI
wraps it.  Everything it makes goes under one output directory::

    inputs/            demo world as written to disk (cube.zarr, sites.nc, truth.zarr)
    training_table.csv predictors at the towers joined to the tower fluxes
    validation/        metrics.csv, by_igbp.csv, by_site.csv, predictions.csv (held-out rows)
    models/<member>/<flux>.uxm
    product.zarr, product.nc
    product_stats.zarr  ensemble mean, SD and member count per cell
    totals.csv         area-weighted annual totals per member and the ensemble (Pg C yr-1, km3 yr-1)
    completeness.csv   per time step, flux and region: land area with a DI and the shares inside the AOA
    product_vs_truth.csv  (demo world only)
    run.json           provenance: configuration, versions, members, timings, notes, plan against actual
    report.html        maps, seasonal cycles, validation and provenance (uflux_xr.report.run_report)

The output directory may be an fsspec URL (``s3://bucket/run``; credentials and endpoint from the
environment, :mod:`uflux_xr.io.storage`).  Then what dask workers write or read goes there directly:
``product.zarr`` (resumable, opening only when complete), ``product_stats.zarr`` and ``models/``.  The
client's own files (tables, ``product.nc``, ``run.json``, the report) are made in a local staging folder
and put under the URL at the end of the run.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr import __version__
from uflux_xr.core.domain import spatial_dims
from uflux_xr.core.metrics import all_metrics
from uflux_xr.core.progress import ProgressLog, shown
from uflux_xr.grid.completeness import aoa_frames, aoa_sums, applicability_layers, residual_weights
from uflux_xr.grid.ensemble import area_weighted_total, ensemble_statistics
from uflux_xr.grid.extract import extract_at_sites
from uflux_xr.grid.features import resolve_features
from uflux_xr.grid.regions import RegionMap, resolve_regions
from uflux_xr.grid.upscale import NON_NEGATIVE_FLUXES, dedup_report, upscale
from uflux_xr.grid.validate import cross_validate
from uflux_xr.io import write_dataset, write_product
from uflux_xr.io.atomic import write_text_atomic
from uflux_xr.io.jsonable import to_jsonable
from uflux_xr.io.product import write_dataset_computing
from uflux_xr.io.resumable import write_resumable
from uflux_xr.io.storage import (
    exists,
    filesystem,
    fsspec_defaults,
    is_url,
    join,
    read_bytes,
    redact,
    remove,
    upload_folder,
)
from uflux_xr.models import FluxModel, load_model, train
from uflux_xr.models.registry import reduced_bins
from uflux_xr.sources import Inputs, source_for
from uflux_xr.workflow.config import SYNTHETIC_LABEL, ConfigError, RunConfig
from uflux_xr.workflow.preflight import check_predictor_coverage, run_features, tower_targets

log = logging.getLogger(__name__)

MODEL_SUFFIX = ".uxm"


@dataclass
class RunResult:
    """What a run produced: paths, tables and timings [s]."""

    out_dir: Path | str
    products: dict[str, Path | str]
    validation: pd.DataFrame | None
    product_vs_truth: pd.DataFrame | None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    inference: dict[str, dict] = field(default_factory=dict)  # per model: what dedup did (dedup_report)
    applicability: dict[str, dict] = field(default_factory=dict)  # per flux: DI features, weights, threshold
    aoa_summary: str = ""  # the share inside the area of applicability, printed beside the validation table
    explain: dict = field(default_factory=dict)  # the explained period and each member's method (explain section)

    def __repr__(self) -> str:
        return format_summary(self)


def prepare_inputs(config: RunConfig, out_dir: Path, window: Mapping[str, slice] | None = None) -> Inputs:
    """The lazy predictor cube, the site dataset and (demo worlds only) the truth, from the configuration's
    input source (:func:`uflux_xr.sources.source_for`).

    ``window`` (index slices per dim) cuts the cube to a part of the domain and, unless ``training.period``
    is ``all``, the towers to its time steps.
    """
    source = source_for(config)
    (out_dir / "inputs").mkdir(parents=True, exist_ok=True)
    found = source.open(out_dir, window)
    if window and "time" in window and config.training.period == "window":
        found.sites = found.sites.sel(time=found.sites.indexes["time"].intersection(found.cube.indexes["time"]))
    return found


def training_table(config: RunConfig, inputs: Inputs) -> pd.DataFrame:
    """Predictors at the towers joined to their records (see :func:`uflux_xr.grid.extract.extract_at_sites`).

    A source may give the table itself (the lazy demo world evaluates its predictors at the tower cells,
    the same values without computing any cube chunk).
    """
    targets = tower_targets(config, inputs.sites)
    if config.training.drivers == "towers":
        log.info(
            "training on the towers' own drivers (training.drivers: towers): the cube is not sampled at the "
            "towers, so the models learn tower weather and apply it to the cube's"
        )
        return tower_driver_table(inputs.sites, config.ensemble.predictors, targets)
    table = inputs.source.training_table(inputs, config.ensemble.predictors, targets)
    if table is not None:
        return table
    return extract_at_sites(
        inputs.cube if inputs.training_cube is None else inputs.training_cube,
        inputs.sites,
        config.ensemble.predictors,
        targets=targets,
        method=config.extraction.method,
        window=config.extraction.window,
    )


def tower_driver_table(sites: xr.Dataset, features, targets) -> pd.DataFrame:
    """Training table whose predictors are the towers' own records (plus day-of-year harmonics and IGBP).

    For towers that lie outside the cube, or to train on measured rather than
    reanalysis weather; the run summary says so.

    Raises
    ------
    uflux_xr.grid.extract.ExtractionError
        A predictor the towers do not record.
    """
    from uflux_xr.core.variables import igbp_code
    from uflux_xr.grid.extract import ExtractionError, join_site_table

    features = list(features)
    at = {}
    if "IGBP" in features:
        codes = [igbp_code(v) for v in sites["igbp"].values]
        at["IGBP"] = xr.DataArray(np.asarray(codes, np.int16), dims="site", attrs={"units": "1"})
    try:
        at.update(resolve_features(sites, [f for f in features if f != "IGBP"]))
    except KeyError as err:
        raise ExtractionError(f"training.drivers: towers: {err.args[0]}") from None
    table = join_site_table(xr.Dataset(at).assign_coords(site=sites["site"].values), sites, features, targets)
    table.attrs["drivers"] = "towers"
    return table


def _training_fingerprint(table: pd.DataFrame, config: RunConfig) -> str:
    """Hash of what the models depend on: the training table and the model settings."""
    h = hashlib.sha256(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    members = [
        (m.label, m.model.name, m.model.params, m.model.train_options, m.seed, m.predictors)
        for m in config.ensemble.member_specs
    ]
    h.update(json.dumps([config.fluxes, config.training.qc_threshold, members], sort_keys=True, default=str).encode())
    return h.hexdigest()


def train_ensemble(table: pd.DataFrame, config: RunConfig, model_dir: Path | str) -> dict[str, dict[str, FluxModel]]:
    """Fit every member of ``config.ensemble.member_specs`` for every flux and save it under ``model_dir``.

    Member labels are ``[<proxy set>-]<kind>-<seed>``; the seed also seeds the estimator.
    Models already saved by an earlier run of the same training table and
    settings (``model_dir/fingerprint.txt``) are loaded instead of refitted, so
    a restarted run continues with the very models its product started with.
    """
    fingerprint = _training_fingerprint(table, config)
    stamp = join(model_dir, "fingerprint.txt")
    reuse = exists(stamp) and read_bytes(stamp).decode() == fingerprint
    if not reuse:
        remove(stamp)
    members: dict[str, dict[str, FluxModel]] = {}
    specs = config.ensemble.member_specs
    progress = ProgressLog(len(specs) * len(config.fluxes), "training the ensemble", log, unit="models")
    for spec in specs:
        members[spec.label] = {}
        for flux in config.fluxes:
            path = join(model_dir, spec.label, f"{flux}{MODEL_SUFFIX}")
            if reuse and exists(path):
                members[spec.label][flux] = load_model(path)
                progress.step()
                continue
            model = train(
                table,
                flux,
                list(spec.predictors),
                model=spec.model.name,
                random_state=spec.seed,
                qc_threshold=config.training.qc_threshold,
                **spec.model.train_options,
                **spec.model.params,
            )
            model.save(path)
            members[spec.label][flux] = model
            progress.step()
    write_text_atomic(stamp, fingerprint)
    if reuse:
        log.info("reused the models of an earlier run with the same training table and settings")
    return members


def validate_fluxes(table: pd.DataFrame, config: RunConfig, out_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grouped cross-validation of every flux; writes the metric tables and returns the pooled one
    and the held-out predictions (``target``, ``site``, ``time``, ``fold``, ``obs``, ``pred``).

    With proxy sets, the first set's predictors are validated.  When the validated model has
    fewer histogram bins than its kind's default (``max_bin``), the same folds are fitted again
    with the default, and the pooled table gains ``max_bin``, ``default_bins``,
    ``r2_default_bins`` and ``rmse_default_bins``: the held-out skill the smaller bin count costs.
    """
    spec = next((s for s in config.ensemble.models if s.name == config.validation.model), None)
    predictors = list(config.ensemble.member_specs[0].predictors)
    params = {**(spec.train_options | spec.params if spec else {}), **config.validation.params}

    def validate(flux: str, model_params: dict):
        return cross_validate(
            table,
            flux,
            predictors,
            config.validation.model,
            cv=config.validation.cv or "loso",  # called only when validation is on
            n_splits=config.validation.n_splits,
            qc_threshold=config.training.qc_threshold,
            **model_params,
        )

    results = [validate(flux, params) for flux in config.fluxes]
    out_dir.mkdir(parents=True, exist_ok=True)
    pooled = pd.concat([r.metrics for r in results], ignore_index=True)
    bins = reduced_bins(config.validation.model, params)
    if bins is not None:
        native, count, default = bins
        log.info("validating again with %s=%d, the default, for the skill cost of %d bins", native, default, count)
        reference = pd.concat(
            [validate(flux, {**params, native: default}).metrics for flux in config.fluxes], ignore_index=True
        )
        pooled = pooled.assign(
            max_bin=count,
            default_bins=default,
            r2_default_bins=reference["r2"].to_numpy(),
            rmse_default_bins=reference["rmse"].to_numpy(),
        )
    pooled.to_csv(out_dir / "metrics.csv", index=False)
    pd.concat([r.by_igbp for r in results]).to_csv(out_dir / "by_igbp.csv")
    pd.concat([r.by_site for r in results]).to_csv(out_dir / "by_site.csv")
    predictions = pd.concat([r.predictions.assign(target=r.target) for r in results], ignore_index=True)
    predictions.to_csv(out_dir / "predictions.csv", index=False)
    return pooled, predictions


def score_against_truth(product: xr.Dataset, truth: xr.Dataset) -> pd.DataFrame:
    """Metrics of the ensemble-mean product against the true fluxes, per variable.

    ``NEE_RECO_GPP`` is scored against the true NEE.
    """
    order = ["GPP", "RECO", "NEE", "NEE_RECO_GPP", "LE", "ET", "H"]
    names = sorted(product.data_vars, key=lambda n: (order.index(n) if n in order else len(order), n))
    rows = []
    for name in names:
        ref = "NEE" if name == "NEE_RECO_GPP" else name
        if ref not in truth or "member" not in product[name].dims:
            continue
        pred = product[name].mean("member")
        rows.append({"variable": name, **all_metrics(pred.values, truth[ref].values)})
    return pd.DataFrame(rows)


def run(
    config: RunConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    window: Mapping[str, slice] | None = None,
    report: bool = True,
) -> RunResult:
    """Run the whole job of ``config`` into ``out_dir``.

    The dask scheduler is whatever is active (threaded by default; a
    ``distributed.Client`` when the caller made one).

    Parameters
    ----------
    config : RunConfig
        The job.
    out_dir : str or path-like
        Where everything goes (see the module docstring).
    progress : bool
        Show the progress: log lines of each step and dask's bar while the product is written, on stderr
        where the application has not set up :mod:`logging` (:func:`uflux_xr.core.progress.shown`).
    window : mapping of str to slice, optional
        Index slices of the domain to produce (e.g. ``{"time": slice(0, 8),
        "y": slice(0, 500)}``); towers keep their positions, their records are
        cut to the window's time steps (``training.period: window``) or kept
        whole (``all``: the models of the whole run).
    report : bool
        Write ``report.html`` at the end (:func:`uflux_xr.report.run_report`).

    Returns
    -------
    RunResult
        Paths of the products and the validation and truth-score tables.
    """
    with shown(progress), fsspec_defaults(config.storage_options):
        if not is_url(out_dir):
            return _run(config, Path(out_dir), Path(out_dir), progress=progress, window=window, report=report)
        url = os.fspath(out_dir).rstrip("/")
        staging = Path(tempfile.mkdtemp(prefix="uflux-xr-run-"))
        try:
            result = _run(config, staging, url, progress=progress, window=window, report=report)
            log.info("putting the run's files under %s", redact(url))
            upload_folder(staging, url)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result.out_dir = url
        result.products = {k: _at_url(p, staging, url) for k, p in result.products.items()}
        return result


def _place(shared: Path | str, name: str) -> Path | str:
    """``name`` under the run's shared place: a path in a local folder, a URL on object storage."""
    return shared / name if isinstance(shared, Path) else join(shared, name)


def _at_url(path: Path | str, staging: Path, url: str) -> Path | str:
    """Where a file of the staging folder is after the upload."""
    if isinstance(path, Path) and path.is_relative_to(staging):
        return join(url, path.relative_to(staging).as_posix())
    return path


def _run(
    config: RunConfig,
    out_dir: Path,
    shared: Path | str,
    *,
    progress: bool,
    window: Mapping[str, slice] | None,
    report: bool,
):
    """:func:`run`'s work: the client's files go to ``out_dir``, what workers write and read (product,
    statistics, models) to ``shared`` (the same folder for a local run, the run's URL otherwise)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    from uflux_xr.workflow.plan import plan_run

    plan = plan_run(config, window=dict(window) if window else None, measure=False)

    inputs = prepare_inputs(config, out_dir, window)
    cube, truth = inputs.cube, inputs.truth
    regions = _region_layer(config, cube)
    timings["inputs"] = time.perf_counter() - t0

    t = time.perf_counter()
    table = training_table(config, inputs)
    table.to_csv(out_dir / "training_table.csv", index=False)
    timings["extract"] = time.perf_counter() - t

    validation = predictions = None
    if config.validation.cv:
        log.info("validating %s with %s (%s)", ", ".join(config.fluxes), config.validation.model, config.validation.cv)
        t = time.perf_counter()
        validation, predictions = validate_fluxes(table, config, out_dir / "validation")
        timings["validate"] = time.perf_counter() - t

    log.info("training %d members x %d fluxes", len(config.ensemble.member_specs), len(config.fluxes))
    t = time.perf_counter()
    model_dir = _place(shared, "models")
    members = train_ensemble(table, config, model_dir)
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    if not plan.predictor_coverage:  # the plan checked a cube on disk already (preflight); a demo world here
        check_predictor_coverage(cube, run_features(config))
    timings["coverage_check"] = time.perf_counter() - t  # one time chunk of inputs, whatever the run's length
    product, applicability = lazy_product(config, table, members, cube, model_dir, predictions, timings)
    products, counts, totals, aoa_note = write_outputs(
        config, product, table, inputs, out_dir, regions, applicability, progress, shared=shared
    )
    clipped = _clipped_note(counts)
    timings["upscale_write"] = time.perf_counter() - t
    inference = dedup_report()

    scores = None
    if truth is not None and _cells(product) > MAX_TRUTH_SCORE_VALUES:
        log.info("product of %.2g values: not scored against the truth in memory", _cells(product))
    elif truth is not None:
        final = (
            xr.open_zarr(products["zarr"], consolidated=False)
            if "zarr" in products
            else xr.open_dataset(products["netcdf"])
        )
        scores = score_against_truth(final, truth)
        scores.to_csv(out_dir / "product_vs_truth.csv", index=False)
    explained: dict = {}
    explain_line = ""
    if config.explain.enabled:
        t = time.perf_counter()
        products["explanation"], explained, explain_line = explain_run(config, members, cube, table, out_dir)
        timings["explain"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    log.info("run finished in %.1f s", timings["total"])
    notes = _run_notes(table, out_dir, clipped, explain_line, inference)
    if config.data.demo_inputs:
        notes.insert(0, f"{SYNTHETIC_LABEL}: {config.output.attrs['synthetic_inputs']}")
    result = RunResult(
        out_dir, products, validation, scores, timings, notes, inference, applicability, aoa_note, explained
    )
    record = run_record(config, result, plan, table, counts, started)
    write_text_atomic(out_dir / "run.json", json.dumps(to_jsonable(record), indent=2))
    if report:
        from uflux_xr.report import run_report

        t = time.perf_counter()
        try:
            result.products["report"] = run_report(
                out_dir, product=xr.open_zarr(products["zarr"]) if is_url(shared) and "zarr" in products else None
            )
        except Exception as err:  # the product is complete and stays usable; say so rather than fail the run
            log.exception("report.html not written")
            notes.append(f"report.html not written ({err}); remake it with: uflux-xr report {redact(shared)}")
        timings["report"] = time.perf_counter() - t
        record["timings"] = dict(timings)
        write_text_atomic(out_dir / "run.json", json.dumps(to_jsonable(record), indent=2))
    return result


def lazy_product(
    config: RunConfig,
    table: pd.DataFrame,
    members: dict[str, dict[str, FluxModel]],
    cube: xr.Dataset,
    model_dir: Path | str,
    predictions: pd.DataFrame | None,
    timings: dict[str, float],
) -> tuple[xr.Dataset, dict[str, dict]]:
    """The run's product as a lazy dataset: the members' predictions and, when the ``applicability`` section
    asks for them, the DI/AOA/error layers (with their per-flux fit summaries, ``{}`` without)."""
    applicability: dict[str, dict] = {}
    layers = None
    if config.applicability.enabled:
        t_aoa = time.perf_counter()
        layers, applicability = applicability_layers(
            table,
            members,
            cube,
            model_dir=model_dir,
            predictions=predictions,
            weights=config.applicability.weights,
            threshold=config.applicability.threshold,
            qc_threshold=config.training.qc_threshold,
            error_noise=config.applicability.error_noise,
        )
        timings["applicability_fit"] = time.perf_counter() - t_aoa
    weights = None
    if layers is not None and config.applicability.hybrid_residual == "fade":
        weights = residual_weights(layers, applicability)
    dedup_report(reset=True)  # the run's summary counts what the product's predictions do, from here
    product = upscale(members, cube, dedup=config.output.dedup, residual_weights=weights)
    if layers is not None:
        product = product.assign(layers.data_vars)
    return product, applicability


def write_outputs(
    config: RunConfig,
    product: xr.Dataset,
    table: pd.DataFrame,
    inputs: Inputs,
    out_dir: Path,
    regions,
    applicability: dict[str, dict],
    progress: bool,
    *,
    shared: Path | str | None = None,
) -> tuple[dict[str, Path | str], dict, pd.DataFrame, str]:
    """Compute and write the product (resumable Zarr, then NetCDF converted from it), then its ensemble
    statistics, totals, value counts and AOA shares in one pass.

    ``shared``: where the product and its statistics go (default ``out_dir``; a URL for object storage).

    Returns
    -------
    tuple
        (paths by kind, {flux: (clipped, valid) counts}, the totals table, the AOA note)
    """
    history = f"uflux-xr run {config.path} (name={config.name})"
    products: dict[str, Path | str] = {}
    shared = out_dir if shared is None else shared
    zarr_path = _place(shared, "product.zarr")
    written = write_resumable(
        product,
        zarr_path,
        attrs=config.output.attrs,
        history=history,
        identity=(
            f"{_training_fingerprint(table, config)} {inputs.source.name} {config.data.cube_path} {config.data.seed}"
        ),
        region_chunks=_region_chunks(product),
        progress=progress,
    )
    if "zarr" in config.output.formats:
        products["zarr"] = written
    if "netcdf" in config.output.formats:
        # Convert from the Zarr store so the models run once for both formats.
        products["netcdf"] = write_product(
            xr.open_zarr(zarr_path, consolidated=False), out_dir / "product.nc", progress=False
        )
    # The members of a chunk read by one task: the ensemble statistics take them together.
    complete = xr.open_zarr(zarr_path, consolidated=False, chunks={"member": -1})
    # One pass over the written product: statistics, value counts, totals and the AOA shares read each
    # chunk once.
    stats = ensemble_statistics(complete)
    aoa_lazy, region_names = aoa_sums(complete, stats, regions) if applicability else ({}, [])
    products["stats"], (counts, totals, aoa_computed) = write_dataset_computing(
        stats,
        _place(shared, "product_stats.zarr"),
        _value_counts_lazy(complete),
        _totals_lazy(complete),
        aoa_lazy,
        progress=False,
    )
    counts = {flux: (int(c), int(v)) for flux, (c, v) in counts.items()}
    totals = _totals_table(complete, totals)
    aoa_note = ""
    if applicability:
        inside, by_time = aoa_frames(aoa_computed, region_names)
        totals = totals.merge(inside, on=["variable", "member"], how="left")
        by_time.to_csv(out_dir / "completeness.csv", index=False)
        aoa_note = _aoa_note(inside, applicability, by_region=regions is not None)
    totals.to_csv(out_dir / "totals.csv", index=False)
    if "zarr" not in config.output.formats:
        remove(zarr_path)
    return products, counts, totals, aoa_note


def _run_notes(table: pd.DataFrame, out_dir: Path, clipped: str, explain_line: str, inference: dict) -> list[str]:
    """The run summary's notes: clipped values, explanations, deduplication and how towers met the grid
    (written to ``tower_cells.csv``)."""
    notes = [clipped] if clipped else []
    if explain_line:
        notes.append(explain_line)
    dedup_line = _dedup_note(inference)
    if dedup_line:
        notes.append(dedup_line)
    if table.attrs.get("drivers") == "towers":
        notes.append(
            "Trained on the towers' own drivers (training.drivers: towers), not on the cube at the tower cells."
        )
    if "tower_cells" in table.attrs:
        cells = table.attrs["tower_cells"]
        cells.to_csv(out_dir / "tower_cells.csv", index=False)
        notes.append(
            f"Towers to cells: median {cells['distance_km'].median():.2f} km, {int(cells['moved'].sum())} moved to "
            "a neighbouring cell"
            + (
                f", elevation difference (cell - tower) {cells['elevation_difference'].abs().max():.0f} m at most"
                if "elevation_difference" in cells
                else ""
            )
            + " (tower_cells.csv)"
        )
    return notes


def explain_run(
    config: RunConfig, members: dict[str, dict[str, FluxModel]], cube: xr.Dataset, table: pd.DataFrame, out_dir: Path
) -> tuple[Path | str, dict, str]:
    """The ``explain`` section's outputs: ``explanations/explanation.nc`` (maps) and ``importance.csv``.

    Returns the NetCDF path, what ``run.json`` records (period, methods) and the summary line naming
    the two leading drivers of each flux.
    """
    from uflux_xr.grid.explain import explain, importance_table

    spec = config.explain
    maps = explain(
        members,
        cube,
        period=spec.period,
        fluxes=spec.fluxes,
        background=table,
        every=spec.every,
        surrogate_rows=spec.surrogate_rows,
        seed=config.data.seed,
    )
    maps.attrs["history"] = (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H:%M:%SZ} uflux-xr run {config.path} (name={config.name})"
    )
    path = write_dataset(maps, out_dir / "explanations" / "explanation.nc", progress=False)
    with xr.open_dataset(path) as written:
        importance = importance_table(written)
        period, methods = written.attrs["uflux_explain_period"], written.attrs["uflux_explain_methods"]
    importance.to_csv(out_dir / "explanations" / "importance.csv", index=False)
    ranked = importance.dropna(subset=["rank"])
    leaders = "; ".join(
        f"{flux} " + ", ".join(f"{r.term} {r.share:.0f} %" for r in rows.nsmallest(2, "rank").itertuples())
        for flux, rows in ranked.groupby("variable", sort=False)
    )
    record = {"period": period, "methods": methods, "fluxes": sorted({str(v) for v in importance["variable"]})}
    line = f"Leading drivers ({record['period']}; share of the mean |contribution|, explanations/): {leaders}"
    return path, record, line


def _region_layer(config: RunConfig, cube: xr.Dataset) -> RegionMap | None:
    """The cube's layer named by ``applicability.regions``, resolved (and so checked) before any training;
    None without one."""
    name = config.applicability.regions
    if name is None or not config.applicability.enabled:
        return None
    if name not in cube:
        raise ConfigError(
            f"{config.path}: applicability.regions: {name!r} is not a variable of the cube "
            f"(it has {sorted(map(str, cube.data_vars))})"
        )
    return resolve_regions(cube[name], f"{config.path}: applicability.regions")  # a bad layer fails here


def _aoa_note(inside: pd.DataFrame, applicability: dict[str, dict], by_region: bool = False) -> str:
    """Share of the land area (cell-days) inside each flux's area of applicability and its DI threshold,
    and the fluxes that got no AOA, with why."""
    parts = [
        f"{row.variable} {100 * row.area_share_inside_aoa:.1f} % (DI <= {applicability[row.variable]['threshold']:.3f})"
        for row in inside.itertuples()
        if row.variable in applicability
    ]
    lines = []
    if parts:
        lines.append(
            "Inside the area of applicability (land area x time): "
            + ", ".join(parts)
            + ("; per time step and region in completeness.csv" if by_region else "; per time step in completeness.csv")
        )
    skipped = [f"{flux} ({s['skipped']})" for flux, s in applicability.items() if "skipped" in s]
    if skipped:
        lines.append("No area of applicability for " + "; ".join(skipped))
    return "\n".join(lines)


def _dedup_note(inference: dict[str, dict]) -> str:
    """One line on deduplicated inference: the share of unique rows, and effective rows/s of the model calls."""
    rows = sum(s["rows"] for s in inference.values())
    if not rows:
        return ""
    unique = sum(s["unique_rows"] for s in inference.values())
    plain = sum(s["plain_rows"] for s in inference.values())
    seconds = sum(s["code_seconds"] + s["predict_seconds"] + s["plain_seconds"] for s in inference.values())
    off = sum(1 for s in inference.values() for e in s["enabled"] if e is False)
    line = (
        f"Deduplicated inference: {unique / rows:.1%} of {rows:,} predicted rows were unique; "
        f"{(rows + plain) / seconds:,.0f} rows/s per core in the model calls (coding included)"
    )
    if plain:
        line += f"; {plain:,} rows predicted plainly where dedup did not pay ({off} model-worker decisions)"
    return line + "."


def _value_counts_lazy(product: xr.Dataset) -> dict:
    """{flux: (values set to 0, valid values)}, lazily, over all members of the fluxes in
    :data:`uflux_xr.grid.upscale.NON_NEGATIVE_FLUXES` and of the product's first flux (0 clipped for others)."""
    names = [n for n, v in product.data_vars.items() if "member" in v.dims]
    lazy = {}
    # the clipped fluxes, and the first flux for the count of predictions (one more read at most)
    for flux in [n for n in names if n in NON_NEGATIVE_FLUXES or n == names[0]]:
        var = product[flux]
        # np.signbit is what count_clipped sums: predictions below 0 are stored as -0.0
        clipped = np.signbit(var).sum() if flux in NON_NEGATIVE_FLUXES else 0
        lazy[flux] = (clipped, var.notnull().sum())
    return lazy


def _clipped_note(counts: dict[str, tuple[int, int]]) -> str:
    """The count of GPP and RECO predictions set to 0 (:data:`uflux_xr.grid.upscale.NON_NEGATIVE_FLUXES`)."""
    parts = []
    for flux in NON_NEGATIVE_FLUXES:
        if flux in counts:
            n, total = counts[flux]
            parts.append(f"{flux} {n:,} of {total:,} ({100 * n / max(total, 1):.2f} %)")
            log.info("%s: %d of %d predicted values were below 0 and set to 0", flux, n, total)
    if not parts:
        return ""
    return "Predictions below 0 set to 0 (GPP and RECO cannot be negative): " + ", ".join(parts) + "."


#: Packages whose versions a run records (besides Python's).
RUN_PACKAGES = (
    "uflux-xr",
    "numpy",
    "pandas",
    "xarray",
    "dask",
    "zarr",
    "netCDF4",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "numba",
    "matplotlib",
)


def _disk_bytes(path: Path | str) -> int:
    """Bytes stored under ``path`` (a file, a folder, an object or a prefix), 0 where there is nothing."""
    if not exists(path):
        return 0
    fs, inside = filesystem(path)
    return int(fs.du(inside))


def run_record(config: RunConfig, result: RunResult, plan, table: pd.DataFrame, counts: dict, started: str) -> dict:
    """What ``run.json`` holds: the job, the software, the members, timings, notes, and the dry-run
    plan (:func:`uflux_xr.workflow.plan.plan_run`, without the throughput measurement) against what the run did."""
    from uflux_xr.models.fluxmodel import package_versions

    n_members, n_fluxes = len(plan.members), len(plan.fluxes)
    first = next(iter(counts), None)  # the product's first flux
    predicted = counts[first][1] / max(n_members, 1) if first else float("nan")
    training_rows = int(table[list(config.fluxes)].notna().any(axis=1).sum())
    written = sum(_disk_bytes(p) for k, p in result.products.items() if k != "report")
    upscale_s = result.timings.get("upscale_write", float("nan"))
    rows = [
        {"quantity": "training rows (any flux measured)", "plan": plan.training_rows, "actual": training_rows},
        {
            "quantity": "towers",
            "plan": float("nan") if plan.planned_towers is None else plan.planned_towers,
            "actual": table["site"].nunique(),
        },
        {
            "quantity": "predictions per member and flux",
            "plan": plan.predictions_per_member_flux,
            "actual": predicted,
        },
        {"quantity": "predictions in all", "plan": plan.predictions, "actual": predicted * n_members * n_fluxes},
        {"quantity": "output bytes (plan uncompressed, actual on disk)", "plan": plan.output_bytes, "actual": written},
        {
            "quantity": "predictions per second (upscale and write, all cores)",
            "plan": float("nan"),
            "actual": predicted * n_members * n_fluxes / upscale_s,
        },
    ]
    return {
        "name": config.name,
        "config_path": config.path,
        "inference": result.inference,
        "applicability": result.applicability,
        "explain": result.explain,
        "config_text": config.text,
        "started": started,
        "version": __version__,
        "versions": package_versions(RUN_PACKAGES),
        "fluxes": list(config.fluxes),
        "members": [
            {
                "label": m.label,
                "kind": m.model.name,
                "params": m.model.params,
                **m.model.train_options,
                "seed": m.seed,
                "predictors": list(m.predictors),
            }
            for m in config.ensemble.member_specs
        ],
        "timings": dict(result.timings),
        "notes": list(result.notes),
        "products": {k: str(v) for k, v in result.products.items()},
        "plan_vs_actual": rows,
    }


#: Largest product (values) scored against the demo truth in memory.
MAX_TRUTH_SCORE_VALUES = 5e7
#: Spatial chunks per region and dim in resumable writes of large grids.
REGION_SPATIAL_CHUNKS = 4
#: Fewest member x space x time chunks per region (regions are written one after another).
REGION_MIN_BLOCKS = 16


def _cells(product: xr.Dataset) -> float:
    return float(np.prod([product.sizes[d] for d in product.dims if d != "nv"]))


def _region_chunks(product: xr.Dataset) -> dict[str, int]:
    """Regions of at least ``REGION_MIN_BLOCKS`` member x space x time chunks, so that every worker
    has work within a region, and of at most 4 x 4 spatial chunks on large grids, so that a killed
    run on a big domain loses at most a few minutes of work."""
    ydim, xdim = spatial_dims(product)
    n_spatial = len(product.chunks[ydim]) * len(product.chunks[xdim])
    n_members = len(product.chunks["member"]) if "member" in product.chunks else 1
    if n_spatial > REGION_SPATIAL_CHUNKS**2:
        return {"time": 1, ydim: REGION_SPATIAL_CHUNKS, xdim: REGION_SPATIAL_CHUNKS}
    return {"time": max(1, math.ceil(REGION_MIN_BLOCKS / (n_spatial * n_members)))}


def _totals_lazy(product: xr.Dataset) -> dict[str, xr.DataArray]:
    """Each member-and-time variable's area-weighted total per member, lazily: Pg C yr-1, km3 yr-1
    of water, or W m-2 means (:func:`uflux_xr.grid.ensemble.area_weighted_total`)."""
    return {
        str(name): area_weighted_total(var)
        for name, var in product.data_vars.items()
        if {"member", "time"} <= set(var.dims)
    }


def _totals_table(product: xr.Dataset, totals: dict[str, xr.DataArray]) -> pd.DataFrame:
    """The computed ``totals`` as a table, one row per variable and member plus the ensemble's mean and SD."""
    labels = product["member_name"].values if "member_name" in product else product["member"].values
    rows = [
        {"variable": name, "member": label, "total": float(value), "units": total.attrs["units"]}
        for name, total in totals.items()
        for label, value in zip(labels, total.values, strict=True)
    ]
    table = pd.DataFrame(rows)
    if not table.empty:
        means = table.groupby(["variable", "units"], sort=False)["total"].agg(["mean", "std", "count"]).reset_index()
        table = pd.concat([table, means.rename(columns={"mean": "total"}).assign(member="ensemble")], ignore_index=True)
    return table


def format_summary(result: RunResult) -> str:
    """Human-readable summary of a run (validation, truth scores, products, timings)."""
    lines = []
    if result.validation is not None:
        v = result.validation
        lines.append(f"Validation ({v['cv'].iloc[0]}, {v['model'].iloc[0]}), pooled over held-out sites:")
        columns = ["target", "n", "nse", "r2", "rmse", "mae", "bias", "slope", "ioa"]
        if "r2_default_bins" in v:
            # The skill cost of fewer histogram bins, measured on the same folds.
            v = v.assign(dr2_bins=v["r2"] - v["r2_default_bins"])
            columns.append("dr2_bins")
            lines[-1] = lines[-1][:-1] + (
                f" (max_bin {v['max_bin'].iloc[0]}; dr2_bins: r2 minus r2 with the default"
                f" {v['default_bins'].iloc[0]} bins, same folds):"
            )
        lines.append(
            v[columns].to_string(
                index=False, float_format=lambda x: f"{x:.3f}", formatters={"dr2_bins": lambda x: f"{x:+.4f}"}
            )
        )
    if result.aoa_summary:
        lines.append(result.aoa_summary)
    if result.product_vs_truth is not None:
        lines.append("\nProduct (ensemble mean) against the demo world's truth:")
        lines.append(
            result.product_vs_truth[["variable", "n", "nse", "r2", "rmse", "bias", "slope"]].to_string(
                index=False, float_format=lambda x: f"{x:.3f}"
            )
        )
    lines += [f"\n{note}" for note in result.notes]
    lines.append("\nProducts: " + ", ".join(str(p) for p in result.products.values()))
    lines.append("Timings [s]: " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    return "\n".join(lines)
