"""The dry-run plan of a run: what it will compute, hold and write, before any work.

:func:`plan_run` sizes a configuration's job from its domain (or its cube's
metadata) and ensemble alone: chunks, dask tasks, model predictions, memory per
worker, output size, and the core-hours the predictions take at a throughput
measured on this machine (:func:`measure_throughput`: each model kind of the
configuration, with its hyper-parameters, fitted on demo-world tower data and
timed predicting on one thread, as in a dask task).

The memory model (per worker thread, ``C`` cells in a chunk, ``F`` features,
``V`` cube variables, 4-byte floats) is::

    inputs   V·C·4           the cube chunk (all variables, as the lazy world makes them)
    make     16·C·8          the lazy world's float64 temporaries while it makes a chunk
    predict  (2F + 3)·C·4    feature columns and their codes, the stacked matrix, mask
    task     M·C·(4 + 8)     the M models of one prediction task (uflux_xr.grid.upscale.model_batches):
                             their outputs (a hybrid's baseline counts as one) and the
                             index of each one's distinct rows
    outputs  K·C·4           member outputs of the chunk waiting to be written (K ≤ 4)

plus, per worker process, the interpreter and libraries (~300 MB) and every
model it has loaded (models are loaded once per worker and kept; their size is
measured on the calibration fit and scaled with the training rows for forests).
The bounded-memory test checks measured peaks against this model.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from uflux_xr.grid.upscale import models_per_task
from uflux_xr.workflow.config import ModelSpec, RunConfig
from uflux_xr.workflow.preflight import check_predictor_coverage, run_features, tower_targets
from uflux_xr.workflow.rates import store_rate, stored_rate

log = logging.getLogger(__name__)

BYTES = 4  # float32
BASE_WORKER_BYTES = 300e6
LAZY_TEMPORARIES = 16  # float64 arrays alive at once while the lazy world makes a chunk
OUTPUTS_IN_FLIGHT = 4
#: Bytes per cell of one model in a prediction task: its float32 output and (at most) an int64
#: index of its distinct rows (models sharing codes share it).
TASK_BYTES_PER_MODEL = 4 + 8
TASKS_PER_MODEL = 3
TASKS_PER_DERIVED = 2
#: Derived outputs per member: NEE_RECO_GPP (GPP and RECO) and ET (LE).
_DERIVED = {"NEE_RECO_GPP": {"GPP", "RECO"}, "ET": {"LE"}}
#: Model kinds whose size grows with the training rows (fully grown trees).
_FOREST_KINDS = ("deepforest", "random_forest")


@dataclass
class Throughput:
    """Measured single-thread prediction rate and model size of one model kind."""

    kind: str
    predictions_per_s: float
    model_bytes: float
    training_rows: int
    unique_fraction: float | None = None  # on the sampled chunks, with dedup
    dedup_predictions_per_s: float | None = None  # rows of the sampled chunks per second, dedup on, coding included
    # Predictions of one model per second through the upscaler's own block function on the sampled
    # chunks (feature assembly, plausibility checks, the model calls as dedup="auto" would run them,
    # scattering back), a member's models of every flux predicted together as in the run's tasks.
    upscaler_predictions_per_s: float | None = None

    @property
    def effective_per_s(self) -> float:
        """The rate ``dedup="auto"`` gets: deduplicated where that measured faster, plain otherwise."""
        return max(self.predictions_per_s, self.dedup_predictions_per_s or 0.0)


@dataclass
class RunPlan:
    """What a run will do (see :func:`plan_run`); ``format()`` gives the printed plan."""

    name: str
    source: str
    grid: str
    shape: dict[str, int]
    chunks: dict[str, tuple[int, ...]]
    members: list[str]
    fluxes: list[str]
    outputs: list[str]
    land_fraction: float
    training_rows: int
    threads_per_worker: int
    n_features: int
    member_kinds: dict[str, str]
    throughput: dict[str, Throughput] = field(default_factory=dict)
    overlap: list[str] = field(default_factory=list)
    seconds: float = 0.0  # time the plan took [s]
    measure_seconds: float = 0.0  # of which measuring the model kinds' throughput [s]
    rate_origin: dict[str, str] = field(default_factory=dict)  # per kind: where a rate not measured now comes from
    predictor_coverage: dict[str, float] = field(default_factory=dict)  # share of land cells with each predictor
    input_s_per_cell: float = 0.0  # making or reading the inputs of a sampled chunk [s per time step x cell]
    write_s_per_cell: float = 0.0  # compressing and writing one output of a sampled chunk [s per time step x cell]
    # Ensemble statistics, totals and value counts of a sampled chunk [s per time step x cell, member and output].
    summary_s_per_cell: float = 0.0
    sampled_chunks: int = 0
    # How coarse climate reaches the grid: data.inputs.regrid, or nearest for the lazy world's coarse climate.
    regrid: str | None = None
    land_note: str = ""  # how the land share is known (the source's words)
    makes_chunks: bool = False  # the source computes its chunks (the lazy world's temporaries count)
    planned_towers: int | None = None  # towers known before any file is read (demo worlds)

    @property
    def n_chunks(self) -> int:
        """Chunks of the (time, y, x) grid."""
        return math.prod(len(c) for c in self.chunks.values())

    @property
    def chunk_cells(self) -> int:
        """Cells (time steps × grid cells) of the largest chunk."""
        return math.prod(max(c) for c in self.chunks.values())

    @property
    def cells(self) -> int:
        """Time steps × grid cells of the whole product."""
        return math.prod(self.shape.values())

    @property
    def predictions_per_member_flux(self) -> float:
        """Model predictions of one member for one flux: land cells × time steps."""
        return self.cells * self.land_fraction

    @property
    def predictions(self) -> float:
        """Model predictions of the whole run."""
        return self.predictions_per_member_flux * len(self.members) * len(self.fluxes)

    @property
    def tasks(self) -> int:
        """Dask tasks: per chunk, the inputs, one prediction task per batch of models
        (:func:`uflux_xr.grid.upscale.model_batches`), ~3 per member and flux (its slice of the batch,
        transpose, member axis), 2 per member and derived output, and one write per member and output.

        The per-model and per-derived counts were read off the upscaler's graph (dask 2025);
        a test checks the total against a real graph."""
        n_derived = len(self.outputs) - len(self.fluxes)
        n_inputs = self.n_features + 5  # cube variables, static layers and day-of-year harmonics
        n_models = len(self.members) * len(self.fluxes)
        per_task = models_per_task(self.chunk_cells)
        per_member = TASKS_PER_MODEL * len(self.fluxes) + TASKS_PER_DERIVED * n_derived + len(self.outputs)
        return self.n_chunks * (n_inputs + math.ceil(n_models / per_task) + len(self.members) * per_member)

    @property
    def worker_thread_bytes(self) -> float:
        """Peak bytes one worker thread holds for its chunk (see the module docstring)."""
        c, f = self.chunk_cells, self.n_features
        make = LAZY_TEMPORARIES * c * 8 if self.makes_chunks else 0
        models = min(models_per_task(c), len(self.members) * len(self.fluxes))
        return c * (BYTES * (f + (2 * f + 3) + OUTPUTS_IN_FLIGHT) + TASK_BYTES_PER_MODEL * models) + make

    @property
    def models_bytes(self) -> float:
        """Bytes of every model of the run, as loaded (one copy per worker process)."""
        total = 0.0
        for member in self.members:
            tp = self.throughput.get(self.member_kinds[member])
            if tp is not None:
                total += tp.model_bytes * len(self.fluxes)
        return total

    @property
    def worker_bytes(self) -> float:
        """Predicted peak memory of a worker process [bytes]."""
        return BASE_WORKER_BYTES + self.models_bytes + self.threads_per_worker * self.worker_thread_bytes

    @property
    def output_bytes(self) -> float:
        """Uncompressed float32 product (members × outputs) plus statistics (mean, SD, count per output)."""
        return self.cells * BYTES * len(self.outputs) * (len(self.members) + 3)

    def core_hours(self, member: str | None = None, flux_count: int | None = None, *, plain: bool = False) -> float:
        """Core-hours of model inference at the measured throughput (all members and fluxes by default).

        The rate is the one ``dedup="auto"`` gets on the sampled chunks where they were measured
        (:attr:`Throughput.effective_per_s`), else (or with ``plain``) the plain model rate."""
        members = [member] if member else self.members
        seconds = 0.0
        for m in members:
            tp = self.throughput.get(self.member_kinds[m])
            if tp is None:
                return float("nan")
            rate = tp.predictions_per_s if plain else tp.effective_per_s
            seconds += self.predictions_per_member_flux * (flux_count or len(self.fluxes)) / rate
        return seconds / 3600.0

    def full_run_core_hours(self, member: str) -> float:
        """Core-hours per flux of ``member`` in the full run, at the rates measured on the sampled chunks:
        its predictions through the upscaler's block function (the model calls where that was not
        measured), its share of making (or reading) the inputs, which a chunk does once for all the
        run's models, and its outputs' writes and summary pass (derived outputs included).

        ``benchmarks/uk_100m.py`` compares it with a tile run of a model kind's share of the ensemble."""
        tp = self.throughput.get(self.member_kinds[member])
        if tp is None:
            return float("nan")
        rate = tp.upscaler_predictions_per_s or tp.effective_per_s
        n_models = len(self.members) * len(self.fluxes)
        writes = len(self.outputs) * len(self.members) / n_models
        per_cell = self.input_s_per_cell / n_models + writes * (self.write_s_per_cell + self.summary_s_per_cell)
        return (self.predictions_per_member_flux / rate + self.cells * per_cell) / 3600.0

    def format(self) -> str:
        """The plan as printed by ``uflux-xr run --dry-run``."""
        chunk_desc = ", ".join(f"{d} {len(c)} x {max(c)}" for d, c in self.chunks.items())
        lines = [
            f"Dry run of {self.name}",
            f"  inputs        {self.source}",
            f"  grid          {self.grid}",
            f"  chunks        {self.n_chunks:,} ({chunk_desc}); {self.chunk_cells / 1e6:.2f} M cells per chunk",
            f"  ensemble      {len(self.members)} members x {len(self.fluxes)} fluxes = "
            f"{len(self.members) * len(self.fluxes)} models; outputs {', '.join(self.outputs)}",
            f"  land          {self.land_fraction:.1%} of cells ({self.land_note})" + self._coverage_text(),
            f"  predictions   {self.predictions:.3g} ({self.predictions_per_member_flux:.3g} per member and flux)",
            f"  tasks         {self.tasks:,}",
            f"  memory        {_size(self.worker_bytes)} per worker with {self.threads_per_worker} thread(s): "
            f"{_size(self.worker_thread_bytes)} per thread, {_size(self.models_bytes)} of models, "
            f"{_size(BASE_WORKER_BYTES)} base",
            f"  output        {_size(self.output_bytes)} uncompressed float32 (product + statistics)",
            f"  training      {self.training_rows:,} tower rows",
            *[f"  towers        {line}" for line in self.overlap],
        ]
        if self.throughput:
            rates = ", ".join(
                f"{k} {tp.predictions_per_s / 1e6:.2f} M/s ({_size(tp.model_bytes)} per model)"
                for k, tp in self.throughput.items()
            )
            origins = sorted(set(self.rate_origin.values()))
            origin = "; ".join(origins) if origins else "measured here now"
            lines.append(f"  throughput    per core: {rates} ({origin})")
            deduped = {k: tp for k, tp in self.throughput.items() if tp.unique_fraction is not None}
            if deduped:
                lines.append(
                    f"  dedup         on {self.sampled_chunks} sampled chunk(s) of this run's cube: "
                    + ", ".join(
                        f"{k} {tp.unique_fraction:.1%} unique rows, {(tp.dedup_predictions_per_s or 0) / 1e6:.2f} M/s"
                        + ("" if (tp.dedup_predictions_per_s or 0) > tp.predictions_per_s else " (auto turns it off)")
                        for k, tp in deduped.items()
                    )
                )
            if deduped and self.regrid:
                lines.append(f"  regrid        {self._regrid_cost()}")
            upscaler = {k: tp for k, tp in self.throughput.items() if tp.upscaler_predictions_per_s}
            if upscaler:
                lines.append(
                    "  upscaler      predictions/s per core and model through the upscaler's block function "
                    "(assembly, checks, model calls, scatter; a member's fluxes sharing each task): "
                    + ", ".join(
                        f"{k} {(tp.upscaler_predictions_per_s or 0) / 1e6:.2f} M/s" for k, tp in upscaler.items()
                    )
                )
            if self.input_s_per_cell:
                lines.append(
                    f"  inputs/write  {self.input_s_per_cell * 1e9:.0f} ns per cell-step to make or read the inputs, "
                    f"{self.write_s_per_cell * 1e9:.0f} ns per cell-step and output to write, "
                    f"{self.summary_s_per_cell * 1e9:.0f} ns per cell-step, member and output for the statistics "
                    "and totals (sampled chunks)"
                )
            first = {kind: m for m, kind in reversed(self.member_kinds.items())}
            per = [f"{kind} {self.core_hours(m, 1):.3g}" for kind, m in first.items()]
            lines.append(f"  core-hours    {self.core_hours():.3g} in all; per member and flux: " + ", ".join(per))
            if self.input_s_per_cell:
                full = [f"{kind} {self.full_run_core_hours(m):.3g}" for kind, m in first.items()]
                lines.append(
                    "  with inputs (shared by all models) and writing, per member and flux: "
                    + ", ".join(full)
                    + " core-hours"
                )
            calibration = next(iter(self.throughput.values()))
            if calibration.model_bytes:
                towers = (
                    "this run's demo-world towers, timed on its sampled chunks"
                    if calibration.unique_fraction is not None
                    else "demo-world towers (not this run's towers), timed on their own rows"
                )
                lines.append(
                    f"  calibration   each model kind fitted on {calibration.training_rows:,} rows of {towers}, "
                    "on one thread"
                )
        lines.append(
            f"  planned in    {self.seconds:.1f} s"
            + (
                f" ({self.measure_seconds:.1f} s measuring throughput; --throughput skips it)"
                if self.measure_seconds
                else ""
            )
        )
        return "\n".join(lines)

    def _coverage_text(self) -> str:
        """The share of land cells the product will have values on, from the run's own coverage check."""
        shares = self.predictor_coverage
        if not shares:
            return ""
        lowest = min((k for k in shares if k != "all"), key=shares.__getitem__)
        return (
            f"; every predictor on {shares['all']:.1%} of them (lowest {lowest} {shares[lowest]:.1%}): "
            f"the product has values there"
        )

    def _regrid_cost(self) -> str:
        """What regridding the coarse climate by the other method would do to the model calls."""
        if self.regrid == "nearest":
            # Bilinear weights give every fine cell its own climate values, so nearly every row is
            # distinct and deduplication stops paying: the plain rate bounds the cost.
            return (
                "nearest: the fine cells of one climate cell share its values, which is what makes rows repeat; "
                "bilinear (data.inputs.regrid) gives every cell its own values, and the model calls would take "
                f"up to {self.core_hours(plain=True):.3g} core-hours (the plain rate) "
                f"instead of {self.core_hours():.3g}"
            )
        return (
            "bilinear: every cell has its own climate values, so the unique rows above are most rows; "
            "nearest (the default) shares a climate cell's values among its fine cells and lets rows repeat"
        )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # pragma: no cover


