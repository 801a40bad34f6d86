"""The tower wing: one site's record from raw half-hours to gap-filled, partitioned, aggregated fluxes.

Spikes (:mod:`~uflux_xr.site.spikes`), the u* threshold (:mod:`~uflux_xr.site.ustar`), gap filling
(:mod:`~uflux_xr.site.gapfill`), partitioning (:mod:`~uflux_xr.site.partition`), aggregation
(:mod:`~uflux_xr.site.aggregate`), random error (:mod:`~uflux_xr.site.random_error`) and the chain that
runs them in REddyProc's order (:mod:`~uflux_xr.site.chain`).  This package does not import
:mod:`uflux_xr.grid`.
"""
