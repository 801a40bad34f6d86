"""How long every shipped configuration's dry run takes, planned from stored rates and measured.

Prints, for each ``configs/*.yaml``, the wall time of ``uflux-xr run CONFIG --out ... --dry-run`` in this
process (the default: stored or shipped rates, no measuring) and, with ``--measure``, of the measured
mode, beside the plan's core-hours.  Target (issue 36): every default dry run <= 30 s on 2 cores.

``--store-defaults`` first measures each built-in model kind with its default hyper-parameters
(:func:`uflux_xr.workflow.plan.measure_throughput`, one thread, 10 features) and writes
``uflux_xr/workflow/data/throughput.json``, the rates a dry run uses where nothing was measured on its
machine.

Usage: python benchmarks/dry_run_speed.py [--measure] [--store-defaults]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

import yaml

from uflux_xr.models import available_models
from uflux_xr.workflow.config import ModelSpec, load_config
from uflux_xr.workflow.plan import measure_throughput, plan_run
from uflux_xr.workflow.prepare import prepare
from uflux_xr.workflow.rates import machine

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = REPO / "uflux_xr" / "workflow" / "data" / "throughput.json"


def store_defaults() -> None:
    kinds = {}
    for kind in available_models():
        rate, size, rows = measure_throughput(ModelSpec(kind), n_features=10)
        kinds[kind] = {"predictions_per_s": round(rate), "model_bytes": round(size), "training_rows": rows}
        print(f"{kind:14s} {rate / 1e6:6.2f} M predictions/s per core, {size / 1e6:6.2f} MB per model ({rows:,} rows)")
    text = {"machine": machine(), "date": datetime.date.today().isoformat(), "kinds": kinds}
    DEFAULTS.parent.mkdir(exist_ok=True)
    DEFAULTS.write_text(json.dumps(text, indent=1) + "\n")
    print(f"wrote {DEFAULTS}")


def prepared(path: Path, folder: Path) -> Path:
    """A configuration whose inputs exist: one with data.inputs is prepared into ``folder`` first."""
    raw = yaml.safe_load(path.read_text())
    data = raw["data"]
    if data.get("source") != "files" or "inputs" not in data or data.get("fallback"):
        return path
    inputs = data["inputs"]
    inputs["climate"] = [[str((path.parent / p).resolve()) for p in group] for group in inputs["climate"]]
    for key in ("files", "metadata"):
        inputs["towers"][key] = str((path.parent / inputs["towers"][key]).resolve())
    data["cube"], data["sites"] = str(folder / "cube.zarr"), str(folder / "sites.nc")
    copy = folder / path.name
    copy.write_text(yaml.safe_dump(raw))
    started = time.perf_counter()
    prepare(load_config(copy))
    print(f"{path.name}: uflux-xr prepare first ({time.perf_counter() - started:.1f} s, not counted)")
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="also time the measured mode (minutes per config)")
    parser.add_argument("--store-defaults", action="store_true", help="measure and write the shipped rates first")
    args = parser.parse_args()
    print(f"machine: {machine()}; {datetime.date.today()}")
    if args.store_defaults:
        store_defaults()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["UFLUX_CACHE_DIR"] = cache  # nothing stored: the shipped rates, as on a fresh machine
        print(f"{'config':26s} {'default [s]':>11s} {'core-hours':>11s}" + ("  measured [s]" if args.measure else ""))
        for path in sorted((REPO / "configs").glob("*.yaml")):
            config = load_config(prepared(path, Path(cache)))
            started = time.perf_counter()
            plan = plan_run(config, threads_per_worker=os.cpu_count() or 1)
            plan.format()
            default_s = time.perf_counter() - started
            line = f"{path.name:26s} {default_s:11.1f} {plan.core_hours():11.3g}"
            if args.measure:
                started = time.perf_counter()
                plan_run(config, threads_per_worker=os.cpu_count() or 1, measure=True).format()
                line += f"  {time.perf_counter() - started:12.1f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
