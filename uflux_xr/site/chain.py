"""One tower through the whole processing chain, in REddyProc's order.

:func:`process_site` runs, on one site's half-hourly or hourly record:

1. **QC**: values whose ``<VAR>_QC`` exceeds ``good_qc`` and runs of 8 or
   more equal values (REddyProc ``filterLongRuns``) are removed;
2. **spikes**: ONEFlux's (Papale et al. 2006) or hesseflux's MAD test
   (:mod:`uflux_xr.site.spikes`), flagged records removed;
3. **meteorology**: TA, VPD and SW_IN filled by MDS (REddyProc's useCase
   fills Tair and VPD with ``FillAll = FALSE`` before partitioning);
4. **u\\***: REddyProc's moving-point threshold with its bootstrap
   (:mod:`uflux_xr.site.ustar`) giving the scenarios ``uStar`` (the estimate
   itself), ``U05``, ``U50``, ``U95`` (``sEstimateUstarScenarios``), or one
   given threshold (``uStar``), or none;
5. **gap filling**: NEE per u* scenario and LE, H with REddyProc's MDS and
   ``FillAll = TRUE`` (``sMDSGapFillUStarScens``); optionally the gaps MDS
   leaves (longer than ``long_gap``) by a tree ensemble (``ml_fill``),
   ``_fmeth`` ``ml`` and ``_fqc`` 3;
6. **partitioning**: night-time and day-time per scenario
   (``sMRFluxPartitionUStarScens``, ``sGLFluxPartitionUStarScens``);
7. **budgets**: annual sums per scenario with the random error of the
   measured records (:mod:`uflux_xr.site.random_error`, REddyProc's
   ``aggUncertainty`` vignette), the u* uncertainty as the SD of the
   scenarios' sums and their combination ``sqrt(random² + u*²)``.

Every intermediate stays in the dataset: the input as ``<VAR>_raw``, the
flags ``<VAR>_RUN`` and ``<VAR>_SPIKE``, the cleaned ``<VAR>``, the u*
thresholds and filter flags, every gap-filling and partitioning output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time as timer
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.constants import MOLAR_MASS_C
from uflux_xr.core.domain import time_step
from uflux_xr.core.plausibility import screen_physical_range
from uflux_xr.core.qc import long_runs, usable_mask
from uflux_xr.core.solar import site_position
from uflux_xr.core.sun_check import check_sun_timing
from uflux_xr.core.variables import MissingVariableError, check_units, subdaily_units
from uflux_xr.io.jsonable import to_jsonable
from uflux_xr.site.dataset import like_input, one_site
from uflux_xr.site.gapfill.api import FILL_LABELS, ML
from uflux_xr.site.gapfill.options import options_from_keywords
from uflux_xr.site.partition.nighttime import PartitioningError
from uflux_xr.site.random_error import aggregate_with_random_error

log = logging.getLogger(__name__)

#: What the chain reads [units]; USTAR only with u* filtering.
INPUT_UNITS = subdaily_units("NEE", "LE", "H", "SW_IN", "TA", "VPD", "USTAR")
METEOROLOGY = ("TA", "VPD", "SW_IN")

#: What gets past a step that cannot run: its option in Python and on the command line (uflux-xr process).
WAY_PAST = {
    "QC": "keep every value with good_qc=None (command line: leave out --good-qc)",
    "spikes": "skip the spike test with spikes=None (command line: --spikes none)",
    "ustar": (
        "give a threshold, ustar=0.3 (command line: --ustar 0.3), or filter no u*, ustar=None "
        "(command line: --ustar none)"
    ),
    "gap filling": "fill NEE only with fluxes=('NEE',)",
    "ML fill": "leave the long gaps open with ml_fill=None (command line: leave out --ml-fill)",
    "nighttime": (
        "run day-time partitioning alone, partitioning=('daytime',) (command line: --partitioning daytime), "
        "or none, partitioning=() (--partitioning none)"
    ),
    "daytime": (
        "run night-time partitioning alone, partitioning=('nighttime',) (command line: --partitioning nighttime), "
        "or none, partitioning=() (--partitioning none)"
    ),
}


@contextlib.contextmanager
def _step(site: str, step: str):
    """Re-raise a step's error with the site, the step and the option that gets past it (:data:`WAY_PAST`)."""
    try:
        yield
    except (KeyError, ValueError) as err:
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        message = (
            f"site {site!r}, {step}: {text.removeprefix(f'site {site!r}, ').rstrip('.')}. To go on, {WAY_PAST[step]}"
        )
        try:
            again = type(err)(message)
        except TypeError:  # an error class with another signature
            again = MissingVariableError(message) if isinstance(err, KeyError) else ValueError(message)
        raise again from err