def _outputs(fluxes: list[str]) -> list[str]:
    return list(fluxes) + [d for d, need in _DERIVED.items() if need <= set(fluxes)]


def measure_throughput(
    spec: ModelSpec, n_features: int = 10, n_rows: int = 200_000, seed: int = 0
) -> tuple[float, float, int]:
    """Single-thread prediction rate [predictions s-1] and saved size [bytes] of a model kind.

    The model is fitted with ``spec``'s hyper-parameters on a year of daily tower
    data from the demo world (2° Europe, 30 towers) and predicts ``n_rows`` rows
    drawn from the same data, as a dask task would (one thread).

    Returns
    -------
    tuple
        (predictions per second, model file size [bytes], training rows)
    """
    from uflux_xr.models import train
    from uflux_xr.sources import calibration_table

    features = ["TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv", "NDVI", "EVI2", "SIF", "IGBP", "DOY_SIN"]
    features = features[: max(1, min(n_features, len(features)))]
    table = calibration_table(features, ["GPP", "GPP_QC"], seed)
    model = train(table, "GPP", features, model=spec.name, random_state=seed, **spec.params)
    X = table[features].to_numpy(np.float32)
    X = X[np.isfinite(X).all(axis=1)]
    rows = X[np.random.default_rng(seed).integers(0, len(X), n_rows)]
    return _plain_rate(model, rows), _saved_bytes(model), int(table["GPP"].notna().sum())


