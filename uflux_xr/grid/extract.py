"""Tower-to-grid extraction: predictors at the tower cells joined to the tower
fluxes, giving the training table (one row per site and time step)."""

from __future__ import annotations

import logging

import dask
import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.domain import spatial_dims, time_step
from uflux_xr.core.plausibility import check_plausible
from uflux_xr.grid.features import resolve_features

log = logging.getLogger(__name__)


class ExtractionError(ValueError):
    """Sites and cube cannot be joined (no overlap, towers off the grid, empty predictors)."""


def tower_coordinates(cube: xr.Dataset, sites: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Tower positions in the cube's coordinates: (lat, lon) for geographic grids, or
    (y, x) projected with the cube's CRS (rioxarray) for projected grids."""
    ydim, _ = spatial_dims(cube)
    lat, lon = sites["lat"].values.astype(float), sites["lon"].values.astype(float)
    if ydim == "lat":
        return lat, lon
    crs = cube.rio.crs
    if crs is None:
        raise ExtractionError("the cube has (y, x) dims but no CRS; set one with cube.rio.write_crs(...)")
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    return np.asarray(y), np.asarray(x)


#: Cell size [degrees] assumed along a geographic axis of one cell (ERA5's native 0.25°),
#: the coarsest grid read; a one-cell projected axis has no such default.
SINGLE_CELL_DEGREES = 0.25


def nearest_index(
    axis: np.ndarray, points: np.ndarray, *, name: str, labels, single_cell: float | None = None
) -> np.ndarray:
    """Index of the grid cell nearest to each point along one axis.

    Parameters
    ----------
    axis : numpy.ndarray
        Cell centres.
    points : numpy.ndarray
        Positions in the axis' coordinates.
    name : str
        Axis name, for messages.
    labels : sequence
        Tower labels, for messages.
    single_cell : float, optional
        Cell size to assume when the axis has one cell (None: refuse every point
        that is not at the centre).

    Raises
    ------
    ExtractionError
        When a point lies more than half a cell outside the axis.
    """
    axis = np.asarray(axis, dtype=float)
    if axis.size > 1:
        step = np.abs(np.diff(axis)).max()
    elif single_cell is not None:
        step = single_cell
    else:
        step = 0.0
    idx = np.abs(axis[None, :] - points[:, None]).argmin(axis=1)
    off = np.abs(axis[idx] - points) > step / 2 + 1e-9
    if off.any():
        bad = [f"{labels[i]} ({name}={points[i]:.4f})" for i in np.flatnonzero(off)[:5]]
        span = f"[{axis.min() - step / 2:.4f}, {axis.max() + step / 2:.4f}]"
        raise ExtractionError(f"{off.sum()} tower(s) lie outside the cube's {name} cells {span}: {', '.join(bad)}")
    return idx


def _distance_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance [km] on a sphere of radius 6371 km."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _cell_lat_lon(cube: xr.Dataset, iy, ix) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude [degrees] of cell centres (iy, ix)."""
    ydim, xdim = spatial_dims(cube)
    y, x = cube[ydim].values[iy], cube[xdim].values[ix]
    if ydim == "lat":
        return np.asarray(y, float), np.asarray(x, float)
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(cube.rio.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return np.asarray(lat), np.asarray(lon)


def _empty_at(arrays: dict, ydim: str, xdim: str, iy: int, ix: int) -> list[str]:
    """Features that are NaN at every time step in cell (iy, ix) (one compute for all of them)."""
    names = [n for n, da in arrays.items() if ydim in da.dims]
    flags = dask.compute(*[arrays[n].isel({ydim: iy, xdim: ix}).isnull().all() for n in names])
    return [n for n, empty in zip(names, flags, strict=True) if bool(empty)]


def locate_towers(cube: xr.Dataset, sites: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(iy, ix) of the cell nearest to each tower.

    Raises
    ------
    ExtractionError
        A tower without coordinates, or outside the cube.
    """
    labels = sites["site"].values
    lat, lon = sites["lat"].values.astype(float), sites["lon"].values.astype(float)
    missing = ~(np.isfinite(lat) & np.isfinite(lon))
    if missing.any():
        raise ExtractionError(
            f"tower(s) {[str(v) for v in labels[missing]][:5]} have no coordinates (lat/lon NaN); "
            "read them with read_sites(..., metadata=) giving lat and lon for every site"
        )
    ydim, xdim = spatial_dims(cube)
    py, px = tower_coordinates(cube, sites)
    single = SINGLE_CELL_DEGREES if ydim == "lat" else None
    iy = nearest_index(cube[ydim].values, py, name=ydim, labels=labels, single_cell=single)
    ix = nearest_index(cube[xdim].values, px, name=xdim, labels=labels, single_cell=single)
    return iy, ix


def move_off_empty_cells(cube: xr.Dataset, sites: xr.Dataset, arrays: dict, iy, ix, empty) -> None:
    """Move each tower flagged in ``empty`` (a predictor NaN at every step in its cell, e.g. a coastal
    tower on a land-only grid) to the nearest of its 8 neighbouring cells that has every predictor.

    ``iy`` and ``ix`` are updated in place.

    Raises
    ------
    ExtractionError
        When no neighbouring cell has every predictor, naming the tower and the distance.
    """
    labels = sites["site"].values
    lat, lon = sites["lat"].values.astype(float), sites["lon"].values.astype(float)
    ydim, xdim = spatial_dims(cube)
    ny, nx = cube.sizes[ydim], cube.sizes[xdim]
    for k in np.flatnonzero(empty):
        neighbours = [
            (iy[k] + dy, ix[k] + dx)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if (dy or dx) and 0 <= iy[k] + dy < ny and 0 <= ix[k] + dx < nx
        ]
        if neighbours:
            nlat, nlon = _cell_lat_lon(cube, [n[0] for n in neighbours], [n[1] for n in neighbours])
            neighbours = [neighbours[i] for i in np.argsort(_distance_km(lat[k], lon[k], nlat, nlon))]
        chosen = next((n for n in neighbours if not _empty_at(arrays, ydim, xdim, *n)), None)
        if chosen is None:
            clat, clon = _cell_lat_lon(cube, iy[k], ix[k])
            raise ExtractionError(
                f"tower {labels[k]!s} ({lat[k]:.4f}, {lon[k]:.4f}): predictor(s) "
                f"{_empty_at(arrays, ydim, xdim, iy[k], ix[k])} are NaN at every time step in its cell "
                f"({_distance_km(lat[k], lon[k], clat, clon):.1f} km away) and in all 8 cells around it; "
                "check the tower coordinates and the cube's land mask"
            )
        iy[k], ix[k] = chosen


def tower_cells(cube: xr.Dataset, sites: xr.Dataset, iy, ix, moved) -> pd.DataFrame:
    """The cell each tower takes its predictors from, logged and as a table.

    Returns
    -------
    pandas.DataFrame
        One row per tower: ``site``, ``iy``, ``ix``, ``distance_km`` (tower to
        the centre of its cell), ``moved`` (took a neighbour), and where both
        are known ``elevation_site``, ``elevation_cell`` and
        ``elevation_difference`` [m] (cell minus tower).
    """
    ydim, xdim = spatial_dims(cube)
    lat, lon = sites["lat"].values.astype(float), sites["lon"].values.astype(float)
    clat, clon = _cell_lat_lon(cube, iy, ix)
    placed = pd.DataFrame(
        {
            "site": sites["site"].values,
            "iy": iy,
            "ix": ix,
            "distance_km": _distance_km(lat, lon, clat, clon),
            "moved": moved,
        }
    )
    if "elevation" in sites.coords and "elevation" in cube and set(cube["elevation"].dims) == {ydim, xdim}:
        cell_elevation = (
            cube["elevation"].isel({ydim: xr.DataArray(iy, dims="site"), xdim: xr.DataArray(ix, dims="site")}).values
        )
        placed["elevation_site"] = sites["elevation"].values.astype(float)
        placed["elevation_cell"] = np.asarray(cell_elevation, dtype=float)
        placed["elevation_difference"] = placed["elevation_cell"] - placed["elevation_site"]
    # one line per tower at DEBUG (INFO for a moved tower): a network of hundreds would flood the log
    for row in placed.itertuples():
        extra = f", cell elevation {row.elevation_difference:+.0f} m" if "elevation_difference" in placed else ""
        log.log(
            logging.INFO if row.moved else logging.DEBUG,
            "tower %s -> cell (%d, %d), %.2f km from its centre%s%s",
            row.site,
            row.iy,
            row.ix,
            row.distance_km,
            " (nearest cell empty, moved to a neighbour)" if row.moved else "",
            extra,
        )
    log.info(
        "%d towers placed on the grid: %.2f km from the cell centre at the median, %.2f km at most, %d moved",
        len(placed),
        placed["distance_km"].median(),
        placed["distance_km"].max(),
        int(placed["moved"].sum()),
    )
    return placed


def common_time(sites: xr.Dataset, cube: xr.Dataset) -> pd.DatetimeIndex:
    """The time steps towers and cube share, at one time step.

    Raises
    ------
    ExtractionError
        Different steps (:func:`check_same_step`) or no common step.
    """
    check_same_step(sites, cube)
    common = sites.indexes["time"].intersection(cube.indexes["time"])
    if common.empty:
        raise ExtractionError(
            "no overlap in time between sites "
            f"({sites.time.values[0]!s:.10}..{sites.time.values[-1]!s:.10}) and cube "
            f"({cube.time.values[0]!s:.10}..{cube.time.values[-1]!s:.10})"
        )
    return common


def check_same_step(sites: xr.Dataset, cube: xr.Dataset) -> None:
    """Refuse towers and a cube at different time steps (daily towers against a monthly cube).

    Raises
    ------
    ExtractionError
        Naming both steps and the aggregation to use.
    """
    if sites.sizes.get("time", 0) < 2 or cube.sizes.get("time", 0) < 2:
        return
    a, b = time_step(sites.indexes["time"]), time_step(cube.indexes["time"])
    if abs(a - b) > 0.1 * min(a, b) and not (a >= pd.Timedelta(days=27) and b >= pd.Timedelta(days=27)):
        raise ExtractionError(
            f"towers at a step of {a} and the cube at {b}: matching their time labels would pair a few "
            "days with the cube's means. Aggregate the towers to the cube's step first "
            "(uflux_xr.site.aggregate.to_daily / to_monthly)"
        )


def _is_categorical(da: xr.DataArray) -> bool:
    return "flag_values" in da.attrs or np.issubdtype(da.dtype, np.integer)


def _window_indices(idx: np.ndarray, size: int, n: int) -> np.ndarray:
    """(site, window) indices of a centred window, clipped at the grid edge."""
    half = size // 2
    return np.clip(idx[:, None] + np.arange(-half, half + 1)[None, :], 0, n - 1)


def extract_at_sites(
    cube: xr.Dataset,
    sites: xr.Dataset,
    features,
    *,
    targets=None,
    method: str = "nearest",
    window: int = 3,
) -> pd.DataFrame:
    """Training table: the cube's predictors at each tower joined to the tower records.

    Parameters
    ----------
    cube : xarray.Dataset
        Predictor cube (time, lat, lon) or (time, y, x) with a CRS.
    sites : xarray.Dataset
        Site dataset (site, time) with coords ``lat``, ``lon`` [degrees] and ``igbp``.
    features : sequence of str
        Predictor names (cube variables, or derived ``DOY_SIN``/``DOY_COS``).
    targets : sequence of str, optional
        Site variables to join (default: every data variable of ``sites``, QC
        included).  A tower variable named like a feature (TA, SW_IN, VPD
        measured at the tower) is joined as ``<name>_tower``: the feature
        column is always the cube's value at the tower.
    method : {"nearest", "window"}
        Take the nearest cell, or the NaN-skipping mean of a ``window`` × ``window``
        block of cells centred on it.
    window : int
        Odd window width [cells] for ``method="window"``.

    Returns
    -------
    pandas.DataFrame
        One row per (site, time) in the common period, columns ``site``, ``time``,
        ``igbp``, the features and the targets.  ``attrs["units"]`` maps each
        column to its units.

    Raises
    ------
    ExtractionError
        No common time steps, towers outside the grid, or a predictor that is
        all-NaN at a tower over the common period.
    """
    if method not in ("nearest", "window"):
        raise ValueError(f"method must be 'nearest' or 'window', got {method!r}")
    if method == "window" and (window < 1 or window % 2 == 0):
        raise ValueError(f"window must be an odd number of cells, got {window}")
    for coord in ("lat", "lon"):
        if coord not in sites.coords:
            raise ExtractionError(f"site dataset has no {coord!r} coordinate; expected tower positions [degrees]")
    if sites.indexes["time"].has_duplicates:
        raise ExtractionError("site dataset has duplicate timestamps")
    targets = list(sites.data_vars) if targets is None else list(targets)
    missing = [t for t in targets if t not in sites.data_vars]
    if missing:
        raise ExtractionError(
            f"target(s) {missing} not in the site dataset; it has {sorted(map(str, sites.data_vars))}"
        )

    common = common_time(sites, cube)
    cube = cube.sel(time=common)
    sites = sites.sel(time=common)

    labels = sites["site"].values
    arrays = resolve_features(cube, list(features))
    iy, ix = locate_towers(cube, sites)
    at = _values_at(arrays, cube, iy, ix, method, window, labels)
    # A predictor NaN over the whole period at a tower: its cell is empty (sea, outside a product's
    # mask). Found on the values just read, so the common case reads the tower cells once.
    empty = np.zeros(len(labels), dtype=bool)
    for da in at.data_vars.values():
        empty |= np.asarray(da.isnull().all("time") if "time" in da.dims else da.isnull())
    moved = empty.copy()
    if empty.any():
        move_off_empty_cells(cube, sites, arrays, iy, ix, empty)
        at = _values_at(arrays, cube, iy, ix, method, window, labels)
    placed = tower_cells(cube, sites, iy, ix, moved)
    check_plausible(at, source="cube values at the towers")
    table = join_site_table(at, sites, features, targets)
    table.attrs["tower_cells"] = placed
    return table


def _values_at(arrays: dict, cube: xr.Dataset, iy, ix, method: str, window: int, labels) -> xr.Dataset:
    """Every feature at the towers' cells (nearest) or window means around them, computed."""
    ydim, xdim = spatial_dims(cube)
    if method == "nearest":
        sel = {ydim: xr.DataArray(iy, dims="site"), xdim: xr.DataArray(ix, dims="site")}
        at = {k: v.isel({d: sel[d] for d in (ydim, xdim) if d in v.dims}) for k, v in arrays.items()}
    else:
        wy = xr.DataArray(_window_indices(iy, window, cube.sizes[ydim]), dims=("site", "wy"))
        wx = xr.DataArray(_window_indices(ix, window, cube.sizes[xdim]), dims=("site", "wx"))
        sel = {ydim: wy, xdim: wx}
        at = {k: v.isel({d: sel[d] for d in (ydim, xdim) if d in v.dims}) for k, v in arrays.items()}
        centre = {"wy": window // 2, "wx": window // 2}
        # Categorical layers (IGBP) cannot be averaged: take the tower's own cell.
        at = {
            k: v.isel({d: centre[d] for d in centre if d in v.dims})
            if _is_categorical(arrays[k])
            else v.mean([d for d in centre if d in v.dims], skipna=True)
            for k, v in at.items()
        }
    values = xr.Dataset(at).assign_coords(site=labels).compute()
    for k in values.data_vars:
        values[k].attrs = dict(arrays[k].attrs)  # window means drop them
    return values


#: Suffix of a tower variable whose name is also a cube predictor (``TA`` measured at the tower → ``TA_tower``).
TOWER_SUFFIX = "_tower"


def _rename_tower_twins(sites: xr.Dataset, features: list, targets: list) -> tuple[xr.Dataset, list]:
    """Tower variables named like a feature (and their ``_QC``) renamed ``<name>_tower`` (``<name>_tower_QC``).

    A feature is always the cube's value at the tower, the value a map is made
    from; the tower's own measurement of the same quantity stays in the table
    beside it, for comparison, under its suffixed name.
    """
    twins = [t for t in targets if t in features]
    if not twins:
        return sites, targets
    mapping = {}
    for name in twins:
        mapping[name] = f"{name}{TOWER_SUFFIX}"
        if f"{name}_QC" in sites and f"{name}_QC" in targets:
            mapping[f"{name}_QC"] = f"{name}{TOWER_SUFFIX}_QC"
    clash = [new for new in mapping.values() if new in sites.data_vars]
    if clash:
        raise ExtractionError(f"cannot keep tower variables apart from the cube's: {clash} already exist in the sites")
    log.info("tower variables %s are also cube predictors: kept as %s", twins, [mapping[t] for t in twins])
    return sites.rename(mapping), [mapping.get(t, t) for t in targets]


def join_site_table(at: xr.Dataset, sites: xr.Dataset, features, targets) -> pd.DataFrame:
    """Join predictors at the towers (site[, time]) to the tower records as a training table.

    Parameters
    ----------
    at : xarray.Dataset
        Every feature at every tower (static ones without ``time``), site labels
        as in ``sites``, time steps equal to those of ``sites``.
    sites : xarray.Dataset
        Tower records (site, time) holding ``targets``.
    features, targets : sequence of str
        Column names to keep.  A target named like a feature (a tower's own
        TA, SW_IN or VPD) is kept as ``<name>_tower`` (its QC as
        ``<name>_tower_QC``): the feature column is always the cube's value.

    Raises
    ------
    ExtractionError
        A predictor that is all-NaN at a tower.
    """
    labels = sites["site"].values
    features, targets = list(features), list(targets)
    if len(set(features)) != len(features):
        raise ExtractionError(f"features {features} name a predictor twice")
    sites, targets = _rename_tower_twins(sites, features, targets)
    at = at.broadcast_like(sites["time"])  # static layers (IGBP) repeat over time
    for name in features:
        empty = at[name].isnull().all("time") if "time" in at[name].dims else at[name].isnull()
        if bool(empty.any()):
            bad = list(labels[np.asarray(empty)])[:5]
            raise ExtractionError(
                f"predictor {name!r} is all-NaN at tower(s) {bad} over the common period; "
                "check the land mask and the tower coordinates"
            )

    table = xr.merge(
        [at[list(features)].transpose("site", "time"), sites[targets].drop_vars(["lat", "lon"], errors="ignore")],
        compat="override",
        join="exact",
    )
    frame = table.to_dataframe().reset_index()
    if "igbp" in sites.coords:
        frame["igbp"] = frame["site"].map(dict(zip(labels, sites["igbp"].values, strict=True)))
    keep = ["site", "time"] + (["igbp"] if "igbp" in frame else []) + list(features) + list(targets)
    frame = frame[keep]
    frame.attrs["units"] = {
        **{k: at[k].attrs.get("units", "1") for k in features},
        **{k: sites[k].attrs.get("units", "1") for k in targets},
    }
    log.info("training table: %d rows, %d sites, %d features", len(frame), len(labels), len(features))
    return frame


def tower_overlap(cube, sites, fluxes) -> tuple[int, list[str]]:
    """What a files run will find when it joins the towers to the cube, without reading the cube's values.

    Returns
    -------
    (int, list of str)
        Training rows (site-steps in the common period with any of ``fluxes``
        measured) and report lines; when the run would stop, 0 rows and the
        error it would give.
    """
    try:
        common = common_time(sites, cube)
        locate_towers(cube, sites)
    except ExtractionError as err:
        return 0, [f"the run would stop: {err}"]
    present = [f for f in fluxes if f in sites]
    measured = sites[present].sel(time=common).to_array("flux").notnull().any("flux")
    rows = int(measured.sum())
    lines = [
        f"{sites.sizes['site']} on the grid; {len(common):,} common time steps "
        f"({common[0]} .. {common[-1]}); {rows:,} site-steps with {'/'.join(present)} measured",
    ]
    return rows, lines
