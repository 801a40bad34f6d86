"""Gap filling of tower records: ``ux.gapfill(site_ds, var, method=...)``.

Implemented: ``mds`` (marginal distribution sampling, REddyProc/hesseflux
semantics; see :mod:`uflux_xr.gapfill.mds`) and ``mdv`` (mean diurnal
variation; :mod:`uflux_xr.gapfill.mdv`) and ``ml`` (tree ensemble on site
drivers, any gap length; :mod:`uflux_xr.gapfill.ml`).
:func:`artificial_gap_benchmark` scores them on injected gaps.  Outputs follow REddyProc's
suffixes: ``<VAR>_f`` (filled series), ``<VAR>_fqc`` (0 measured, MDS quality
1–3, NaN unfilled), ``<VAR>_fmeth`` (how each value was obtained),
``<VAR>_fsd`` and ``<VAR>_fnum`` (SD and number of the MDS matches).
"""

from uflux_xr.gapfill.api import gapfill
from uflux_xr.gapfill.benchmark import artificial_gap_benchmark

__all__ = ["artificial_gap_benchmark", "gapfill"]
