"""Self-contained HTML reports: :func:`run_report` for an upscaling run, :func:`gapfill_report` for a filled record."""

from uflux_xr.report.gapfill_report import gapfill_report
from uflux_xr.report.product_report import run_report

__all__ = ["gapfill_report", "run_report"]
