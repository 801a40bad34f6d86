"""The map wing: from towers and predictor cubes to gridded ensemble products.

Extraction at the towers (:mod:`~uflux_xr.grid.extract`), derived features (:mod:`~uflux_xr.grid.features`),
chunkwise upscaling (:mod:`~uflux_xr.grid.upscale`), ensemble statistics and totals
(:mod:`~uflux_xr.grid.ensemble`), regions (:mod:`~uflux_xr.grid.regions`), validation
(:mod:`~uflux_xr.grid.validate`), explanations (:mod:`~uflux_xr.grid.explain`) and where the maps can be
trusted (:mod:`~uflux_xr.grid.applicability`, :mod:`~uflux_xr.grid.completeness`).  This package does not
import :mod:`uflux_xr.site`.
"""
