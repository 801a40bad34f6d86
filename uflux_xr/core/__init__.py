"""The floor both wings stand on: constants, units and the variables registry, physics formulas, the time
and grid of a domain, solar geometry, the QC vocabulary, metrics, plausibility ranges and progress.

Nothing here reads a file the user named or knows about towers versus grids; :mod:`uflux_xr.site` and
:mod:`uflux_xr.grid` both import from here, and this package imports neither.
"""