def _plain_rate(model, rows: np.ndarray) -> float:
    """Predictions per second of ``model`` on ``rows`` on one thread, as in a dask task (after a warm-up)."""
    model.predict_array(rows[:1000], n_threads=1)  # warm-up: lazy loading, thread pools
    started = time.perf_counter()
    model.predict_array(rows, n_threads=1)
    return len(rows) / (time.perf_counter() - started)


def _saved_bytes(model) -> float:
    """Size of ``model``'s file [bytes] (a model file is one zip archive)."""
    with tempfile.TemporaryDirectory() as tmp:
        return float(model.save(Path(tmp) / "m.uxm").stat().st_size)


def plan_run(
    config: RunConfig,
    *,
    window: dict[str, slice] | None = None,
    threads_per_worker: int = 1,
    throughput: float | None = None,
    measure: bool = False,
) -> RunPlan:
    """The plan of ``config``'s job without running it.

    Parameters
    ----------
    config : RunConfig
        The job.
    window : dict of str to slice, optional
        Index slices of the domain, as for :func:`uflux_xr.workflow.pipeline.run`.
    threads_per_worker : int
        Dask threads sharing a worker process (1 on a LocalCluster from ``--workers``).
    throughput : float, optional
        Predictions per second per core to assume for every model kind instead of
        measuring them [s-1].
    measure : bool
        Measure each model kind's throughput and size on this machine on sampled chunks of the run's cube
        (seconds to minutes) and store them (:mod:`uflux_xr.workflow.rates`); otherwise plan from the
        rates stored for this machine, else the package's shipped defaults.

    Returns
    -------
    RunPlan
    """
    from uflux_xr.sources import source_for

    started = time.perf_counter()
    source = source_for(config, for_plan=True)
    outline = source.outline(window)
    members = [m.label for m in config.ensemble.member_specs]
    plan = RunPlan(
        name=config.name,
        source=(
            f"{source.name} (standing in: the input files do not exist yet, so the grid is outlined and sampled "
            "on the demo world of the domain; its values and rates are synthetic)"
            if source.stands_in
            else source.name
        ),
        grid=outline.description,
        shape=outline.sizes,
        chunks=outline.chunks,
        members=members,
        fluxes=list(config.fluxes),
        outputs=_outputs(config.fluxes),
        land_fraction=source.land_fraction(outline.cube, window),
        training_rows=outline.training_rows,
        overlap=outline.overlap,
        threads_per_worker=threads_per_worker,
        n_features=max(len(m.predictors) for m in config.ensemble.member_specs),
        member_kinds={m.label: m.model.name for m in config.ensemble.member_specs},
        regrid=source.regrid,
        land_note=source.land_note,
        makes_chunks=source.makes_chunks,
        planned_towers=source.planned_towers,
    )
    # What the run checks before its first prediction, from the same code (a plan never promises a
    # flux the towers lack, or land the predictors do not cover).
    if outline.sites is not None:
        tower_targets(config, outline.sites)
    if outline.cube is not None:
        plan.predictor_coverage = check_predictor_coverage(outline.cube, run_features(config))
    sample = None
    if throughput is None and measure:
        t0 = time.perf_counter()
        with _quiet("uflux_xr.grid.extract"):  # the calibration towers' table
            sample = _sample_chunks(config, source, outline, window)
        if sample is not None:
            plan.input_s_per_cell, plan.write_s_per_cell, plan.summary_s_per_cell, plan.sampled_chunks = (
                sample.input_s_per_cell,
                sample.write_s_per_cell,
                sample.summary_s_per_cell,
                sample.n_chunks,
            )
        plan.measure_seconds += time.perf_counter() - t0
    for spec in config.ensemble.models:
        if throughput is not None:
            plan.throughput[spec.name] = Throughput(spec.name, float(throughput), 0.0, plan.training_rows)
            continue
        if measure:
            t0 = time.perf_counter()
            member = next(m for m in config.ensemble.member_specs if m.model.name == spec.name)
            with _quiet("uflux_xr.grid.extract", "uflux_xr.models"):  # the calibration's own table and fits
                if sample is not None and sample.table is not None:
                    tp = _measure_on_sample(spec, list(member.predictors), sample, config.fluxes)
                else:
                    rate, size, rows = measure_throughput(spec, n_features=plan.n_features)
                    tp = Throughput(spec.name, rate, size, rows)
            store_rate(spec, plan.n_features, tp, datetime.date.today().isoformat())
            plan.measure_seconds += time.perf_counter() - t0
            log.info(
                "%s: %.3g predictions/s per core (%.1f s to measure)",
                spec.name,
                tp.effective_per_s,
                time.perf_counter() - t0,
            )
        else:
            found = stored_rate(spec, plan.n_features)
            if found is None:
                continue
            entry, plan.rate_origin[spec.name] = found
            tp = Throughput(spec.name, *(entry[k] for k in ("predictions_per_s", "model_bytes", "training_rows")))
        if spec.name in _FOREST_KINDS and not spec.params.get("max_leaf_nodes"):
            # Trees grown until their leaves are small grow with the data; a leaf limit bounds them.
            tp.model_bytes *= max(1.0, plan.training_rows / tp.training_rows)
        plan.throughput[spec.name] = tp
    plan.seconds = time.perf_counter() - started
    return plan


