"""``report.html`` of an upscaling run: what the product looks like, how well it was validated, how it was made.

:func:`run_report` reads only what :func:`uflux_xr.workflow.pipeline.run` wrote into
the run directory (the product, ``totals.csv``, ``validation/``,
``inputs/sites.nc``, ``product_vs_truth.csv``, ``run.json``), so a report can
be remade at any time with ``uflux-xr report RUN_DIR``.  Sections:

- per flux: maps of the ensemble mean and of the ensemble SD of the period
  mean, with the towers; the area-weighted mean seasonal cycle with the
  member range; the totals per member and for the ensemble;
- validation: held-out observed against predicted (density) with the pooled
  metrics, skill per IGBP class, towers coloured by held-out NSE;
- the product against the truth (demo worlds);
- uncertainty: DI/AOA and per-cell error maps where the product has them;
- what drives the maps: leading-driver maps and the importance table, where the run explained them;
- provenance: configuration, versions, models, timings, the dry-run plan
  against what the run did.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.domain import spatial_dims
from uflux_xr.core.variables import display_units
from uflux_xr.grid.ensemble import cell_area, grid_crs
from uflux_xr.report import figures
from uflux_xr.report.html import Page

log = logging.getLogger(__name__)

#: Product variables in the order the report shows them.
FLUX_ORDER = ("GPP", "RECO", "NEE", "NEE_RECO_GPP", "LE", "ET", "H")
#: Variables that, when a product has them, go to the uncertainty section (DI, AOA, <FLUX>_error).
UNCERTAINTY_SUFFIXES = ("DI", "AOA", "_error")


def _open_product(run_dir: Path) -> xr.Dataset:
    for name in ("product.zarr", "product.nc"):
        path = run_dir / name
        if path.exists():
            return xr.open_zarr(path) if name.endswith(".zarr") else xr.open_dataset(path, chunks={})
    raise FileNotFoundError(f"{run_dir}: no product.zarr or product.nc; is this the output directory of a run?")


def _fluxes(product: xr.Dataset) -> list[str]:
    names = [str(n) for n, v in product.data_vars.items() if {"member", "time"} <= set(v.dims)]
    return sorted(names, key=lambda n: (FLUX_ORDER.index(n) if n in FLUX_ORDER else len(FLUX_ORDER), n))


def _default_period(time_index: pd.DatetimeIndex) -> str:
    """The first calendar year of the product."""
    return str(time_index[0].year)


def _crs_name(product: xr.Dataset) -> str:
    ydim, _ = spatial_dims(product)
    if ydim == "lat":
        return "WGS 84"
    from pyproj import CRS

    return CRS.from_user_input(grid_crs(product)).name


def _tower_xy(product: xr.Dataset, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tower positions in the product's coordinates ([degrees] or [m] in its CRS)."""
    ydim, _ = spatial_dims(product)
    if ydim == "lat":
        return np.asarray(lon, float), np.asarray(lat, float)
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", grid_crs(product), always_xy=True).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


def _period_summaries(product: xr.Dataset, fluxes: list[str], period: str) -> dict[str, dict[str, xr.DataArray]]:
    """Per flux, in one pass over the product: the period mean per member (lat, lon) and the
    area-weighted spatial mean per member and time step (the seasonal cycle)."""
    ydim, xdim = spatial_dims(product)
    area = cell_area(product)
    chosen = product.sel(time=period)
    lazy = {}
    for flux in fluxes:
        var = product[flux]
        lazy[flux] = {
            "period_mean": chosen[flux].mean("time"),
            "amount": (var.fillna(0) * area).sum((ydim, xdim)),
            "area": area.where(var.notnull()).sum((ydim, xdim)),
        }
    (computed,) = dask.compute(lazy)
    for parts in computed.values():
        # divided here, not in the graph: a step without any predicted cell is NaN, not a 0/0 warning
        amount, covered = parts.pop("amount"), parts.pop("area")
        parts["cycle"] = amount / covered.where(covered > 0)
    return computed


