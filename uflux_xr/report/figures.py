"""The report's figures: plain numpy/xarray data in, a matplotlib ``Figure`` out.

Figures are made with :class:`matplotlib.figure.Figure` directly, not pyplot:
no global figure state, no GUI backend, nothing to close, and safe to call
from any thread.  Maps draw the land outline from the product's own valid
cells (no coastline download); axes are longitude/latitude [degrees] on
geographic grids and easting/northing [km] in the grid's CRS on projected ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, TwoSlopeNorm
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.patches import Patch

#: Panel size [inches] of one map.
MAP_INCHES = (5.2, 3.6)


def _map_axes_labels(ax, geographic: bool, crs_name: str) -> None:
    if geographic:
        ax.set_xlabel("longitude [°E]")
        ax.set_ylabel("latitude [°N]")
    else:
        ax.set_xlabel(f"easting [km] ({crs_name})")
        ax.set_ylabel("northing [km]")


def _grid_axes(field: xr.DataArray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(x, y) coordinates to plot and whether the grid is geographic; projected metres become km."""
    ydim, xdim = field.dims[-2:]
    geographic = ydim == "lat"
    scale = 1.0 if geographic else 1e-3
    return field[xdim].values * scale, field[ydim].values * scale, geographic


def map_figure(
    panels: list[tuple[xr.DataArray, str, str]],
    *,
    towers: tuple[np.ndarray, np.ndarray] | None = None,
    crs_name: str = "",
    diverging: bool = False,
) -> Figure:
    """Maps side by side, each with its colour bar, and the tower locations.

    Parameters
    ----------
    panels : list of (DataArray, title, units)
        2-D fields on (lat, lon) or (y, x) [units as given].
    towers : (x, y) arrays, optional
        Tower positions in the grid's coordinates [degrees or m].
    crs_name : str
        Name of a projected grid's CRS, for the axis labels.
    diverging : bool
        Colour scale centred on 0 (differences).
    """
    fig = Figure(figsize=(MAP_INCHES[0] * len(panels), MAP_INCHES[1]), layout="constrained")
    for i, (field, title, units) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        x, y, geographic = _grid_axes(field)
        values = np.asarray(field.values, dtype=float)
        finite = values[np.isfinite(values)]
        kwargs: dict = {"cmap": "viridis", "shading": "auto"}
        if diverging and finite.size:
            limit = float(np.nanpercentile(np.abs(finite), 98)) or 1.0
            kwargs.update(cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -limit, limit))
        mesh = ax.pcolormesh(x, y, values, **kwargs)
        fig.colorbar(mesh, ax=ax, label=units, shrink=0.9)
        _finish_map(ax, y, geographic, towers, title, crs_name)
    return fig


def _finish_map(ax, y: np.ndarray, geographic: bool, towers, title: str, crs_name: str) -> None:
    """Towers, title, aspect and axis labels of one map panel."""
    if towers is not None:
        scale = 1.0 if geographic else 1e-3
        ax.plot(towers[0] * scale, towers[1] * scale, "k^", ms=3.5, mfc="none", mew=0.8, label="towers")
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal" if not geographic else 1 / max(np.cos(np.deg2rad(np.nanmean(y))), 0.2))
    _map_axes_labels(ax, geographic, crs_name)


