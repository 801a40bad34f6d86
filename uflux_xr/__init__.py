"""uflux-xr: flux-tower upscaling and gap filling on xarray and dask.

The steps of the upscaling job, each usable on its own::

    import uflux_xr as ux

    cube, sites, truth = ux.demo.make_world(seed=0)
    table = ux.extract_at_sites(cube, sites, features)
    model = ux.train(table, "GPP", features, model="xgboost")
    cv = ux.cross_validate(table, "GPP", features, model="xgboost", cv="loso")
    product = ux.upscale({"GPP": [model]}, cube)
    ux.write_product(product, "gpp.nc")
    sites = ux.read_sites(["FLX_CH-Cha_FLUXNET2015_FULLSET_HH_2005-2014_1-4.csv"], metadata="sites.csv")
"""

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
    "aggregate": "uflux_xr.site.aggregate",
    "aoa": "uflux_xr.grid.applicability",
    "ApplicabilityError": "uflux_xr.grid.applicability",
    "metrics": "uflux_xr.core.metrics",
    "demo": "uflux_xr.sources.demo",
    "ConfigError": "uflux_xr.workflow.config",
    "load_config": "uflux_xr.workflow.config",
    "CubeError": "uflux_xr.io.cube",
    "build_cube": "uflux_xr.io.cube",
    "area_weighted_total": "uflux_xr.grid.ensemble",
    "cell_area": "uflux_xr.grid.ensemble",
    "ensemble_statistics": "uflux_xr.grid.ensemble",
    "ExplainError": "uflux_xr.grid.explain",
    "contributions": "uflux_xr.grid.explain",
    "explain": "uflux_xr.grid.explain",
    "importance_table": "uflux_xr.grid.explain",
    "artificial_gap_benchmark": "uflux_xr.site.gapfill",
    "gapfill": "uflux_xr.site.gapfill",
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
    "PartitioningError": "uflux_xr.site.partition",
    "partition": "uflux_xr.site.partition",
    "run": "uflux_xr.workflow.pipeline",
    "gapfill_report": "uflux_xr.report",
    "run_report": "uflux_xr.report",
    "PlausibilityError": "uflux_xr.core.plausibility",
    "check_plausible": "uflux_xr.core.plausibility",
    "set_options": "uflux_xr.core.plausibility",
    "ProcessedSite": "uflux_xr.site.chain",
    "process_site": "uflux_xr.site.chain",
    "ExtractionError": "uflux_xr.grid.extract",
    "extract_at_sites": "uflux_xr.grid.extract",
    "flag_spikes": "uflux_xr.site.spikes",
    "upscale": "uflux_xr.grid.upscale",
    "fill_ustar_scenarios": "uflux_xr.site.ustar",
    "ustar_thresholds": "uflux_xr.site.ustar",
    "CVResult": "uflux_xr.grid.validate",
    "cross_validate": "uflux_xr.grid.validate",
    "UnitsError": "uflux_xr.core.variables",
    "MissingVariableError": "uflux_xr.core.variables",
}

_SUBMODULES = {"aggregate", "demo", "metrics"}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'uflux_xr' has no attribute {name!r}")
    value = _import_module(module) if name in _SUBMODULES else getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])