def _count(n: int, noun: str) -> str:
    """``1 ensemble member``, ``4 ensemble members``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _units(product, name: str) -> str:
    """The units of a product variable as a reader expects them (with the element of a carbon flux)."""
    return display_units(name, product[name].attrs.get("units", ""))


#: Words for the columns of totals.csv in the report ({kind}: "total per year" or "area-weighted mean").
_TOTALS_HEADERS = {
    "member": "member",
    "total": "{kind}",
    "std": "SD over the members",
    "count": "members",
    "total_inside_aoa": "{kind} inside the area of applicability",
    "total_outside_aoa": "{kind} outside the area of applicability",
    "area_share_inside_aoa": "share of the area inside the area of applicability",
}


#: Words for the metric columns of validation/metrics.csv and product_vs_truth.csv.
_METRIC_HEADERS = {
    "target": "flux",
    "variable": "flux",
    "n": "values",
    "r": "r",
    "r2": "R²",
    "nse": "NSE",
    "rmse": "RMSE",
    "mae": "MAE",
    "bias": "bias",
    "slope": "slope",
    "ioa": "index of agreement",
}


def _metrics_table(page: Page, table: pd.DataFrame, units: dict) -> None:
    """Metrics per flux with words for headers and the units of RMSE, MAE and bias beside them."""
    flux = "target" if "target" in table else "variable"
    shown = table.assign(units=table[flux].map(lambda f: units.get(f, "")))
    shown = shown[[flux, *[c for c in shown.columns if c not in (flux, "units")], "units"]]
    page.table(shown.rename(columns={**_METRIC_HEADERS, "units": "units of RMSE, MAE and bias"}))


def _totals_table(page: Page, flux: str, rows: pd.DataFrame) -> None:
    """One flux's rows of totals.csv with words for headers and its units with the element."""
    units = rows["units"].iloc[0]
    kind = "total per year" if units in ("Pg yr-1", "km3 yr-1") else "area-weighted mean"
    shown = rows.drop(columns=["variable", "units"]).dropna(axis="columns", how="all")
    amounts = [c for c in ("total", "std", "total_inside_aoa", "total_outside_aoa") if c in shown]
    largest = float(shown[amounts].abs().max().max()) if amounts else 0.0
    if units == "Pg yr-1" and 0 < largest < 0.01:  # a small domain: Tg or Gg, not 0.0006365 Pg
        factor, units = (1e3, "Tg yr-1") if largest >= 1e-5 else (1e6, "Gg yr-1")
        shown[amounts] = shown[amounts] * factor
    page.text(f"{flux} {kind} over the whole product [{display_units(flux, units)}]:")
    page.table(shown.rename(columns={k: v.format(kind=kind) for k, v in _TOTALS_HEADERS.items()}), "{:.3g}")


def _flux_sections(page: Page, product, fluxes, summaries, totals, towers, crs_name, period) -> None:
    for flux in fluxes:
        units = _units(product, flux)
        page.section(f"{flux}: {product[flux].attrs.get('long_name', flux)}")
        mean_map = summaries[flux]["period_mean"]
        panels = [(mean_map.mean("member"), f"{flux} ensemble mean, {period}", units)]
        if mean_map.sizes["member"] > 1:
            panels.append((mean_map.std("member", ddof=1), f"{flux} ensemble SD of the {period} mean", units))
        page.figure(
            figures.map_figure(panels, towers=towers, crs_name=crs_name),
            f"{flux} maps of the ensemble mean and SD [{units}]",
        )
        page.figure(
            figures.seasonal_cycle_figure(
                summaries[flux]["cycle"], f"{flux}: area-weighted mean over the land cells", units
            ),
            f"{flux} seasonal cycle [{units}]",
        )
        if totals is not None:
            rows = totals[totals["variable"] == flux]
            if not rows.empty:
                _totals_table(page, flux, rows)


