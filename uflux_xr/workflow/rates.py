"""Model throughput for dry runs without measuring: stored per machine, or shipped defaults.

A dry run answers in seconds by planning from rates it does not measure.  ``uflux-xr run --dry-run
--measure`` measures each model kind of the configuration on this machine (:mod:`uflux_xr.workflow.plan`)
and stores the result in ``throughput.json`` under the cache folder (``$UFLUX_CACHE_DIR``, else
``~/.cache/uflux-xr``), keyed by the machine, the kind, its hyper-parameters and the number of
features; a later dry run of the same models uses it.  Where nothing is stored, the plan uses the rates
shipped with the package (``workflow/data/throughput.json``: each kind with its default
hyper-parameters, measured by ``benchmarks/dry_run_speed.py --store-defaults`` on the machine the file
names) and says so.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from uflux_xr.io.atomic import write_text_atomic
from uflux_xr.io.jsonable import to_jsonable
from uflux_xr.workflow.config import ModelSpec

log = logging.getLogger(__name__)

CACHE_VARIABLE = "UFLUX_CACHE_DIR"
_FIELDS = ("predictions_per_s", "model_bytes", "training_rows")


def machine() -> str:
    """This machine in words: processor model, architecture and cores."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {platform.machine()}, {os.cpu_count()} cores"


def cache_file() -> Path:
    """Where measured rates are stored (``$UFLUX_CACHE_DIR/throughput.json``, else ``~/.cache/uflux-xr``)."""
    folder = os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "uflux-xr"
    return Path(folder) / "throughput.json"


def _key(spec: ModelSpec, n_features: int) -> str:
    return json.dumps({"kind": spec.name, "params": to_jsonable(spec.params), "features": n_features}, sort_keys=True)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def stored_rate(spec: ModelSpec, n_features: int) -> tuple[dict, str] | None:
    """The stored rate of ``spec`` on this machine, else the shipped default of its kind.

    Returns
    -------
    tuple or None
        (``{"predictions_per_s", "model_bytes", "training_rows"}``, where it comes from in words), or
        None when neither exists (a kind registered by a user).
    """
    entry = _read(cache_file()).get(machine(), {}).get(_key(spec, n_features))
    if entry:
        return entry, f"measured here on {entry['date']} (--measure measures again)"
    shipped = json.loads(resources.files("uflux_xr").joinpath("workflow/data/throughput.json").read_text())
    kind = shipped["kinds"].get(spec.name)
    if kind is None:
        return None
    return kind, (
        f"shipped default of the kind (its default hyper-parameters, {shipped['machine']}, {shipped['date']}); "
        "--measure measures this configuration here"
    )


def store_rate(spec: ModelSpec, n_features: int, measured, date: str) -> None:
    """Keep a measured :class:`~uflux_xr.workflow.plan.Throughput` of ``spec`` for later dry runs."""
    path = cache_file()
    stored = _read(path)
    entry = {k: v for k, v in asdict(measured).items() if k in _FIELDS}
    stored.setdefault(machine(), {})[_key(spec, n_features)] = {**entry, "date": date}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(to_jsonable(stored), indent=1))
    except OSError as err:  # a read-only home: the plan stands, the next dry run measures nothing new
        log.warning("could not store the measured throughput in %s (%s)", path, err)