@dataclass(frozen=True)
class SiteChainOptions:
    """Settings of :func:`process_site`.

    Attributes
    ----------
    fluxes : tuple of str
        Fluxes cleaned and filled; NEE is u*-filtered and partitioned.
    good_qc : float, optional
        Largest ``<VAR>_QC`` flag kept (FLUXNET: 0 measured … 3 poor); None
        keeps every value.
    long_runs : int, optional
        Remove runs of at least this many equal values [records]; None skips.
    spikes : {"papale", "hesseflux"}, optional
        Spike test (:func:`uflux_xr.site.spikes.flag_spikes`); None skips.
    ustar : "bootstrap", float or None
        ``bootstrap``: REddyProc's estimate and bootstrap scenarios; a number:
        that threshold [m s-1] as the one scenario ``uStar``; None: no u*
        filter (NEE filled as ``NEE_f``).
    ustar_samples : int
        Bootstrap samples (REddyProc: 200).
    ustar_probs : tuple of float
        Bootstrap quantiles used as scenarios.
    partitioning : tuple of str
        ``nighttime``, ``daytime``, both or none.
    ml_fill : str, optional
        Model kind (e.g. ``lightgbm``) filling what MDS leaves; None leaves it.
    seed : int
        Seed of the u* bootstrap and the ML fill.
    position_check : {"raise", "warn", "off"}
        Compare the measured SW_IN with the sun at the site's position and UTC offset
        (:func:`uflux_xr.core.sun_check.check_sun_timing`): a lag of 45 min or more (swapped
        coordinates, UTC for local time) stops the chain; ``warn`` logs it, ``off`` skips it.
    mds, ustar_options, nighttime, daytime, ml : dict
        Options of each step: :class:`~uflux_xr.site.gapfill.options.MDSOptions`,
        :class:`~uflux_xr.site.ustar.UstarOptions`,
        :class:`~uflux_xr.site.partition.nighttime.NightTimeOptions`,
        :class:`~uflux_xr.site.partition.daytime.DayTimeOptions`,
        :class:`~uflux_xr.site.gapfill.options.LearnedOptions`.
    """

    fluxes: tuple = ("NEE", "LE", "H")
    good_qc: float | None = None
    long_runs: int | None = 8
    spikes: str | None = "papale"
    ustar: str | float | None = "bootstrap"
    ustar_samples: int = 200
    ustar_probs: tuple = (0.05, 0.5, 0.95)
    partitioning: tuple = ("nighttime", "daytime")
    ml_fill: str | None = None
    seed: int = 0
    position_check: str = "raise"
    mds: dict = field(default_factory=dict)
    ustar_options: dict = field(default_factory=dict)
    nighttime: dict = field(default_factory=dict)
    daytime: dict = field(default_factory=dict)
    ml: dict = field(default_factory=dict)

    def __post_init__(self):
        if "NEE" not in self.fluxes:
            raise ValueError(f"the chain processes NEE; fluxes={self.fluxes!r} lacks it")
        if self.spikes not in (None, "papale", "hesseflux"):
            raise ValueError(f"spikes must be 'papale', 'hesseflux' or None, got {self.spikes!r}")
        if not (self.ustar is None or self.ustar == "bootstrap" or isinstance(self.ustar, int | float)):
            raise ValueError(f"ustar must be 'bootstrap', a threshold [m s-1] or None, got {self.ustar!r}")
        unknown = set(self.partitioning) - {"nighttime", "daytime"}
        if unknown:
            raise ValueError(f"partitioning methods are 'nighttime' and 'daytime', got {sorted(unknown)}")


