"""The ``uflux-xr`` command line.

``uflux-xr run CONFIG --out DIR`` runs the whole job of a configuration and
prints the validation summary; ``--dry-run`` prints its plan instead, and
``--window time=0:31,y=0:500,x=0:500`` runs it on part of the domain.  ``--workers N`` starts a local dask cluster of
N single-threaded worker processes, ``--scheduler ADDRESS`` joins an existing
one; by default dask's threaded scheduler is used.

Only the standard library is imported at the top: each command imports what
it needs, so ``uflux-xr --help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from uflux_xr import __version__

log = logging.getLogger("uflux_xr")

DESCRIPTION = (
    "Upscale flux-tower measurements to gridded NetCDF/Zarr products with tree ensembles, "
    "and process and gap-fill tower records."
)

#: Gap-filling methods and what each does (the keys are uflux_xr.site.gapfill.options.METHODS; a test keeps them equal).
GAPFILL_METHODS = {
    "mds": "marginal distribution sampling (REddyProc's rules by default)",
    "mdv": "mean diurnal variation",
    "fao_pm": "FAO-56 Penman-Monteith ET0 times a crop coefficient (LE)",
    "kalman": "Kalman smoother of an AR(1) anomaly around FAO-PM/MDV",
    "ml": "tree-ensemble model on the site's drivers (any gap length)",
    "svr": "support vector regression on the site's drivers",
}


def _described(choices: dict[str, str]) -> str:
    return "; ".join(f"{name}: {text}" for name, text in choices.items())


def _distributed_log_level() -> int:
    """Put dask.distributed's loggers back to WARNING (importing it set them to INFO), or INFO with
    --verbose; the level the worker processes are given too."""
    level = logging.WARNING if logging.getLogger("uflux_xr").getEffectiveLevel() > logging.DEBUG else logging.INFO
    logging.getLogger("distributed").setLevel(level)
    return level


def _scheduler(workers: int | None, address: str | None):
    """Context manager for the dask scheduler the user asked for."""
    if address:
        from distributed import Client

        _distributed_log_level()
        return Client(address)
    if workers:
        from distributed import Client, LocalCluster

        level = _distributed_log_level()
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=level
        )
        stack = contextlib.ExitStack()
        stack.enter_context(cluster)
        client = stack.enter_context(Client(cluster))
        log.info("dask LocalCluster with %d workers: %s", workers, client.dashboard_link or "no dashboard")
        return stack
    return contextlib.nullcontext()


def parse_window(text: str) -> dict[str, slice]:
    """``time=0:31,y=5000:5500`` -> {"time": slice(0, 31), "y": slice(5000, 5500)} (index ranges)."""
    window = {}
    for part in text.split(","):
        dim, _, span = part.partition("=")
        start, sep, stop = span.partition(":")
        try:
            if not dim.strip() or not sep:
                raise ValueError
            a, b = int(start), int(stop)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected DIM=START:STOP[,DIM=START:STOP...], got {part!r}") from None
        if not 0 <= a < b:
            raise argparse.ArgumentTypeError(f"{dim}: expected 0 <= START < STOP, got {a}:{b}")
        window[dim.strip()] = slice(a, b)
    return window


def _cmd_run(args) -> int:
    from uflux_xr.workflow.config import load_config
    from uflux_xr.workflow.pipeline import format_summary, run

    config = load_config(args.config, demo_inputs=args.demo_inputs)
    if args.window and config.domain is not None:
        dims = ("time", *config.domain.dims)
        bad = [d for d in args.window if d not in dims]
        if bad:
            raise ValueError(f"--window: unknown dim(s) {bad}; the {config.name} domain has {list(dims)}")
    if args.dry_run:
        from uflux_xr.io.storage import fsspec_defaults
        from uflux_xr.workflow.plan import plan_run

        threads = 1 if args.workers or args.scheduler else os.cpu_count() or 1
        with fsspec_defaults(config.storage_options):
            plan = plan_run(
                config, window=args.window, threads_per_worker=threads, throughput=args.throughput, measure=args.measure
            )
        print(plan.format())
        return 0
    with _scheduler(args.workers, args.scheduler):
        result = run(config, args.out, progress=not args.quiet, window=args.window, report=not args.no_report)
    print(format_summary(result))
    return 0


def _cmd_report(args) -> int:
    from uflux_xr.report import run_report

    path = run_report(args.run_dir, args.out, period=args.period)
    print(f"wrote {path}")
    return 0


def _cmd_prepare(args) -> int:
    from uflux_xr.workflow.config import load_config
    from uflux_xr.workflow.prepare import prepare

    result = prepare(load_config(args.config))
    print(result.format())
    return 0


def _cmd_ingest(args) -> int:
    from uflux_xr.io import open_any, write_dataset
    from uflux_xr.workflow.ingest import summarize_cube, summarize_sites

    if args.kind == "sites":
        from uflux_xr.site.aggregate import to_daily

        ds = _read_tower_files(args)
        if args.daily:
            ds = to_daily(ds, min_coverage=args.min_coverage)
        summary = summarize_sites(ds)
    elif args.kind == "era5":
        from uflux_xr.io.era5 import read_era5

        ds = read_era5(args.files, freq=args.freq, land=args.land)
        summary = summarize_cube(ds)
    else:
        from uflux_xr.io.raster import read_raster

        if not args.like or not args.resampling:
            raise ValueError("ingest raster needs --like GRID and --resampling METHOD")
        da = read_raster(
            args.files,
            like=open_any(args.like),
            resampling=args.resampling,
            variable=args.variable,
            name=args.name,
            units=args.units,
            scale_factor=args.scale_factor,
        )
        ds = da.to_dataset(name=args.name or da.name or "value")
        summary = summarize_cube(ds)
    write_dataset(ds, args.out, progress=False)
    print(summary)
    print(f"wrote {args.out}")
    return 0


def _cmd_gapfill(args) -> int:
    from uflux_xr.io import write_dataset
    from uflux_xr.site.gapfill import gapfill

    ds = _read_tower_files(args)
    raw = ds
    for var in args.var:
        ds = gapfill(ds, var, method=args.method, **_method_options(args, args.method, var))
        for site in ds["site"].values:
            one = ds.sel(site=site)
            gaps = int(one[var].isnull().sum())
            left = int(one[f"{var}_f"].isnull().sum())
            quality = one[f"{var}_fqc"].where(one[var].isnull())
            shares = ", ".join(f"q{q} {int((quality == q).sum())}" for q in (1, 2, 3))
            print(f"{site} {var}: {gaps} gaps, {gaps - left} filled ({shares}), {left} left unfilled")
    write_dataset(ds, args.out, progress=False)
    print(f"wrote {args.out}")
    if args.report:
        _gapfill_reports(args, raw, ds)
    return 0


def _gapfill_reports(args, raw, filled) -> None:
    """One HTML report per site and variable next to the output, with the benchmark when asked for."""
    from pathlib import Path

    from uflux_xr.report import gapfill_report
    from uflux_xr.site.gapfill import artificial_gap_benchmark

    out = Path(args.out)
    for site in filled["site"].values:
        for var in args.var:
            benchmark = None
            if args.benchmark_gap_days:
                methods = [args.method] + [m for m in ("mdv",) if m != args.method]
                benchmark = artificial_gap_benchmark(
                    raw.sel(site=[site]),
                    var,
                    gap_days=args.benchmark_gap_days,
                    methods=methods,
                    n_gaps=args.benchmark_n_gaps,
                    method_options={m: _method_options(args, m, var) for m in methods},
                )
            path = out.with_name(f"{out.stem}_{site}_{var}_report.html")
            gapfill_report(filled, var, path, site=site, benchmark=benchmark)
            print(f"wrote {path}")


def _ustar_choice(text: str):
    """``bootstrap``, ``none`` or a threshold [m s-1]."""
    if text in ("bootstrap", "none"):
        return None if text == "none" else text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected bootstrap, none or a threshold in m s-1, got {text!r}") from None
    if not 0 < value < 2:
        raise argparse.ArgumentTypeError(f"a u* threshold is between 0 and 2 m s-1, got {value}")
    return value


def _cmd_process(args) -> int:
    from uflux_xr.site.chain import process_site

    # process_site checks SW_IN against the position it uses (--lat/--lon/--utc-offset or the metadata)
    ds = _read_tower_files(args, position_check="off")
    if ds.sizes["site"] != 1:
        raise ValueError(
            f"process runs one site at a time; the files hold {list(map(str, ds['site'].values))}: "
            "give one site's files (or --site)"
        )
    result = process_site(
        ds,
        lat=args.lat,
        lon=args.lon,
        utc_offset=args.utc_offset,
        good_qc=args.good_qc,
        spikes=None if args.spikes == "none" else args.spikes,
        ustar=args.ustar,
        ustar_samples=args.ustar_samples,
        partitioning=tuple(p for p in args.partitioning if p != "none"),
        ml_fill=args.ml_fill,
        seed=args.seed,
        position_check=args.position_check,
        mds={"convention": args.convention},
        daytime={"n_boot": args.daytime_bootstrap},
    )
    result.to_netcdf(args.out)
    print(result.summary_text())
    print(f"wrote {args.out} and its _annual.csv")
    return 0


def _method_options(args, method: str, var: str) -> dict:
    """Options of one gap-filling method for ``var`` from the command line."""
    if method == "mds":
        return {"convention": args.convention, "fill_drivers": args.fill_drivers}
    if method not in ("ml", "svr"):
        return {}
    years = args.train_years
    if years not in ("all", "nearest"):
        years = tuple(int(y) for y in years.split(","))
    learned = {"train_years": years, "antecedent_days": tuple(args.antecedent_days), "time_trend": args.time_trend}
    if method == "svr":
        return learned
    options = {**learned, "members": args.ml_members}
    if args.ml_baseline != "none":
        options["params"] = {"baseline": _baseline_name(args.ml_baseline, var)}
    return options


def _baseline_name(name: str, var: str) -> str:
    """The hybrid baseline for ``var``: ``auto`` resolved by the variable (the fill trains on a column
    called ``target``, which has no default of its own); unknown names stop here."""
    from uflux_xr.models.hybrid import get_baseline

    return get_baseline(name, var).name  # raises with the names available


#: Tower file formats of read_sites and what each is.
TOWER_FORMATS = {
    "auto": "detected per file",
    "fluxnet": "FLUXNET2015 / ONEFlux / ICOS CSV",
    "ameriflux-base": "AmeriFlux BASE CSV",
    "reddyproc": "REddyProc / hesseflux text (Year DoY Hour or Day Hour columns)",
    "diive": "diive parquet (the CH-Dav file)",
}


def _read_tower_files(args, position_check: str | None = None):
    """The tower files of a command, read as its tower-file arguments say (:func:`uflux_xr.read_sites`);
    ``position_check`` overrides ``--position-check``."""
    from uflux_xr.io.towers import read_sites

    return read_sites(
        args.files,
        format=args.format,
        metadata=args.metadata,
        site=args.site,
        year=args.year,
        position_check=position_check or args.position_check,
    )


def _add_tower_file_arguments(parser, applies: str = "") -> None:
    """How tower files are read (:func:`uflux_xr.read_sites`); ``applies`` prefixes each help ("(sites) ")."""
    parser.add_argument("--format", default="auto", choices=TOWER_FORMATS, help=applies + _described(TOWER_FORMATS))
    parser.add_argument("--metadata", help=applies + "site metadata CSV (site, lat, lon, igbp, elevation, utc_offset)")
    parser.add_argument("--site", help=applies + "site id for files whose name has none")
    parser.add_argument(
        "--year", type=int, help=applies + "year of REddyProc Day/Hour text files without a Year column"
    )
    parser.add_argument(
        "--position-check",
        default="raise",
        choices=["raise", "warn", "off"],  # core.sun_check.POSITION_CHECK_POLICIES: --help imports no numpy
        help=applies + "compare SW_IN with the sun at the site's lat, lon and UTC offset: stop on a lag of 45 min "
        "or more (raise), only log it (warn), or skip (off)",
    )


def _add_method_arguments(parser) -> None:
    parser.add_argument(
        "--convention",
        default="reddyproc",
        choices=["reddyproc", "hesseflux"],
        help="MDS rules: REddyProc's (windows, step order, quality codes) or hesseflux's",
    )
    parser.add_argument(
        "--fill-drivers",
        action="store_true",
        help="MDS: fill SW_IN/TA/VPD first and match on the filled drivers (REddyProc and hesseflux do not)",
    )
    parser.add_argument("--ml-members", type=int, default=3, help="ensemble members of the ML fill")
    parser.add_argument(
        "--train-years", default="all", help="ML/SVR training years: all, nearest or a list like 2015,2016"
    )
    parser.add_argument(
        "--antecedent-days", nargs="*", type=int, default=[], help="ML/SVR trailing-mean driver windows [days]"
    )
    parser.add_argument("--time-trend", action="store_true", help="ML/SVR: add the time in years as a feature")
    parser.add_argument(
        "--ml-baseline",
        default="none",
        help="ML: a process baseline under the trees (hybrid model): none, auto (the variable's default: "
        "lue for GPP, lloyd_taylor for RECO, lue_lloyd_taylor for NEE, priestley_taylor for LE and ET) or a "
        "baseline's name (uflux_xr.models.hybrid.BASELINES)",
    )


def _cmd_gapfill_benchmark(args) -> int:
    import pandas as pd

    from uflux_xr.site.gapfill import artificial_gap_benchmark

    ds = _read_tower_files(args)
    tables = []
    for var in args.var:
        options = {method: _method_options(args, method, var) for method in args.methods}
        table = artificial_gap_benchmark(
            ds.isel(site=[0]),
            var,
            gap_days=args.gap_days,
            methods=args.methods,
            n_gaps=args.n_gaps,
            seed=args.seed,
            method_options=options,
            min_measured=args.min_measured,
        )
        tables.append(table.assign(variable=var))
    result = pd.concat(tables, ignore_index=True)
    columns = [
        "variable",
        "gap_days",
        "method",
        "gaps",
        "n",
        "filled_share",
        "bias",
        "rmse",
        "r",
        "r2",
        "nse",
        "ioa",
        "slope",
        "noise_sd",
        "noise_pairs",
    ]
    result = result[columns]
    print(result.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if args.out:
        result.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uflux-xr", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train, validate, upscale and write the products of a configuration")
    p.add_argument("config", help="YAML configuration (e.g. configs/demo.yaml)")
    p.add_argument("--out", required=True, help="output directory, or an fsspec URL (s3://bucket/run)")
    sched = p.add_mutually_exclusive_group()
    sched.add_argument("--workers", type=int, metavar="N", help="run on a local dask cluster of N worker processes")
    sched.add_argument("--scheduler", metavar="ADDRESS", help="use an existing dask scheduler (tcp://host:port)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-report", action="store_true", help="do not write report.html at the end")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (chunks, tasks, predictions, memory per worker, output size, core-hours) and stop",
    )
    p.add_argument(
        "--demo-inputs",
        action="store_true",
        help="run a files configuration on the synthetic demo world of its domain (data.fallback) in place of its "
        "input files; the product's title, attributes, summary and report say it is synthetic",
    )
    p.add_argument(
        "--window",
        type=parse_window,
        metavar="DIM=A:B,...",
        help="produce only these index ranges of the domain, e.g. time=0:31,y=4000:4500,x=2000:2500",
    )
    p.add_argument(
        "--measure",
        action="store_true",
        help="--dry-run: measure each model kind on sampled chunks of this run's cube (minutes) and store the rates "
        "for later dry runs, instead of planning from the stored or shipped rates (seconds)",
    )
    p.add_argument(
        "--throughput",
        type=float,
        metavar="PRED_PER_S",
        help="--dry-run: assume this many predictions per second per core instead of measuring each model kind",
    )
    p.set_defaults(func=_cmd_run)

    rep = sub.add_parser("report", help="write (again) the HTML report of a run's output directory")
    rep.add_argument("run_dir", help="output directory of uflux-xr run")
    rep.add_argument("--out", help="report file (default RUN_DIR/report.html)")
    rep.add_argument("--period", help="time selection of the maps, e.g. 2020 or 2020-06 (default: the first year)")
    rep.set_defaults(func=_cmd_report)

    prep = sub.add_parser(
        "prepare", help="build a config's predictor cube and tower file from the raw downloads in data.inputs"
    )
    prep.add_argument("config", help="YAML configuration with data.inputs, data.domain and data.period")
    prep.set_defaults(func=_cmd_prepare)

    ing = sub.add_parser("ingest", help="read tower, ERA5 or raster files into a site dataset or cube on disk")
    ing.add_argument(
        "kind",
        choices=["sites", "era5", "raster"],
        help="sites: tower files; era5: ERA5/ERA5-Land NetCDF/GRIB; raster: a GeoTIFF/NetCDF layer onto a grid",
    )
    ing.add_argument("files", nargs="+", help="input files")
    ing.add_argument("--out", required=True, help="output .nc or .zarr")
    _add_tower_file_arguments(ing, "(sites) ")
    ing.add_argument("--daily", action="store_true", help="aggregate to daily values (sites)")
    ing.add_argument("--min-coverage", type=float, default=1.0, help="fraction of a day needed (sites --daily)")
    ing.add_argument("--freq", choices=["D", "MS"], help="aggregate ERA5 to daily or monthly (era5)")
    ing.add_argument(
        "--land",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ERA5-Land accumulations since 00 UTC (era5; default: read from the values, grid, attributes)",
    )
    ing.add_argument("--like", help="target grid file (.nc/.zarr) (raster)")
    ing.add_argument("--resampling", help="resampling method, e.g. average, nearest (raster)")
    ing.add_argument("--variable", help="variable of a NetCDF raster (raster)")
    ing.add_argument("--name", help="name of the output variable (raster)")
    ing.add_argument("--units", default="1", help="units of the raster values after scaling (raster)")
    ing.add_argument(
        "--scale-factor", type=float, help="scale of a raster storing scaled integers without saying so (raster)"
    )
    ing.set_defaults(func=_cmd_ingest)

    gf = sub.add_parser("gapfill", help="fill gaps of tower fluxes and write the filled dataset")
    gf.add_argument("files", nargs="+", help="tower files (any format read_sites reads)")
    gf.add_argument("--var", nargs="+", required=True, help="variables to fill, e.g. NEE LE H")
    gf.add_argument("--method", default="mds", choices=list(GAPFILL_METHODS), help=_described(GAPFILL_METHODS))
    gf.add_argument("--out", required=True, help="output .nc or .zarr")
    _add_tower_file_arguments(gf)
    _add_method_arguments(gf)
    gf.add_argument("--report", action="store_true", help="write an HTML report per site and variable next to --out")
    gf.add_argument(
        "--benchmark-gap-days",
        nargs="*",
        type=float,
        default=[],
        metavar="DAYS",
        help="--report: score the method (and MDV) on artificial gaps of these lengths [days]",
    )
    gf.add_argument("--benchmark-n-gaps", type=int, default=3, help="--report: artificial gaps per length")
    gf.set_defaults(func=_cmd_gapfill)

    pr = sub.add_parser(
        "process",
        help="run one tower through QC, spikes, u* scenarios, MDS, partitioning and annual budgets (REddyProc's order)",
    )
    pr.add_argument("files", nargs="+", help="one site's tower files (any format read_sites reads)")
    pr.add_argument("--out", required=True, help="output .nc or .zarr with every intermediate (+ <stem>_annual.csv)")
    _add_tower_file_arguments(pr)
    pr.add_argument("--lat", type=float, help="site latitude [degrees north] (default: metadata)")
    pr.add_argument("--lon", type=float, help="site longitude [degrees east] (default: metadata)")
    pr.add_argument("--utc-offset", type=float, help="hours local standard time is ahead of UTC (default: metadata)")
    pr.add_argument("--good-qc", type=float, help="largest <VAR>_QC flag kept (FLUXNET: 0 measured ... 3 poor)")
    pr.add_argument(
        "--spikes",
        default="papale",
        choices=["papale", "hesseflux", "none"],
        help="spike test: ONEFlux's (Papale et al. 2006; z 4/5.5/7 in 13-day blocks) or hesseflux's madspikes",
    )
    pr.add_argument(
        "--ustar",
        type=_ustar_choice,
        default="bootstrap",
        metavar="bootstrap|none|VALUE",
        help="u* filter: REddyProc's threshold with bootstrap scenarios, none, or a threshold [m s-1]",
    )
    pr.add_argument("--ustar-samples", type=int, default=200, help="u* bootstrap samples (REddyProc: 200)")
    pr.add_argument(
        "--partitioning",
        nargs="+",
        default=["nighttime", "daytime"],
        choices=["nighttime", "daytime", "none"],
        help="NEE partitioning methods, per u* scenario",
    )
    pr.add_argument(
        "--daytime-bootstrap", type=int, default=30, help="day-time fit bootstraps for its SDs (REddyProc: 30; 0 fast)"
    )
    pr.add_argument("--ml-fill", metavar="MODEL", help="fill what MDS leaves (gaps > 60 days) with this model kind")
    pr.add_argument(
        "--convention",
        default="reddyproc",
        choices=["reddyproc", "hesseflux"],
        help="MDS rules: REddyProc's or hesseflux's",
    )
    pr.add_argument("--seed", type=int, default=0, help="seed of the u* bootstrap and the ML fill")
    pr.set_defaults(func=_cmd_process)

    gb = sub.add_parser("gapfill-benchmark", help="score gap-filling methods on artificial gaps of a tower record")
    gb.add_argument("files", nargs="+", help="tower files of one site")
    gb.add_argument("--var", nargs="+", required=True, help="variables, e.g. NEE LE")
    gb.add_argument("--gap-days", nargs="+", type=float, default=[1, 7, 30, 365], help="gap lengths [days]")
    gb.add_argument(
        "--methods",
        nargs="+",
        default=["mds", "mdv", "ml"],
        choices=list(GAPFILL_METHODS),
        help=_described(GAPFILL_METHODS),
    )
    gb.add_argument("--n-gaps", type=int, default=5, help="gaps per length")
    gb.add_argument("--seed", type=int, default=0, help="seed of the gap positions")
    gb.add_argument("--min-measured", type=float, default=0.5, help="fraction of measured values a gap window needs")
    gb.add_argument("--out", help="CSV file for the table")
    _add_tower_file_arguments(gb)
    _add_method_arguments(gb)
    gb.set_defaults(func=_cmd_gapfill_benchmark)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("distributed", "numcodecs", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if getattr(args, "workers", None) is not None and args.workers < 1:
        print("uflux-xr: error: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (FileNotFoundError, KeyError, ValueError) as err:  # ConfigError, UnitsError, ... are ValueErrors
        print(f"uflux-xr: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