def _validation_section(page: Page, run_dir: Path, product, towers_ds, crs_name, units: dict) -> None:
    page.section("Validation against held-out towers")
    folder = run_dir / "validation"
    if not (folder / "metrics.csv").exists():
        page.text("This run was not validated (validation.cv is off).", note=True)
        return
    metrics = pd.read_csv(folder / "metrics.csv")
    page.text(
        f"{metrics['cv'].iloc[0]} cross-validation of {metrics['model'].iloc[0]}: every tower's rows are predicted "
        "by a model that never saw that tower; metrics pooled over all held-out rows."
    )
    _metrics_table(page, metrics.drop(columns=[c for c in ("model", "cv") if c in metrics]), units)
    predictions = folder / "predictions.csv"
    if predictions.exists():
        held = pd.read_csv(predictions)
        by_target = metrics.set_index("target")
        panels = [
            (
                rows["obs"].to_numpy(float),
                rows["pred"].to_numpy(float),
                f"{flux}: held-out towers",
                units.get(flux, ""),
                by_target.loc[flux].to_dict() if flux in by_target.index else {},
            )
            for flux, rows in held.groupby("target", sort=False)
        ]
        page.figure(
            figures.density_scatter_figure(panels),
            "observed against predicted at held-out towers: " + ", ".join(f"{p[2]} [{p[3]}]" for p in panels),
        )
    else:
        page.text("No held-out predictions were saved (validation/predictions.csv).", note=True)
    if (folder / "by_igbp.csv").exists():
        by_igbp = pd.read_csv(folder / "by_igbp.csv")
        page.section("Skill per IGBP class (R², rows in brackets)", level=3)
        wide = by_igbp.pivot_table(index="igbp", columns="target", values="r2", sort=False)
        counts = by_igbp.pivot_table(index="igbp", columns="target", values="n", sort=False)
        shown = wide.round(3).astype(str) + " (" + counts.astype("Int64").astype(str) + ")"
        shown.columns.name = None
        page.table(shown.reset_index())
    if (folder / "by_site.csv").exists() and towers_ds is not None:
        by_site = pd.read_csv(folder / "by_site.csv")
        first = _fluxes(product)[0]
        land = product[first].isel(member=0, time=0).notnull().compute()
        lat = pd.Series(towers_ds["lat"].values, index=towers_ds["site"].values.astype(str))
        lon = pd.Series(towers_ds["lon"].values, index=towers_ds["site"].values.astype(str))
        skill = {}
        for flux, rows in by_site.groupby("target", sort=False):
            sites = rows["site"].astype(str)
            known = sites.isin(lat.index).to_numpy()
            x, y = _tower_xy(product, lat[sites[known]].to_numpy(), lon[sites[known]].to_numpy())
            skill[str(flux)] = (x, y, rows["nse"].to_numpy(float)[known])
        page.figure(figures.tower_skill_figure(land, skill, crs_name=crs_name), "towers coloured by held-out NSE")


def _truth_section(page: Page, run_dir: Path, product, fluxes, summaries, period, towers, crs_name) -> None:
    page.section("Product against the truth")
    scores = run_dir / "product_vs_truth.csv"
    if not scores.exists():
        page.text("This run has no truth to compare with (only demo worlds have one).", note=True)
        return
    page.text("Ensemble mean against the demo world's true fluxes, every land cell and time step:")
    _metrics_table(page, pd.read_csv(scores), {f: _units(product, f) for f in product.data_vars})
    truth_path = run_dir / "inputs" / "truth.zarr"
    if not truth_path.exists():
        return
    truth = xr.open_zarr(truth_path, consolidated=False).sel(time=period)
    diffs = {f: summaries[f]["period_mean"].mean("member") - truth[f].mean("time") for f in fluxes if f in truth}
    (diffs,) = dask.compute(diffs)
    panels = [(d, f"{f}: product - truth, {period}", _units(product, f)) for f, d in diffs.items()]
    for i in range(0, len(panels), 3):
        page.figure(
            figures.map_figure(panels[i : i + 3], towers=towers, crs_name=crs_name, diverging=True),
            "maps of the product minus the truth",
        )