class ChainSummary(dict):
    """What each step of :func:`process_site` did: a plain dict (JSON-able), shown as lines of text."""

    def __repr__(self) -> str:
        return summary_text(self, pd.DataFrame(self.get("annual", [])))

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython
        printer.text(repr(self))


@dataclass
class ProcessedSite:
    """What :func:`process_site` gives: every intermediate, the u* table, the budgets and a summary.

    Attributes
    ----------
    data : xarray.Dataset
        The site with every step's outputs; ``attrs["processing_summary"]``
        holds :attr:`summary` as JSON.
    ustar : pandas.DataFrame or None
        :func:`uflux_xr.ustar_thresholds` output.
    annual : pandas.DataFrame
        Per year, variable and scenario: ``sum`` with ``sd_random``,
        ``sd_ustar``, ``sd_total`` in ``units`` (g C m-2 for carbon fluxes,
        MJ m-2 for LE and H), ``n_records`` and ``filled_share``.
    summary : dict
        What each step did (counts, thresholds, notes, timings [s]).
    """

    data: xr.Dataset
    ustar: pd.DataFrame | None
    annual: pd.DataFrame
    summary: dict

    def to_netcdf(self, path) -> Path | str:
        """Write :attr:`data` atomically (NetCDF or Zarr by suffix) and the budgets as ``<stem>_annual.csv``."""
        from uflux_xr.io import write_dataset

        path = Path(path)
        out = write_dataset(self.data, path, progress=False)
        self.annual.to_csv(path.with_name(f"{path.stem}_annual.csv"), index=False)
        return out

    def summary_text(self) -> str:
        """The summary as lines for a terminal."""
        return summary_text(self.summary, self.annual)

    def __repr__(self) -> str:
        return f"ProcessedSite: {self.data.sizes['time']:,} records, {len(self.data.data_vars)} variables\n" + (
            self.summary_text()
        )