#: Chunks of the run's own cube the dry run reads (or makes) to measure deduplication and I/O.
SAMPLE_CHUNKS = 2


@dataclass
class ChunkSample:
    """Chunks of a run's cube read for the dry run, with the towers' table to fit calibration models on."""

    rows: dict[str, np.ndarray]  # land-cell values per feature (empty without a table to fit on)
    n_chunks: int
    input_s_per_cell: float
    write_s_per_cell: float
    summary_s_per_cell: float
    table: pd.DataFrame | None  # the run's towers (lazy demo), else None
    blocks: list = field(default_factory=list)  # the sampled chunks (xarray.Dataset, in memory)


def _sample_chunks(config: RunConfig, source, outline, window) -> ChunkSample | None:
    """Read (files) or make (lazy demo) up to :data:`SAMPLE_CHUNKS` land chunks of the run's cube
    (:meth:`uflux_xr.sources.InputSource.sample_cube`), timing that and the writing of one output chunk;
    None when the source has no cube to sample or no chunk has land."""
    import xarray as xr

    from uflux_xr.core.domain import spatial_dims
    from uflux_xr.grid.features import resolve_features, with_annual_maxima

    needed = sorted({p for m in config.ensemble.member_specs for p in m.predictors})
    cube, table = source.sample_cube(outline, needed, window)
    if cube is None or "land_mask" not in cube:
        return None
    # Annual maxima (NIRv_MAX) from the whole year before a time chunk is cut, as the run derives them;
    # reading a chunk then reads the year of their source, which the input timing should include.
    cube = with_annual_maxima(cube, needed)
    ydim, xdim = spatial_dims(cube)
    chunks = cube["land_mask"].chunksizes
    y_edges = np.cumsum((0, *chunks[ydim]))
    x_edges = np.cumsum((0, *chunks[xdim]))
    t_sizes = next(v for v in cube.data_vars.values() if "time" in v.dims).chunksizes["time"]
    t_mid = len(t_sizes) // 2
    t0 = int(np.sum(t_sizes[:t_mid]))
    time_slice = slice(t0, t0 + t_sizes[t_mid])
    rng = np.random.default_rng(0)
    positions = [(i, j) for i in range(len(y_edges) - 1) for j in range(len(x_edges) - 1)]
    rng.shuffle(positions)
    parts, seconds, cells = [], 0.0, 0
    for i, j in positions[:50]:
        region = {ydim: slice(y_edges[i], y_edges[i + 1]), xdim: slice(x_edges[j], x_edges[j + 1])}
        land = cube["land_mask"].isel(region).values == 1
        if not land.any():
            continue
        started = time.perf_counter()
        block = cube.isel({**region, "time": time_slice})
        block = block[[v for v in block.data_vars if v in needed or v == "land_mask"]].compute()
        seconds += time.perf_counter() - started
        cells += int(np.prod([block.sizes[d] for d in ("time", ydim, xdim)]))
        parts.append((block, land))
        if len(parts) == SAMPLE_CHUNKS:
            break
    if not parts:
        return None
    rows: dict[str, list] = {}
    for block, land in parts if table is not None else ():  # the rows only serve the fits on the run's towers
        template = next(v for v in block.data_vars.values() if "time" in v.dims)
        for name, da in resolve_features(block, [n for n in needed if n in block or n.startswith("DOY_")]).items():
            full = xr.broadcast(da, template)[0].transpose("time", ydim, xdim).values
            rows.setdefault(name, []).append(full[:, land])
    block, land = parts[0]
    write = _time_write(block, ydim, xdim)
    n = int(np.prod([block.sizes[d] for d in ("time", ydim, xdim)]))
    return ChunkSample(
        rows={k: np.concatenate([a.ravel() for a in v]) for k, v in rows.items()},
        n_chunks=len(parts),
        input_s_per_cell=seconds / cells,
        write_s_per_cell=write / n,
        summary_s_per_cell=_time_summary(block, ydim, xdim) / n,
        table=table,
        blocks=[b for b, _ in parts] if table is not None else [],
    )


