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

from uflux_xr import aggregate, metrics, synthetic
from uflux_xr.config import ConfigError, load_config
from uflux_xr.cube import CubeError, build_cube
from uflux_xr.ensemble import area_weighted_total, cell_area, ensemble_statistics
from uflux_xr.gapfill import gapfill
from uflux_xr.io import write_product
from uflux_xr.io.era5 import ERA5Error, read_era5
from uflux_xr.io.raster import RasterError, read_raster, vegetation_indices
from uflux_xr.io.resumable import write_resumable
from uflux_xr.io.towers import TowerFileError, read_sites
from uflux_xr.models import FluxModel, available_models, load_model, register_model, train
from uflux_xr.partition import PartitioningError, partition
from uflux_xr.pipeline import run
from uflux_xr.plausibility import PlausibilityError, check_plausible, set_options
from uflux_xr.process import ProcessedSite, process_site
from uflux_xr.sites import ExtractionError, extract_at_sites
from uflux_xr.spikes import flag_spikes
from uflux_xr.upscale import upscale
from uflux_xr.ustar import fill_ustar_scenarios, ustar_thresholds
from uflux_xr.validate import CVResult, cross_validate
from uflux_xr.variables import UnitsError

__all__ = [
    "area_weighted_total",
    "cell_area",
    "ensemble_statistics",
    "write_resumable",
    "CVResult",
    "aggregate",
    "ConfigError",
    "ERA5Error",
    "ExtractionError",
    "CubeError",
    "build_cube",
    "PlausibilityError",
    "check_plausible",
    "set_options",
    "FluxModel",
    "RasterError",
    "TowerFileError",
    "UnitsError",
    "available_models",
    "cross_validate",
    "extract_at_sites",
    "gapfill",
    "load_config",
    "load_model",
    "metrics",
    "read_era5",
    "read_raster",
    "read_sites",
    "register_model",
    "run",
    "synthetic",
    "train",
    "upscale",
    "fill_ustar_scenarios",
    "flag_spikes",
    "partition",
    "process_site",
    "ProcessedSite",
    "PartitioningError",
    "ustar_thresholds",
    "vegetation_indices",
    "write_product",
]