def process_site(site_ds: xr.Dataset, *, lat=None, lon=None, utc_offset=None, **options) -> ProcessedSite:
    """Run one tower through QC, spikes, u*, MDS, partitioning and annual budgets (REddyProc's order).

    Parameters
    ----------
    site_ds : xarray.Dataset
        One site (time, or site of length 1) at a half-hourly or hourly step
        with NEE [µmol m-2 s-1], SW_IN [W m-2], TA [degC], VPD [hPa], USTAR
        [m s-1] (with u* filtering), LE and H [W m-2] where present, and
        optional ``<VAR>_QC`` flags; time stamps at the middle of each record
        in local standard time.
    lat, lon : float, optional
        Site position [degrees north, east]; default the site coordinates.
    utc_offset : float, optional
        Hours local standard time is ahead of UTC [h]; default the
        ``utc_offset`` site coordinate.
    **options
        :class:`SiteChainOptions` fields.

    Returns
    -------
    ProcessedSite

    Raises
    ------
    KeyError, UnitsError, PlausibilityError, PartitioningError, ValueError
        Missing inputs, wrong units, implausible values, too few records for
        a step; each names the variable and the step.
    """
    from uflux_xr.site.partition import partition

    opts = options_from_keywords(SiteChainOptions, options, "process_site")
    one = one_site(site_ds, "process_site")
    site = str(one["site"].values)
    needed = ["NEE", *METEOROLOGY] + (["USTAR"] if opts.ustar is not None else [])
    missing = [v for v in needed if v not in one]
    if missing:
        described = ", ".join(f"{v} [{INPUT_UNITS[v]}]" for v in missing)
        remedy = (
            f"To go on, {WAY_PAST['ustar']}"
            if missing == ["USTAR"]
            else "Add them to the record (read_sites knows FLUXNET, AmeriFlux and REddyProc column names)"
        )
        raise MissingVariableError(
            f"site {site!r}: the processing chain needs {described}, which the record lacks. {remedy}"
        )
    fluxes = [f for f in opts.fluxes if f in one]
    check_units(one, {v: INPUT_UNITS[v] for v in [*needed, *fluxes]}, user="process_site")
    one = screen_physical_range(one, source=f"process_site input (site {site!r})", names=[*needed, *fluxes])
    position = site_position(one, 0, lat, lon, utc_offset)
    if opts.partitioning and not np.isfinite(list(position.values())).all():
        raise PartitioningError(
            f"site {site!r}: partitioning needs the site position and UTC offset to tell night from day; "
            f"got {position}. Pass lat=, lon=, utc_offset= (CLI: --lat --lon --utc-offset, or a metadata CSV "
            "with utc_offset), or partitioning=()"
        )
    summary = ChainSummary(site=site, records=int(one.sizes["time"]), options=to_jsonable(asdict(opts)))
    summary["outside_physical_range"] = one.attrs.get("physical_range_removed", "none")
    timing = check_sun_timing(
        one.indexes["time"], one["SW_IN"].values, **position, site=site, policy=opts.position_check
    )
    summary["sun_timing"] = "not checked" if timing is None else to_jsonable(asdict(timing))
    clock = {}
    inputs = one.copy()

    # 1-2: QC, long runs, spikes
    start = timer.perf_counter()
    one, qc, spikes = _remove_bad_records(one, fluxes, opts, position, site)
    summary["qc"], summary["spikes"] = qc, spikes or "not run"
    clock["qc_and_spikes"] = timer.perf_counter() - start

    # 3: meteorology for the look-up and the partitioning, as measured otherwise
    from uflux_xr.site.gapfill import gapfill

    start = timer.perf_counter()
    for name in METEOROLOGY:
        one = gapfill(one, name, **{**opts.mds, "fill_all": False})
    clock["meteorology"] = timer.perf_counter() - start

    # 4-5: u* scenarios, MDS
    start = timer.perf_counter()
    with _step(site, "ustar"):
        one, table, scenarios, summary["ustar"] = _ustar_scenarios(one, opts)
    nee_names = [_scenario_name("NEE", s) for s in scenarios]
    if isinstance(summary["ustar"], dict):
        summary["ustar"]["filtered_share"] = {
            s: float((one[f"USTAR_{s}_FQC"] != 0).mean()) for s in scenarios if f"USTAR_{s}_FQC" in one
        }
    for flux in fluxes:
        if flux != "NEE":
            with _step(site, "gap filling"):
                one = gapfill(one, flux, **opts.mds)
    clock["ustar_and_mds"] = timer.perf_counter() - start

    start = timer.perf_counter()
    filled_names = nee_names + [f for f in fluxes if f != "NEE"]
    if opts.ml_fill:
        for name in filled_names:
            with _step(site, "ML fill"):
                one = _fill_rest_with_ml(one, name, opts)
    clock["ml_fill"] = timer.perf_counter() - start
    summary["gapfill"] = {name: _fill_counts(one, name) for name in filled_names}

    # 6: partitioning per scenario
    start = timer.perf_counter()
    for method in opts.partitioning:
        method_options = opts.nighttime if method == "nighttime" else opts.daytime
        for nee in nee_names:
            with _step(site, method):
                one = partition(
                    one,
                    method,
                    nee=nee,
                    lat=position["lat"],
                    lon=position["lon"],
                    utc_offset=position["utc_offset"],
                    **method_options,
                )
    summary["partitioning"] = {
        key.removeprefix("partitioning_notes_"): value
        for key, value in one.attrs.items()
        if key.startswith("partitioning_notes_")
    }
    clock["partitioning"] = timer.perf_counter() - start

    # 7: budgets
    annual = annual_budgets(one, scenarios, fluxes, opts.partitioning)
    summary["annual"] = annual.to_dict(orient="records")
    summary["seconds"] = {k: round(v, 2) for k, v in clock.items()}
    one, summary["inputs_kept"] = _keep_replaced_inputs(one, inputs, [*needed, *fluxes], site)
    out = one.expand_dims("site")
    out.attrs["processing_summary"] = json.dumps(to_jsonable(summary))
    log.info("site %s processed in %.1f s", site, sum(clock.values()))
    return ProcessedSite(like_input(out, site_ds), table, annual, summary)


#: Suffix under which an input variable that an output of the chain replaces is kept.
INPUT_SUFFIX = "_input"


