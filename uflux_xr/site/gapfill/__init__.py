"""Gap filling of tower records: ``ux.gapfill(site_ds, var, method=...)``.

Methods: ``mds`` (marginal distribution sampling, REddyProc's rules by
default, :mod:`uflux_xr.site.gapfill.mds_reddyproc`, or hesseflux's,
:mod:`uflux_xr.site.gapfill.mds_hesseflux`), ``mdv`` (mean diurnal variation;
:mod:`uflux_xr.site.gapfill.mdv`), ``fao_pm`` (FAO-56 Penman-Monteith ET0 × crop
coefficient; :mod:`uflux_xr.site.gapfill.fao_pm`), ``kalman`` (AR(1) anomaly
around the FAO-PM/MDV input, Kalman smoother; :mod:`uflux_xr.site.gapfill.kalman`),
``ml`` and ``svr`` (tree ensemble or support vector regression on site
drivers, any gap length; :mod:`uflux_xr.site.gapfill.ml`).
:func:`artificial_gap_benchmark` scores them on injected gaps.  Outputs follow
REddyProc's suffixes: ``<VAR>_f`` (filled series), ``<VAR>_fqc`` (0
measured, 1–3 by method, NaN unfilled), ``<VAR>_fmeth`` (how each value was
obtained), ``<VAR>_fsd`` and ``<VAR>_fnum`` (uncertainty and number of
values behind it, per method).  Each method's options are a dataclass in
:mod:`uflux_xr.site.gapfill.options`.
"""

from uflux_xr.site.gapfill.api import gapfill
from uflux_xr.site.gapfill.benchmark import artificial_gap_benchmark

__all__ = ["artificial_gap_benchmark", "gapfill"]