def _time_write(block, ydim: str, xdim: str) -> float:
    """Seconds to write one float32 output of ``block``'s shape to a Zarr store, as the product is written."""
    import xarray as xr

    template = next(v for v in block.data_vars.values() if "time" in v.dims)
    values = np.where(np.isfinite(template.values), template.values, np.nan).astype(np.float32)
    ds = xr.Dataset({"out": (("time", ydim, xdim), values)})
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ds.to_zarr(Path(tmp) / "w.zarr", consolidated=False)
        return time.perf_counter() - started


def _time_summary(block, ydim: str, xdim: str, members: int = 4) -> float:
    """Seconds per member for the passes over one output of ``block``'s shape after it is written:
    ensemble statistics, area-weighted totals and the value counts, as the run computes them."""
    import dask
    import xarray as xr

    from uflux_xr.grid.ensemble import area_weighted_total, ensemble_statistics

    template = next(v for v in block.data_vars.values() if "time" in v.dims).astype(np.float32)
    out = xr.concat([template + k for k in range(members)], dim="member").assign_attrs(units="g C m-2 d-1")
    product = xr.Dataset({"GPP": out.transpose("member", "time", ydim, xdim)}).chunk()
    started = time.perf_counter()
    dask.compute(
        ensemble_statistics(product),
        area_weighted_total(product["GPP"]),
        np.signbit(product["GPP"]).sum(),
        product["GPP"].notnull().sum(),
        scheduler="sync",
    )
    return (time.perf_counter() - started) / members