def _keep_replaced_inputs(one: xr.Dataset, inputs: xr.Dataset, reads, site: str) -> tuple[xr.Dataset, dict]:
    """Put back, as ``<name>_input``, every input variable an output of the chain replaced.

    The variables the chain reads are cleaned on purpose (kept as ``<flux>_raw``); any other input the
    chain wrote over (a file's own ``GPP_DT`` from REddyProc, say) is kept under the stated name, with a
    warning, never silently replaced.  Returns the dataset and ``{input name: kept name}``.
    """
    kept = {}
    for name in inputs.data_vars:
        if name in reads or name not in one or one[name].equals(inputs[name]):
            continue
        new = f"{name}{INPUT_SUFFIX}"
        if new in one:
            raise ValueError(
                f"site {site!r}: the chain's {name} replaces the input's, and {new} (where the input's would be "
                f"kept) is taken too; rename or drop the input's {name} before process_site"
            )
        one[new] = inputs[name].assign_attrs(
            comment=f"the input's {name}, kept under this name: the chain's own {name} replaced it"
        )
        kept[str(name)] = new
    if kept:
        log.warning(
            "site %s: the input's %s are kept as %s; the chain's own outputs now carry those names",
            site,
            ", ".join(kept),
            ", ".join(kept.values()),
        )
    return one, kept


def _remove_bad_records(
    one: xr.Dataset, fluxes, opts: SiteChainOptions, position: dict, site: str
) -> tuple[xr.Dataset, dict, dict]:
    """Steps 1-2 of the chain on one site: records failing ``good_qc``, runs of equal values and spikes set
    missing (the raw series kept as ``<flux>_raw``, the flags as ``<flux>_RUN`` and ``<flux>_SPIKE``).

    Returns the dataset and the counts per flux of what was removed (QC and long runs; spikes)."""
    from uflux_xr.site.spikes import flag_spikes, spike_removed

    qc, spikes = {}, {}
    for flux in fluxes:
        raw = one[flux]
        with _step(site, "QC"):
            usable = usable_mask(one, flux, opts.good_qc)
        runs = (
            long_runs(np.where(usable, raw.values, np.nan), opts.long_runs) if opts.long_runs else np.zeros_like(usable)
        )
        cleaned = raw.where(usable & ~runs)
        one = one.assign(
            {
                f"{flux}_raw": raw,
                f"{flux}_RUN": (
                    "time",
                    runs.astype(np.int8),
                    {"units": "1", "long_name": f"{flux} in a run of >= {opts.long_runs} equal values (removed)"},
                ),
                flux: cleaned.assign_attrs(raw.attrs),
            }
        )
        qc[flux] = {
            "missing": int(raw.isnull().sum()),
            "failing_qc": int((np.isfinite(raw.values) & ~usable).sum()),
            "long_runs": int(runs.sum()),
        }
        if opts.spikes:
            with _step(site, "spikes"):
                one = flag_spikes(one, flux, convention=opts.spikes, **position)
            removed = spike_removed(one[f"{flux}_SPIKE"]).values
            flags = one[f"{flux}_SPIKE"].values
            spikes[flux] = {
                "tested": int(np.isfinite(flags).sum()),
                "removed": int(removed.sum()),
                **{f"flag_{k}": int((flags == k).sum()) for k in (1, 2, 3) if (flags == k).any()},
            }
            one[flux] = one[flux].where(~removed)
    return one, qc, spikes


def _ustar_scenarios(
    one: xr.Dataset, opts: SiteChainOptions
) -> tuple[xr.Dataset, pd.DataFrame | None, list[str], dict | str]:
    """Steps 4-5 for NEE: the u* threshold (bootstrapped, given, or none), the u*-filtered NEE per scenario
    filled by MDS.  Returns the dataset, the threshold table (bootstrap only), the scenario names and the
    summary of the u* step."""
    from uflux_xr.site.gapfill import gapfill
    from uflux_xr.site.ustar import fill_ustar_scenarios, scenario_name, ustar_thresholds

    ustar_summary: dict | str
    table = None
    if opts.ustar == "bootstrap":
        table = ustar_thresholds(
            one, n_samples=opts.ustar_samples, probs=opts.ustar_probs, seed=opts.seed, **opts.ustar_options
        )
        scenarios = ["uStar", *(scenario_name(p) for p in opts.ustar_probs)]
        one = fill_ustar_scenarios(one, "NEE", table, scenarios, **opts.mds)
        single = table.iloc[0]
        ustar_summary = {
            "threshold": float(single["ustar"]),
            **{s: float(single[s]) for s in scenarios[1:]},
            "by_year": {
                int(row["season_year"]): {c: float(row[c]) for c in ["ustar", *scenarios[1:]]}
                for _, row in table[table["aggregation"] == "year"].iterrows()
            },
            "samples": opts.ustar_samples,
            "notes": table.attrs.get("notes", []),
        }
    elif opts.ustar is not None:
        scenarios = ["uStar"]
        one = fill_ustar_scenarios(one, "NEE", float(opts.ustar), scenarios, **opts.mds)
        ustar_summary = {"threshold": float(opts.ustar), "given": True}
    else:
        scenarios = [""]
        one = gapfill(one, "NEE", **opts.mds)
        ustar_summary = "not filtered"
    return one, table, scenarios, ustar_summary


