"""The HTML report of a gap-filled tower record (``ux.gapfill_report``, ``uflux-xr gapfill --report``).

For one site and variable filled by :func:`uflux_xr.site.gapfill.gapfill`: the
record with its fills coloured by method (``<VAR>_fmeth``) and by quality
(``<VAR>_fqc``), the fingerprint (day × time of day) of the measured and the
filled record, daily values with the fills' uncertainty, the counts per method
and quality, and, when given, the artificial-gap benchmark as a figure and a
table.

The daily band assumes the fills' errors are independent between records: the
SD of a daily mean is sqrt(Σ fsd²) / n over the day's filled records
(measured records add no fill error).  Errors of neighbouring fills are in
fact correlated, so the band is a lower bound.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.variables import (
    MissingVariableError,
    can_convert,
    canonical_units,
    convert_values,
    display_units,
)
from uflux_xr.report import figures
from uflux_xr.report.html import Page

log = logging.getLogger(__name__)


def _one_site(ds: xr.Dataset, site) -> tuple[xr.Dataset, str]:
    if "site" not in ds.dims:
        return ds, str(ds.attrs.get("site", "site"))
    names = [str(s) for s in ds["site"].values]
    if site is None:
        if len(names) > 1:
            log.info("gap-fill report of the first of %d sites (%s); pass site= for another", len(names), names[0])
        return ds.isel(site=0), names[0]
    if str(site) not in names:
        raise MissingVariableError(f"site {site!r} is not in the dataset; it has {names}")
    return ds.isel(site=names.index(str(site))), str(site)


def daily_with_uncertainty(
    time: pd.DatetimeIndex, filled: np.ndarray, measured: np.ndarray, fsd: np.ndarray | None
) -> pd.DataFrame:
    """Daily mean of a filled record and the SD of that mean from the fills' ``fsd`` (module docstring).

    Returns
    -------
    pandas.DataFrame
        Indexed by day: ``mean`` [units of the record], ``sd`` [same], ``filled_share`` [0-1].
    """
    gap = ~np.isfinite(measured) & np.isfinite(filled)
    frame = pd.DataFrame(
        {
            "value": filled,
            "var": np.where(gap, np.square(fsd) if fsd is not None else np.nan, 0.0),
            "gap": gap.astype(float),
        },
        index=time,
    )
    day = frame.index.floor("D")
    grouped = frame.groupby(day)
    n = grouped["value"].count()
    return pd.DataFrame(
        {
            "mean": grouped["value"].mean(),
            "sd": np.sqrt(grouped["var"].sum(min_count=1)) / n.where(n > 0),
            "filled_share": grouped["gap"].mean(),
        }
    )


def gapfill_report(
    ds: xr.Dataset,
    var: str,
    out: str | Path | None = None,
    *,
    site=None,
    benchmark: pd.DataFrame | None = None,
) -> Path:
    """Write the HTML report of a gap-filled variable (see the module docstring).

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`uflux_xr.site.gapfill.gapfill` (``<var>``, ``<var>_f``,
        ``<var>_fqc``, ``<var>_fmeth``, ``<var>_fsd``).
    var : str
        The filled variable, e.g. ``"NEE"``.
    out : str or path-like, optional
        Report file (default ``<site>_<var>_gapfill_report.html`` in the working directory).
    site : str, optional
        Site to show (default the first).
    benchmark : pandas.DataFrame, optional
        Table of :func:`uflux_xr.site.gapfill.artificial_gap_benchmark` for this variable.

    Returns
    -------
    pathlib.Path
        The report.
    """
    missing = [n for n in (var, f"{var}_f", f"{var}_fqc", f"{var}_fmeth") if n not in ds]
    if missing:
        raise MissingVariableError(
            f"{var}: the dataset lacks {missing}; fill it first with ux.gapfill(ds, {var!r}, method=...)"
        )
    one, name = _one_site(ds, site)
    time = pd.DatetimeIndex(one["time"].values)
    measured = one[var].values.astype(float)
    filled = one[f"{var}_f"].values.astype(float)
    method = one[f"{var}_fmeth"].values.astype(str)
    quality = one[f"{var}_fqc"].values.astype(float)
    fsd = one[f"{var}_fsd"].values.astype(float) if f"{var}_fsd" in one else None
    units = one[var].attrs.get("units", "")
    shown_units = display_units(var, units)

    gaps = ~np.isfinite(measured)
    page = Page(f"uflux-xr gap-fill report: {name} {var}")
    page.text(
        f"{name}, {var} [{shown_units}], {time[0]:%Y-%m-%d} to {time[-1]:%Y-%m-%d}: {len(time):,} records, "
        f"{int(gaps.sum()):,} gaps ({100 * gaps.mean():.1f} %), {int((gaps & np.isfinite(filled)).sum()):,} filled, "
        f"{int((gaps & ~np.isfinite(filled)).sum()):,} left unfilled."
    )
    flags = np.array([f"quality {q:.0f}" if np.isfinite(q) else "unfilled" for q in quality], dtype=object)
    counts = pd.crosstab(pd.Series(method[gaps], name="method"), pd.Series(flags[gaps], name="flag"))
    counts.columns.name = None  # the header row names the flags; no second row of index names
    page.section("Fills per method and quality flag")
    page.table(counts.reset_index())
    page.section("The record")
    page.figure(
        figures.fill_timeseries_figure(time, filled, measured, method, flags, var, shown_units), f"{var} time series"
    )
    page.section("Fingerprint")
    page.figure(figures.fingerprint_figure(time, measured, filled, var, shown_units), f"{var} fingerprint")

    page.section("Daily values")
    daily = daily_with_uncertainty(time, filled, measured, fsd)
    mean, sd, label = daily["mean"].to_numpy(), daily["sd"].to_numpy(), f"{var} daily mean [{shown_units}]"
    known = canonical_units(units)
    if known is not None and can_convert(known, "g m-2 d-1"):
        mean, sd = (convert_values(a, known, "g m-2 d-1") for a in (mean, sd))
        label = f"{var} daily sum [g C m-2 d-1]"
    page.figure(
        figures.daily_sums_figure(pd.DatetimeIndex(daily.index), mean, sd if fsd is not None else None, label),
        f"{var} daily values",
    )
    page.text(
        "The band is ± the SD of the daily value from the fills' uncertainty (<VAR>_fsd), assuming independent "
        "errors between records: a lower bound, since neighbouring fills share their errors.",
        note=True,
    )
    page.section("Artificial-gap benchmark")
    if benchmark is None or benchmark.empty:
        page.text(
            "Not run: pass benchmark=ux.artificial_gap_benchmark(ds, var, ...) (or uflux-xr gapfill --report "
            "--benchmark-gap-days ...) to score the methods on gaps cut into the measured record.",
            note=True,
        )
    else:
        page.figure(figures.benchmark_figure(benchmark, var), f"{var} artificial-gap benchmark")
        page.table(benchmark.drop(columns=[c for c in ("variable",) if c in benchmark]))
    path = page.write(Path(out) if out is not None else Path(f"{name}_{var}_gapfill_report.html"))
    log.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path