def driver_map_figure(
    panels: list[tuple[xr.DataArray, list[str], str]],
    *,
    towers: tuple[np.ndarray, np.ndarray] | None = None,
    crs_name: str = "",
) -> Figure:
    """Categorical maps of the leading driver, side by side, one legend each.

    Parameters
    ----------
    panels : list of (DataArray, names, title)
        2-D integer fields indexing ``names`` (-1: nothing explained, left blank).
    towers, crs_name
        As :func:`map_figure`.
    """
    fig = Figure(figsize=(MAP_INCHES[0] * len(panels), MAP_INCHES[1]), layout="constrained")
    for i, (field, names, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        x, y, geographic = _grid_axes(field)
        values = np.asarray(field.values, dtype=float)
        values[values < 0] = np.nan
        colours = [f"C{k % 10}" for k in range(len(names))]
        norm = BoundaryNorm(np.arange(len(names) + 1) - 0.5, len(names))
        ax.pcolormesh(x, y, values, cmap=ListedColormap(colours), norm=norm, shading="auto")
        shown = sorted({int(v) for v in values[np.isfinite(values)]})
        ax.legend(
            handles=[Patch(color=colours[k], label=names[k]) for k in shown],
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            frameon=False,
        )
        _finish_map(ax, y, geographic, towers, title, crs_name)
    return fig


def seasonal_cycle_figure(series: xr.DataArray, title: str, units: str) -> Figure:
    """Ensemble mean and member range of an area-weighted mean time series (member, time)."""
    fig = Figure(figsize=(7.5, 3.2), layout="constrained")
    ax = fig.add_subplot()
    t = pd.DatetimeIndex(series["time"].values)
    values = np.asarray(series.transpose("member", "time").values, dtype=float)
    # steps without a value in any member (no predicted cell) stay gaps, without numpy's all-NaN warnings
    ok = np.isfinite(values).any(axis=0)
    low, high, mean = (np.full(values.shape[1], np.nan) for _ in range(3))
    low[ok], high[ok] = np.nanmin(values[:, ok], 0), np.nanmax(values[:, ok], 0)
    mean[ok] = np.nanmean(values[:, ok], 0)
    ax.fill_between(t, low, high, color="tab:blue", alpha=0.25, label="member range")
    ax.plot(t, mean, color="tab:blue", lw=1.2, label="ensemble mean")
    ax.set_ylabel(units)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return fig


def density_scatter_figure(panels: list[tuple[np.ndarray, np.ndarray, str, str, dict]]) -> Figure:
    """Observed against predicted as hexbin densities with the 1:1 line and the metrics, side by side.

    ``panels`` holds (observed, predicted, title, units, metrics) per flux.
    """
    fig = Figure(figsize=(3.6 * len(panels), 3.4), layout="constrained")
    for i, (obs, pred, title, units, metrics) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ok = np.isfinite(obs) & np.isfinite(pred)
        obs, pred = obs[ok], pred[ok]
        if obs.size:
            lo, hi = np.percentile(np.concatenate([obs, pred]), [0.1, 99.9])
            ax.hexbin(obs, pred, gridsize=50, extent=(lo, hi, lo, hi), mincnt=1, norm=LogNorm(), cmap="magma_r")
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        text = [f"n {int(metrics['n']):,}"] if "n" in metrics else []
        text += [f"{k} {metrics[k]:.3g}" for k in ("r2", "rmse", "bias", "slope") if k in metrics]
        ax.text(0.03, 0.97, "\n".join(text), transform=ax.transAxes, va="top", fontsize=8)
        ax.set_xlabel(f"observed [{units}]")
        ax.set_ylabel(f"predicted, held out [{units}]")
        ax.set_title(title, fontsize=10)
    return fig


def tower_skill_figure(
    land: xr.DataArray,
    towers: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    metric: str = "nse",
    crs_name: str = "",
) -> Figure:
    """Towers coloured by their held-out skill over the land outline, one panel per flux.

    ``towers`` maps a flux to (x, y, skill) arrays; skill is clipped to [-1, 1].
    """
    fig = Figure(figsize=(4.2 * len(towers), 3.4), layout="constrained")
    x, y, geographic = _grid_axes(land)
    scale = 1.0 if geographic else 1e-3
    for i, (flux, (tx, ty, skill)) in enumerate(towers.items()):
        ax = fig.add_subplot(1, len(towers), i + 1)
        ax.pcolormesh(x, y, np.where(land.values, 1.0, np.nan), cmap="Greys", vmin=0, vmax=4, shading="auto")
        sc = ax.scatter(tx * scale, ty * scale, c=np.clip(skill, -1, 1), cmap="RdYlGn", vmin=-1, vmax=1, s=18)
        ax.set_title(f"{flux}: held-out {metric.upper()} per tower", fontsize=9)
        ax.set_aspect("equal" if not geographic else 1 / max(np.cos(np.deg2rad(np.nanmean(y))), 0.2))
        _map_axes_labels(ax, geographic, crs_name)
        if i == len(towers) - 1:
            fig.colorbar(sc, ax=ax, label=metric.upper())
    return fig


def _date_axis(ax) -> None:
    """Dates that do not overlap: as many ticks as fit, each labelled only with what changed."""
    locator = AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def fill_timeseries_figure(
    time: pd.DatetimeIndex,
    filled: np.ndarray,
    measured: np.ndarray,
    method: np.ndarray,
    quality: np.ndarray,
    var: str,
    units: str,
) -> Figure:
    """The filled record: measured values in grey, fills coloured by method (top) and quality (bottom)."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    gaps = ~np.isfinite(measured) & np.isfinite(filled)
    for row, (labels, title) in enumerate(((method, "fills by method"), (quality, "fills by quality flag"))):
        ax = fig.add_subplot(2, 1, row + 1)
        ax.plot(time, measured, ",", color="0.6", label="measured", rasterized=True)
        values = pd.Series(labels[gaps]).astype(str)
        for i, name in enumerate(sorted(values.unique())):
            pick = np.flatnonzero(gaps)[(values == name).to_numpy()]
            ax.plot(time[pick], filled[pick], ".", ms=1.2, color=f"C{i}", label=name, rasterized=True)
        ax.set_ylabel(f"{var} [{units}]")
        ax.set_title(f"{var}: {title}", fontsize=10)
        ax.legend(fontsize=7, markerscale=6, loc="upper right", ncol=4)
        _date_axis(ax)
    return fig


def fingerprint_figure(
    time: pd.DatetimeIndex, measured: np.ndarray, filled: np.ndarray, var: str, units: str
) -> Figure:
    """Day of year × time of day of the measured and of the filled record (one year after another)."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    step = (time[1] - time[0]) if len(time) > 1 else pd.Timedelta("30min")
    per_day = max(1, round(pd.Timedelta("1D") / step))
    frame = pd.DataFrame({"measured": measured, "filled": filled}, index=time)
    slot = ((time - time.normalize()) / step).astype(int)
    day = np.asarray((time.normalize() - time[0].normalize()).days)
    n_days = int(day.max()) + 1
    limits = np.nanpercentile(filled, [1, 99]) if np.isfinite(filled).any() else (0.0, 1.0)
    for i, name in enumerate(("measured", "filled")):
        grid = np.full((per_day, n_days), np.nan)
        grid[slot, day] = frame[name].to_numpy()
        ax = fig.add_subplot(1, 2, i + 1)
        mesh = ax.pcolormesh(
            pd.date_range(time[0].normalize(), periods=n_days, freq="D"),
            np.arange(per_day) * step / pd.Timedelta("1h"),
            grid,
            vmin=limits[0],
            vmax=limits[1],
            cmap="viridis",
            shading="auto",
            rasterized=True,
        )
        ax.set_ylabel("time of day [h]")
        ax.set_title(f"{var} {name}", fontsize=10)
        fig.colorbar(mesh, ax=ax, label=f"{var} [{units}]")
        _date_axis(ax)
    return fig


def daily_sums_figure(days: pd.DatetimeIndex, mean: np.ndarray, sd: np.ndarray | None, label: str) -> Figure:
    """Daily means of the filled record with the ±1 SD band of the fills' uncertainty."""
    fig = Figure(figsize=(10, 3), layout="constrained")
    ax = fig.add_subplot()
    if sd is not None:
        ax.fill_between(days, mean - sd, mean + sd, color="tab:orange", alpha=0.35, label="± fsd of the daily mean")
    ax.plot(days, mean, lw=0.8, color="tab:blue", label="daily mean")
    ax.set_ylabel(label)
    ax.legend(fontsize=8, loc="upper right")
    _date_axis(ax)
    return fig


def benchmark_figure(table: pd.DataFrame, var: str) -> Figure:
    """RMSE and R² of each method against the gap length of an artificial-gap benchmark."""
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    for i, metric in enumerate(("rmse", "r2")):
        ax = fig.add_subplot(1, 2, i + 1)
        for method, rows in table.groupby("method", sort=False):
            rows = rows.sort_values("gap_days")
            ax.plot(rows["gap_days"], rows[metric], "o-", label=str(method))
        ax.set_xscale("log")
        ax.set_xlabel("gap length [days]")
        ax.set_ylabel(metric.upper())
        ax.set_title(f"{var}: {metric.upper()} on artificial gaps", fontsize=10)
        ax.legend(fontsize=8)
    return fig