def _fill_rest_with_ml(one: xr.Dataset, name: str, opts: SiteChainOptions) -> xr.Dataset:
    """The gaps MDS left in ``<name>_f`` filled by a tree ensemble: ``_fmeth`` ``ml``, ``_fqc`` 3."""
    from uflux_xr.site.gapfill import gapfill

    left = one[f"{name}_f"].isnull().values & one[name].isnull().values
    if not left.any():
        return one
    learned = gapfill(one[[name, *METEOROLOGY]], name, method="ml", model=opts.ml_fill, **opts.ml)
    take = left & np.isfinite(learned[f"{name}_f"].values)
    log.info("%s: %d records MDS left unfilled filled by %s", name, int(take.sum()), opts.ml_fill)
    updates = {
        "f": learned[f"{name}_f"].values,
        "fqc": np.full(take.size, 3.0),
        "fsd": learned[f"{name}_fsd"].values,
        "fmeth": np.full(take.size, FILL_LABELS[ML], dtype=object),
    }
    for suffix, values in updates.items():
        var = one[f"{name}_{suffix}"]
        one[f"{name}_{suffix}"] = var.copy(data=np.where(take, values, var.values))
    one[f"{name}_fqc"].attrs["long_name"] += f"; 3 also where {opts.ml_fill} filled what MDS left (_fmeth ml)"
    return one


def _fill_counts(one: xr.Dataset, name: str) -> dict:
    method = one[f"{name}_fmeth"].values.astype(str)
    quality = one[f"{name}_fqc"].values
    gaps = ~np.isfinite(one[name].values)
    return {
        "measured": int((~gaps).sum()),
        "gaps": int(gaps.sum()),
        **{f"quality_{q}": int((gaps & (quality == q) & (method != "ml")).sum()) for q in (1, 2, 3)},
        "ml": int((method == "ml").sum()),
        "unfilled": int(np.isnan(one[f"{name}_f"].values).sum()),
    }


#: Factor from a flux × seconds to the budget units: µmol CO2 → g C, J → MJ.
_BUDGET_UNITS = {"carbon": ("g C m-2", MOLAR_MASS_C * 1e-6), "energy": ("MJ m-2", 1e-6)}


