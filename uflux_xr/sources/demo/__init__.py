"""The demo worlds: seeded predictor cubes, tower networks and true fluxes, generated without a download.

Two generators share the process physics of :mod:`uflux_xr.core.physics` (which the hybrid baselines use too):

- :mod:`uflux_xr.sources.demo.eager` (:func:`make_world`): the whole grid in memory with a daily soil-water
  bucket; the README's demo job.
- :mod:`uflux_xr.sources.demo.lazy` (:class:`LazyWorld`): a closed form of coordinates and time evaluated chunk by
  chunk, for the real product domains (0.25° global, 100 m UK) that do not fit in memory.
"""

from uflux_xr.sources.demo.eager import ALTERNATIVE_Q10, LAND_SHARE, PROCESS_FORMS, DemoWorld, make_world
from uflux_xr.sources.demo.lazy import LazyWorld, site_table

__all__ = ["ALTERNATIVE_Q10", "LAND_SHARE", "PROCESS_FORMS", "DemoWorld", "LazyWorld", "make_world", "site_table"]
