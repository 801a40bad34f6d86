"""Where a run's inputs come from: a registry of :class:`~uflux_xr.sources.base.InputSource` by the name
``data.source`` gives (``files``, ``demo``, ``lazy_demo``), and the demo worlds (:mod:`uflux_xr.sources.demo`).

The run and its dry run call :func:`source_for` and use the object it returns; no other part of the run
layer knows the names or imports the demo worlds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from uflux_xr.sources.base import GridOutline, Inputs, InputSource
from uflux_xr.sources.demo_worlds import EagerDemoSource, LazyDemoSource, calibration_table
from uflux_xr.sources.files import FileSource

if TYPE_CHECKING:
    from uflux_xr.workflow.config import RunConfig

_REGISTRY: dict[str, type[InputSource]] = {}


def register_source(cls: type[InputSource]) -> type[InputSource]:
    """Register an :class:`InputSource` subclass under its ``name`` (usable as a class decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (FileSource, EagerDemoSource, LazyDemoSource):
    register_source(_cls)


def source_names() -> tuple[str, ...]:
    """The values ``data.source`` may take."""
    return tuple(_REGISTRY)


def source_for(config: RunConfig, *, for_plan: bool = False) -> InputSource:
    """The source ``config``'s run reads: ``data.source``.

    A files source whose cube or towers do not exist is an error: a run never stands a demo world in for
    missing files unless asked (:func:`uflux_xr.workflow.config.with_demo_inputs`, ``--demo-inputs``).
    A plan (``for_plan``) needs the grid, the period and the models, not the values, and outlines the
    configuration's demo world (``data.fallback``) instead; its ``stands_in`` attribute is then True.

    Raises
    ------
    FileNotFoundError
        A files source whose files are missing; the message says how to make them.
    """
    data = config.data
    name = data.source
    if name == FileSource.name:
        from uflux_xr.io.storage import exists, redact

        missing = [redact(p) if p else p for p in (data.cube_path, data.sites_path) if not p or not exists(p)]
        if missing and for_plan and data.fallback:
            source = _REGISTRY[data.fallback](config)
            source.stands_in = True
            return source
        if missing:
            ways = []
            if data.inputs is not None:
                ways.append(f"build them from data.inputs with: uflux-xr prepare {config.path}")
            if data.fallback:
                ways.append(
                    "or try the run on the synthetic demo world of the domain with --demo-inputs "
                    "(Python: load_config(path, demo_inputs=True)); its product says it is synthetic"
                )
            raise FileNotFoundError(
                f"{config.path}: input file(s) {missing} not found (data.cube / data.sites)"
                + (f"; {' '.join(ways)}" if ways else "; check the paths")
            )
    return _REGISTRY[name](config)


__all__ = [
    "EagerDemoSource",
    "FileSource",
    "GridOutline",
    "InputSource",
    "Inputs",
    "LazyDemoSource",
    "calibration_table",
    "register_source",
    "source_for",
    "source_names",
]