_LAYER_ORDER = ("DI", "AOA", "error")
_LAYER_WORDS = {
    "DI": "dissimilarity index",
    "AOA": "share of time inside the area of applicability",
    "error": "expected error of a prediction",
}


def _layer(name: str) -> str:
    return name.rsplit("_", 1)[-1] if "_" in name else name


def _uncertainty_section(page: Page, product, period, towers, crs_name) -> None:
    page.section("Uncertainty: area of applicability and per-cell error")
    names = [n for n in product.data_vars if n in ("DI", "AOA") or n.endswith(UNCERTAINTY_SUFFIXES)]
    if not names:
        page.text(
            "This product has no dissimilarity index (DI), area of applicability (AOA) or per-cell error variables; "
            "their maps appear here when it has them. The ensemble SD maps above show the spread of the members only.",
            note=True,
        )
        return
    # flux by flux, as the flux sections run: DI, then the AOA, then the expected error
    order = {flux: i for i, flux in enumerate(_fluxes(product))}
    names.sort(key=lambda n: (order.get(n.split("_")[0], len(order)), _LAYER_ORDER.index(_layer(n))))
    panels = []
    for name in names:
        var = product[name]
        field = var.sel(time=period).mean("time") if "time" in var.dims else var
        field = field.mean("member") if "member" in field.dims else field
        flux = name.split("_")[0] if "_" in name else ""
        title = f"{flux} {_LAYER_WORDS[_layer(name)]}".strip() + f", {period} mean"
        units = {"DI": "dimensionless", "AOA": "share of time steps [0-1]"}.get(_layer(name)) or _units(product, name)
        panels.append((field.compute(), title, units))
    for i in range(0, len(panels), 3):
        page.figure(
            figures.map_figure(panels[i : i + 3], towers=towers, crs_name=crs_name),
            "uncertainty maps: " + "; ".join(f"{title} [{units}]" for _, title, units in panels[i : i + 3]),
        )


def _explanation_section(page: Page, run_dir: Path, towers, crs_name) -> None:
    """Leading-driver maps and the importance table, where the run's ``explain`` section wrote them."""
    path = run_dir / "explanations" / "explanation.nc"
    if not path.exists():
        return
    page.section("What drives the maps")
    with xr.open_dataset(path) as maps:
        page.text(
            f"Additive terms of the ensemble-mean prediction over {maps.attrs.get('uflux_explain_period', '')}: "
            "the leading driver is the term with the largest mean absolute contribution in the cell. Methods: "
            f"{maps.attrs.get('uflux_explain_methods', '')}."
        )
        panels = [
            (maps[name].load(), maps[name].attrs["flag_meanings"].split(), str(name).replace("_", " "))
            for name in maps.data_vars
            if str(name).endswith("_leading_driver")
        ]
    for i in range(0, len(panels), 3):
        page.figure(figures.driver_map_figure(panels[i : i + 3], towers=towers, crs_name=crs_name), "leading drivers")
    importance = pd.read_csv(run_dir / "explanations" / "importance.csv")
    page.table(importance.dropna(subset=["rank"]).drop(columns=["rank"]))


def _provenance_section(page: Page, run_dir: Path, product) -> None:
    page.section("Provenance")
    record_path = run_dir / "run.json"
    if not record_path.exists():
        page.text("run.json is missing: the run was made by an older version or stopped early.", note=True)
        return
    record = json.loads(record_path.read_text())
    page.text(f"Run {record.get('name', '')} started {record.get('started', '?')}, uflux-xr {record.get('version')}.")
    if record.get("notes"):
        for note in record["notes"]:
            page.text(note)
    page.section("Timings [s]", level=3)
    page.table(pd.DataFrame(list(record.get("timings", {}).items()), columns=["step", "seconds"]), "{:.1f}")
    plan = record.get("plan_vs_actual")
    if plan:
        page.section("Dry-run plan against the run", level=3)
        page.table(pd.DataFrame(plan), "{:,.0f}")
    page.section("Models", level=3)
    members = pd.DataFrame(record.get("members", []))
    if not members.empty:
        members["params"] = members["params"].map(lambda p: json.dumps(p, sort_keys=True))
        members["predictors"] = members["predictors"].map(", ".join)
        page.table(members)
    page.section("Versions", level=3)
    page.table(pd.DataFrame(list(record.get("versions", {}).items()), columns=["package", "version"]))
    page.section("Configuration", level=3)
    page.pre(record.get("config_text", ""))
    page.section("Product attributes", level=3)
    page.table(pd.DataFrame([(k, str(v)) for k, v in product.attrs.items()], columns=["attribute", "value"]))