def annual_budgets(one: xr.Dataset, scenarios, fluxes, partitioning) -> pd.DataFrame:
    """Annual sums per variable and u* scenario with random, u* and combined uncertainty.

    Parameters
    ----------
    one : xarray.Dataset
        One site (time) after the chain.
    scenarios : list of str
        u* scenario suffixes (``""`` without u* filtering).
    fluxes : list of str
        Fluxes filled.
    partitioning : sequence of str
        Partitionings run.

    Returns
    -------
    pandas.DataFrame
        See :attr:`ProcessedSite.annual`.  ``sd_random`` is that of the
        measured records' ``_fsd`` with their autocorrelation (NEE, LE, H);
        ``sd_ustar`` the SD (n − 1) of the scenario sums of the year, on every
        scenario's row; ``sd_total`` their combination.
    """
    time = pd.DatetimeIndex(one["time"].values)
    seconds = time_step(time).total_seconds()
    rows = []
    partitioned = {"nighttime": ("GPP_NT", "RECO_NT"), "daytime": ("GPP_DT", "RECO_DT")}
    # (variable, units kind, per u* scenario, filled by MDS: its _f is summed and has a random error)
    variables = [("NEE", "carbon", True, True)] + [(f, "energy", False, True) for f in fluxes if f != "NEE"]
    variables += [(v, "carbon", True, False) for m in partitioning for v in partitioned[m]]
    for base, kind, per_scenario, mds_filled in variables:
        units, factor = _BUDGET_UNITS[kind]
        for scenario in scenarios if per_scenario else [""]:
            name = _scenario_name(base, scenario)
            series = f"{name}_f" if mds_filled else name
            if series not in one:
                continue
            values = pd.Series(one[series].values.astype(float), index=time)
            random = aggregate_with_random_error(one, name, "YS") if mds_filled and f"{name}_fall" in one else None
            for year, part in values.groupby(time.year):
                complete = bool(part.notna().all())
                row = {
                    "year": int(year),
                    "variable": base,
                    "scenario": scenario or "none",
                    "sum": float(part.sum() * seconds * factor) if complete else np.nan,
                    "units": units,
                    "n_records": int(part.size),
                    "unfilled": int(part.isna().sum()),
                }
                if random is not None:
                    r = random.loc[pd.Timestamp(year=int(year), month=1, day=1)]
                    row["sd_random"] = float(r["sd_random"] * part.size * seconds * factor)
                    row["filled_share"] = float(r["filled_share"])
                rows.append(row)
    table = pd.DataFrame(rows)
    columns = ["year", "variable", "scenario", "sum", "sd_random", "sd_ustar", "sd_total", "units"]
    for c in ("sd_random", "filled_share"):
        if c not in table:
            table[c] = np.nan
    spread = table.groupby(["year", "variable"])["sum"].transform(lambda s: s.std(ddof=1) if s.size > 1 else np.nan)
    table["sd_ustar"] = spread
    table["sd_total"] = np.sqrt(table["sd_random"].fillna(0) ** 2 + table["sd_ustar"].fillna(0) ** 2).where(
        table["sd_random"].notna() | table["sd_ustar"].notna()
    )
    return table[columns + ["n_records", "unfilled", "filled_share"]]


def _scenario_name(base: str, scenario: str) -> str:
    return f"{base}_{scenario}" if scenario else base


def summary_text(summary: dict, annual: pd.DataFrame) -> str:
    """Lines saying what each step of the chain did."""
    lines = [f"site {summary['site']}: {summary['records']} records"]
    for flux, c in summary["qc"].items():
        lines.append(
            f"  QC {flux}: {c['missing']} missing, {c['failing_qc']} failing QC, {c['long_runs']} in long runs"
        )
    if isinstance(summary["spikes"], dict):
        for flux, c in summary["spikes"].items():
            lines.append(f"  spikes {flux}: {c['removed']} removed of {c['tested']} tested")
    u = summary["ustar"]
    if isinstance(u, dict):
        scen = ", ".join(f"{k} {v:.3f}" for k, v in u.items() if k.startswith("U"))
        lines.append(f"  u* threshold {u['threshold']:.3f} m s-1" + (f" (bootstrap {scen})" if scen else " (given)"))
        lines.append(
            "  u* filtered: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in u.get("filtered_share", {}).items())
        )
    else:
        lines.append(f"  u*: {u}")
    for name, c in summary["gapfill"].items():
        lines.append(
            f"  filled {name}: {c['gaps']} gaps, quality 1/2/3 {c['quality_1']}/{c['quality_2']}/{c['quality_3']}"
            + (f", ML {c['ml']}" if c["ml"] else "")
            + f", {c['unfilled']} unfilled"
        )
    for _, r in annual.iterrows():
        unc = "" if np.isnan(r["sd_total"]) else f" ± {r['sd_total']:.1f}"
        detail = ", ".join(f"{k} {r[k]:.1f}" for k in ("sd_random", "sd_ustar") if np.isfinite(r[k]))
        lines.append(
            f"  {r['year']} {r['variable']} {r['scenario']}: {r['sum']:.1f}{unc} {r['units']}"
            + (f" ({detail})" if detail else "")
        )
    lines.append("  seconds: " + ", ".join(f"{k} {v}" for k, v in summary["seconds"].items()))
    return "\n".join(lines)
