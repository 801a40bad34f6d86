"""uflux-xr: flux-tower upscaling and gap filling on xarray and dask.

The steps of the upscaling job, each usable on its own::

    import uflux_xr as ux

    cube, sites, truth = ux.synthetic.make_world(seed=0)
    table = ux.extract_at_sites(cube, sites, features)
    model = ux.train(table, "GPP", features, model="xgboost")
    cv = ux.cross_validate(table, "GPP", features, model="xgboost", cv="loso")
    product = ux.upscale({"GPP": [model]}, cube)
    ux.write_product(product, "gpp.nc")
    sites = ux.read_sites(["FLX_CH-Cha_FLUXNET2015_FULLSET_HH_2005-2014_1-4.csv"], metadata="sites.csv")
"""

import sys as _sys
import types as _types
from importlib import import_module as _import_module
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("uflux-xr")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

# Public names and the module each comes from.  They are imported on first use
# (PEP 562), so ``uflux-xr --help`` and ``import uflux_xr`` do not load xarray,
# dask, XGBoost, LightGBM and numba before anything needs them.
_EXPORTS = {
    "aggregate": "uflux_xr.aggregate",
    "aoa": "uflux_xr.applicability",
    "ApplicabilityError": "uflux_xr.applicability",
    "metrics": "uflux_xr.metrics",
    "demo": "uflux_xr.demo",
    "synthetic": "uflux_xr.demo.eager",  # the name the eager demo world had before uflux_xr.demo
    "ConfigError": "uflux_xr.config",
    "load_config": "uflux_xr.config",
    "CubeError": "uflux_xr.cube",
    "build_cube": "uflux_xr.cube",
    "area_weighted_total": "uflux_xr.ensemble",
    "cell_area": "uflux_xr.ensemble",
    "ensemble_statistics": "uflux_xr.ensemble",
    "ExplainError": "uflux_xr.explain",
    "contributions": "uflux_xr.explain",
    "explain": "uflux_xr.explain",
    "importance_table": "uflux_xr.explain",
    "artificial_gap_benchmark": "uflux_xr.gapfill",
    "gapfill": "uflux_xr.gapfill",
    "write_product": "uflux_xr.io",
    "ERA5Error": "uflux_xr.io.era5",
    "read_era5": "uflux_xr.io.era5",
    "RasterError": "uflux_xr.io.raster",
    "read_raster": "uflux_xr.io.raster",
    "vegetation_indices": "uflux_xr.io.raster",
    "write_resumable": "uflux_xr.io.resumable",
    "TowerFileError": "uflux_xr.io.towers",
    "read_sites": "uflux_xr.io.towers",
    "FluxModel": "uflux_xr.models",
    "available_models": "uflux_xr.models",
    "load_model": "uflux_xr.models",
    "register_model": "uflux_xr.models",
    "train": "uflux_xr.models",
    "PartitioningError": "uflux_xr.partition",
    "partition": "uflux_xr.partition",
    "run": "uflux_xr.pipeline",
    "gapfill_report": "uflux_xr.report",
    "run_report": "uflux_xr.report",
    "PlausibilityError": "uflux_xr.plausibility",
    "check_plausible": "uflux_xr.plausibility",
    "set_options": "uflux_xr.plausibility",
    "ProcessedSite": "uflux_xr.process",
    "process_site": "uflux_xr.process",
    "ExtractionError": "uflux_xr.sites",
    "extract_at_sites": "uflux_xr.sites",
    "flag_spikes": "uflux_xr.spikes",
    "upscale": "uflux_xr.upscale",
    "fill_ustar_scenarios": "uflux_xr.ustar",
    "ustar_thresholds": "uflux_xr.ustar",
    "CVResult": "uflux_xr.validate",
    "cross_validate": "uflux_xr.validate",
    "UnitsError": "uflux_xr.variables",
}

_SUBMODULES = {"aggregate", "demo", "metrics", "synthetic"}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'uflux_xr' has no attribute {name!r}")
    value = _import_module(module) if name in _SUBMODULES else getattr(_import_module(module), name)
    globals()[name] = value
    return value


#: Functions named like the module they live in (``ux.gapfill``, ``ux.partition``, ``ux.upscale``).
_NAMED_LIKE_THEIR_MODULE = {n for n, m in _EXPORTS.items() if m.rsplit(".", 1)[-1] == n} - _SUBMODULES


class _Package(_types.ModuleType):
    """``ux.gapfill``, ``ux.partition`` and ``ux.upscale`` stay the functions when their modules are imported.

    Importing ``uflux_xr.upscale`` sets the package attribute ``upscale`` to the
    module; the functions of the same name are the public API, so that
    assignment is dropped (the modules remain in ``sys.modules`` for
    ``from uflux_xr.upscale import ...``).
    """

    def __setattr__(self, name, value):
        if name in _NAMED_LIKE_THEIR_MODULE and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def __dir__():
    return sorted([*globals(), *_EXPORTS])
