"""Product domains: the grid (CRS, extent, resolution), the period and its time step.

A :class:`Domain` says where and when a product is made, independently of the
data it is made from.  It gives the cell-centre coordinates and the time axis;
the lazy demo world (:mod:`uflux_xr.sources.demo.lazy`) and the dry-run planner
(:mod:`uflux_xr.workflow.plan`) both work from it, so a configuration's grid can be
exercised and costed without its inputs.

Time steps (labels follow the data contracts: the middle of each period):

* ``daily``    — every day, labelled at 12:00;
* ``monthly``  — calendar months, labelled at the middle of the month;
* ``biannual`` — the winter (October–March) and summer (April–September)
  half-years, labelled at their middle; a winter belongs to the year in
  which it ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

STEPS = ("daily", "monthly", "biannual")
#: Mean length of a step [days].
STEP_DAYS = {"daily": 1.0, "monthly": 365.25 / 12, "biannual": 365.25 / 2}
GEOGRAPHIC_CRS = "EPSG:4326"


@dataclass(frozen=True)
class Domain:
    """A product grid and period.

    Parameters
    ----------
    crs : str
        ``EPSG:4326`` for a lat/lon grid, otherwise a projected CRS (``EPSG:27700``).
    x_range, y_range : tuple of float
        Outer edges of the grid: longitude / latitude [degrees] for EPSG:4326,
        easting / northing [m] for projected grids.
    resolution : float
        Cell size [degrees or m].
    start, end : str
        First and last day of the period (inclusive), ISO dates.
    step : {"daily", "monthly", "biannual"}
        Time step of the product.
    """

    crs: str = GEOGRAPHIC_CRS
    x_range: tuple[float, float] = (-10.0, 40.0)
    y_range: tuple[float, float] = (35.0, 70.0)
    resolution: float = 0.5
    start: str = "2020-01-01"
    end: str = "2020-12-31"
    step: str = "daily"

    def __post_init__(self):
        if self.step not in STEPS:
            raise ValueError(f"step must be one of {STEPS}, got {self.step!r}")
        if self.resolution <= 0:
            raise ValueError(f"resolution must be positive, got {self.resolution}")
        for name, (lo, hi) in (("x_range", self.x_range), ("y_range", self.y_range)):
            if hi - lo < 2 * self.resolution:
                raise ValueError(f"{name} {lo}..{hi} holds fewer than 2 cells of {self.resolution}")

    @property
    def geographic(self) -> bool:
        """True for a lat/lon grid."""
        return self.crs.upper() in (GEOGRAPHIC_CRS, "EPSG:4326", "WGS84")

    @property
    def dims(self) -> tuple[str, str]:
        """Horizontal dims, (y, x) order: ("lat", "lon") or ("y", "x")."""
        return ("lat", "lon") if self.geographic else ("y", "x")

    @property
    def units(self) -> str:
        """Units of the resolution and the ranges: "degrees" or "m"."""
        return "degrees" if self.geographic else "m"

    def x(self) -> np.ndarray:
        """Cell-centre x coordinates (longitude [degrees east] or easting [m]), ascending."""
        return _centres(self.x_range, self.resolution)

    def y(self) -> np.ndarray:
        """Cell-centre y coordinates (latitude [degrees north] or northing [m]), ascending."""
        return _centres(self.y_range, self.resolution)

    def time(self) -> pd.DatetimeIndex:
        """Time labels of the period at the domain's step (middle of each period)."""
        return time_axis(self.start, self.end, self.step)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(time, y, x) sizes."""
        return len(self.time()), len(self.y()), len(self.x())

    def describe(self) -> str:
        """One line: grid size, resolution, CRS, period and step."""
        nt, ny, nx = self.shape
        res = f"{self.resolution:g}°" if self.geographic else f"{self.resolution:g} m"
        return f"{nx} x {ny} cells at {res} ({self.crs}), {nt} {self.step} steps {self.start}..{self.end}"


def time_step(time: pd.DatetimeIndex) -> pd.Timedelta:
    """The regular time step of a series (median difference of its timestamps).

    Raises
    ------
    ValueError
        With fewer than two time steps.
    """
    if len(time) < 2:
        raise ValueError("need at least two time steps to infer the time step")
    return pd.Timedelta(np.median(np.diff(pd.DatetimeIndex(time).values)))


def month_middles(starts: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The middle of each month that starts at ``starts`` (the label of monthly means)."""
    starts = pd.DatetimeIndex(starts)
    return starts + (starts + pd.offsets.MonthBegin(1) - starts) / 2


