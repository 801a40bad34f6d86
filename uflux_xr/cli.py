"""The ``uflux-xr`` command line.

``uflux-xr run CONFIG --out DIR`` runs the whole job of a configuration and
prints the validation summary.  ``--workers N`` starts a local dask cluster of
N single-threaded worker processes, ``--scheduler ADDRESS`` joins an existing
one; by default dask's threaded scheduler is used.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from uflux_xr.config import ConfigError, load_config

log = logging.getLogger("uflux_xr")


def _scheduler(workers: int | None, address: str | None):
    """Context manager for the dask scheduler the user asked for."""
    if address:
        from distributed import Client

        return Client(address)
    if workers:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        stack = contextlib.ExitStack()
        stack.enter_context(cluster)
        client = stack.enter_context(Client(cluster))
        log.info("dask LocalCluster with %d workers: %s", workers, client.dashboard_link or "no dashboard")
        return stack
    return contextlib.nullcontext()


def _cmd_run(args) -> int:
    from uflux_xr.pipeline import format_summary, run

    config = load_config(args.config)
    with _scheduler(args.workers, args.scheduler):
        result = run(config, args.out, progress=not args.quiet)
    print(format_summary(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uflux-xr", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train, validate, upscale and write the products of a configuration")
    p.add_argument("config", help="YAML configuration (e.g. configs/demo.yaml)")
    p.add_argument("--out", required=True, help="output directory")
    sched = p.add_mutually_exclusive_group()
    sched.add_argument("--workers", type=int, metavar="N", help="run on a local dask cluster of N worker processes")
    sched.add_argument("--scheduler", metavar="ADDRESS", help="use an existing dask scheduler (tcp://host:port)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)
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
    except (ConfigError, FileNotFoundError, KeyError, ValueError) as err:
        print(f"uflux-xr: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