def _time_upscaler(member: dict, blocks: list, dedup: bool) -> float | None:
    """Predictions per second of one model through :func:`uflux_xr.grid.upscale.upscale` on the sampled
    chunks, on one thread: ``member``'s models ({flux: model}) predicted together, as one task of the
    run predicts a member's fluxes (sharing the chunk's codes), the time shared among them."""
    from uflux_xr.grid.upscale import upscale

    predictions = 0
    started = time.perf_counter()
    for block in blocks:
        product = upscale({"m": member}, block.chunk(), dedup=dedup, derived=False).compute(scheduler="sync")
        predictions += sum(int(np.isfinite(product[flux].values).sum()) for flux in member)
    seconds = time.perf_counter() - started
    return predictions / seconds if predictions and seconds > 0 else None


def _measure_on_sample(spec: ModelSpec, features: list[str], sample: ChunkSample, fluxes=("GPP",)) -> Throughput:
    """Fit ``spec`` (with its process baseline, for a hybrid) on the run's towers and time it on the sampled
    chunks' land rows, plain and deduplicated, and through the upscaler with a model of each of ``fluxes``."""
    from uflux_xr.models import train
    from uflux_xr.models.dedup import unique_rows

    table = sample.table
    assert table is not None
    options = {**spec.params, **spec.train_options}  # as the run trains the kind: baseline included
    model = train(table, "GPP", features, model=spec.name, random_state=0, **options)
    X = np.stack([sample.rows[f] for f in features], axis=1).astype(np.float32)
    X = X[np.isfinite(X).all(axis=1)]
    rate = _plain_rate(model, X[:200_000])
    unique = dedup_rate = None
    if model.interval_coder is not None:
        model.predict_array(X[:1000], n_threads=1, dedup=True)  # compiles the hashing
        started = time.perf_counter()
        model.predict_array(X, n_threads=1, dedup=True)
        dedup_rate = len(X) / (time.perf_counter() - started)
        unique = unique_rows(model.interval_coder.codes(X))[0].size / len(X)
    # The member's model of every flux the towers have, predicted together as in the run's tasks.
    member = {"GPP": model} | {
        flux: train(table, flux, features, model=spec.name, random_state=0, **options)
        for flux in fluxes
        if flux != "GPP" and flux in table and table[flux].notna().any()
    }
    upscaler = _time_upscaler(member, sample.blocks, dedup=bool(dedup_rate and dedup_rate > rate))
    return Throughput(
        spec.name, rate, _saved_bytes(model), int(table["GPP"].notna().sum()), unique, dedup_rate, upscaler
    )


@contextlib.contextmanager
def _quiet(*names: str):
    """Loggers ``names`` at WARNING for the duration (INFO lines of the calibration are not the run's)."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