def _centres(edges: tuple[float, float], resolution: float) -> np.ndarray:
    lo, hi = edges
    n = int(round((hi - lo) / resolution))
    # Built from integers so 12,500 cells of 100 m land exactly on the cell centres.
    return lo + (np.arange(n) + 0.5) * resolution


def time_axis(start: str, end: str, step: str) -> pd.DatetimeIndex:
    """Period labels between ``start`` and ``end`` (inclusive days) at ``step``."""
    first, last = pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1)
    if step == "daily":
        days = pd.date_range(first, last - pd.Timedelta(days=1), freq="D") + pd.Timedelta(hours=12)
        return days.as_unit("ns")
    if step == "monthly":
        edges = pd.date_range(first.to_period("M").start_time, last + pd.offsets.MonthBegin(1), freq="MS")
    else:  # biannual: half-years starting 1 April (summer) and 1 October (winter)
        lo = pd.Timestamp(year=first.year - 1, month=10, day=1)
        edges = pd.date_range(lo, last + pd.DateOffset(months=6), freq="6MS")
        edges = edges[edges.month.isin([4, 10])]
    mids = edges[:-1] + (edges[1:] - edges[:-1]) / 2
    return pd.DatetimeIndex(mids[(mids >= first) & (mids < last)]).as_unit("ns")


#: CF attributes of the horizontal coordinates, one place for cubes, worlds and products.
COORDINATE_ATTRS = {
    "lat": {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y"},
    "lon": {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X"},
    "y": {"standard_name": "projection_y_coordinate", "units": "m", "axis": "Y"},
    "x": {"standard_name": "projection_x_coordinate", "units": "m", "axis": "X"},
}


class GridError(ValueError):
    """A dataset's grid is not one the toolkit reads, or not the configured domain's."""


def spatial_dims(ds) -> tuple[str, str]:
    """The horizontal dims of a cube or product: ("lat", "lon") for geographic grids, ("y", "x") for projected ones.

    Raises
    ------
    GridError
        When neither pair is present.
    """
    if "lat" in ds.dims and "lon" in ds.dims:
        return "lat", "lon"
    if "y" in ds.dims and "x" in ds.dims:
        return "y", "x"
    raise GridError(f"the cube has dims {tuple(ds.dims)}; expected (time, lat, lon) or (time, y, x)")


def check_grid(cube, domain: Domain, path: str) -> None:
    """Refuse a cube whose grid is not the configured domain's (dims, CRS, resolution).

    Raises
    ------
    GridError
        Naming the file and what differs.
    """
    ydim, xdim = spatial_dims(cube)
    if (ydim, xdim) != domain.dims:
        raise GridError(f"{path}: the cube has ({ydim}, {xdim}) dims; the {domain.crs} domain expects {domain.dims}")
    if not domain.geographic:
        from pyproj import CRS

        crs = cube.rio.crs
        if crs is None or CRS.from_user_input(crs) != CRS.from_user_input(domain.crs):
            raise GridError(f"{path}: the cube's CRS ({crs}) is not the domain's {domain.crs}")
    for dim in (ydim, xdim):
        step = float(np.median(np.abs(np.diff(cube[dim].values)))) if cube.sizes[dim] > 1 else domain.resolution
        if not np.isclose(step, domain.resolution, rtol=1e-3):
            raise GridError(
                f"{path}: {dim} spacing {step:g} differs from the domain resolution "
                f"{domain.resolution:g} {domain.units}"
            )