def run_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    period: str | None = None,
    product: xr.Dataset | None = None,
) -> Path:
    """Write the HTML report of an upscaling run (see the module docstring).

    Parameters
    ----------
    run_dir : str or path-like
        Output directory of :func:`uflux_xr.workflow.pipeline.run` (``uflux-xr run --out``).
    out : str or path-like, optional
        Report file (default ``run_dir/report.html``).
    period : str, optional
        Time selection for the maps, as ``product.sel(time=period)`` takes it:
        ``"2020"``, ``"2020-06"`` (default: the product's first calendar year).
    product : xarray.Dataset, optional
        The run's product, where it is not in ``run_dir`` (a run whose product is on object storage).

    Returns
    -------
    pathlib.Path
        The report, one self-contained HTML file.
    """
    t0 = time.perf_counter()
    if "://" in str(run_dir):
        raise ValueError(
            f"{run_dir}: the report reads a run folder on the local disk; a run on object storage writes its "
            "report.html itself (copy the folder down to remake it)"
        )
    run_dir = Path(run_dir)
    product = _open_product(run_dir) if product is None else product
    fluxes = _fluxes(product)
    if not fluxes:
        raise ValueError(f"{run_dir}: the product has no variable with member and time dims")
    period = period or _default_period(product.indexes["time"])
    try:
        steps = product.sel(time=period).sizes["time"]
    except KeyError:
        steps = 0
    if steps == 0:
        t = product.indexes["time"]
        raise ValueError(
            f"period {period!r} selects no time step of the product in {run_dir} ({t[0]:%Y-%m-%d} to {t[-1]:%Y-%m-%d})"
        )
    crs_name = _crs_name(product)
    sites_path = run_dir / "inputs" / "sites.nc"
    towers_ds = xr.open_dataset(sites_path) if sites_path.exists() else None
    towers = _tower_xy(product, towers_ds["lat"].values, towers_ds["lon"].values) if towers_ds is not None else None
    totals = pd.read_csv(run_dir / "totals.csv") if (run_dir / "totals.csv").exists() else None
    summaries = _period_summaries(product, fluxes, period)

    page = Page(f"uflux-xr run report: {product.attrs.get('title', run_dir.name)}")
    grid = " x ".join(str(product.sizes[d]) for d in spatial_dims(product))
    page.text(
        f"{len(fluxes)} variables ({', '.join(fluxes)}), {_count(product.sizes['member'], 'ensemble member')}, "
        f"{product.sizes['time']} time steps from {product.indexes['time'][0]:%Y-%m-%d} to "
        f"{product.indexes['time'][-1]:%Y-%m-%d}, grid {grid} "
        f"({crs_name}). Maps show the {period} mean; triangles are the towers."
    )
    _flux_sections(page, product, fluxes, summaries, totals, towers, crs_name, period)
    units = {f: _units(product, f) for f in fluxes}
    _validation_section(page, run_dir, product, towers_ds, crs_name, units)
    _truth_section(page, run_dir, product, fluxes, summaries, period, towers, crs_name)
    _uncertainty_section(page, product, period, towers, crs_name)
    _explanation_section(page, run_dir, towers, crs_name)
    _provenance_section(page, run_dir, product)
    path = page.write(Path(out) if out is not None else run_dir / "report.html")
    log.info("wrote %s (%.1f MB) in %.1f s", path, path.stat().st_size / 1e6, time.perf_counter() - t0)
    return path
