"""Predictor cubes from raw downloads: ERA5 / ERA5-Land, dated satellite rasters,
land cover, land mask and elevation, put on one domain's grid and time step.

The rules, each stated where a user can see it:

- **Climate** comes in groups of files, one product per group (ERA5 0.25°,
  ERA5-Land 0.1°; see :func:`uflux_xr.io.era5.read_era5`).  A variable given by
  two groups is taken from the first group that has it (list ERA5-Land first
  to prefer it for TA and VPD).  Each group is regridded to the domain by a
  named method: ``nearest`` (the default: a fine domain inherits the
  reanalysis cell it lies in, which keeps the cube exactly as coarse as its
  source and is what makes inference deduplication pay) or ``bilinear``.
  A target cell farther than half a source cell from every source cell is NaN,
  never extrapolated.
- **Time**: climate is read as daily means (monthly means for monthly
  domains) of complete days, then averaged over each domain period
  (biannual half-years) when every day of the period is present; other
  periods are NaN.
- **Satellite series**: many dated files per variable (dates from the file
  names: ``YYYYMMDD``, ``YYYY-MM-DD`` or MODIS ``AYYYYDDD``), each read onto
  the grid with its scale factor and QA bit mask (applied on the native
  pixels), composited per domain period as the mean of
  the valid observations in it.  Red and NIR reflectance (``RED``, ``NIR``)
  give NDVI, NIRv and EVI2 per date before compositing.
- **Land mask**: ``"era5"`` (ERA5 ``lsm`` ≥ 0.5), a raster path (1 land), or
  ``"all"`` (every cell, an explicit choice for a land-only domain); with a
  land-cover raster and no mask, land is every IGBP class but water (17).
- **IGBP** as integer codes (1–17, :func:`uflux_xr.core.variables.igbp_classes`)
  from a land-cover raster by the modal class; 0 outside land.

The result is checked against the plausibility ranges and its coverage per
variable is logged and returned by :func:`cube_coverage`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.domain import COORDINATE_ATTRS, Domain, time_step
from uflux_xr.core.plausibility import check_plausible
from uflux_xr.core.variables import igbp_classes, variable_attrs
from uflux_xr.io.era5 import read_era5
from uflux_xr.io.raster import read_raster, vegetation_indices
from uflux_xr.io.storage import redact

log = logging.getLogger(__name__)

REGRID_METHODS = ("nearest", "bilinear")
#: Half a cell of the coarsest reanalysis (ERA5 0.25°), for a climate file of a single cell.
SINGLE_CELL_HALF_WIDTH = 0.125


class CubeError(ValueError):
    """Raw inputs cannot be built into a predictor cube."""


# ---------------------------------------------------------------------------
# grid and time of the domain
# ---------------------------------------------------------------------------


def domain_template(domain: Domain) -> xr.Dataset:
    """An empty cube on the domain's grid: coords (lat, lon) or (y, x) with the CRS."""
    ydim, xdim = domain.dims
    template = xr.Dataset(
        {"template": ((ydim, xdim), np.zeros((len(domain.y()), len(domain.x())), dtype=np.float32))},
        coords={ydim: domain.y(), xdim: domain.x()},
    )
    for dim in (ydim, xdim):
        template[dim].attrs = dict(COORDINATE_ATTRS[dim])
    if domain.geographic:
        return template
    return template.rio.write_crs(domain.crs)


def period_start(time: pd.DatetimeIndex, step: str) -> pd.DatetimeIndex:
    """Start of the domain period (daily, monthly, biannual Apr/Oct half-years) holding each time."""
    time = pd.DatetimeIndex(time)
    if step == "daily":
        return time.floor("D")
    if step == "monthly":
        return time.to_period("M").to_timestamp()
    half = np.where(time.month >= 10, 10, np.where(time.month >= 4, 4, 10))
    year = np.where(time.month >= 4, time.year, time.year - 1)
    return pd.DatetimeIndex(pd.to_datetime({"year": year, "month": half, "day": 1}))


def to_domain_steps(ds: xr.Dataset, domain: Domain, *, require_complete: bool, source: str) -> xr.Dataset:
    """Average ``ds`` over each period of the domain and label it as the domain does.

    Parameters
    ----------
    ds : xarray.Dataset
        Values at a step no coarser than the domain's (daily or monthly means).
    domain : Domain
        Target periods.
    require_complete : bool
        Periods need every day (daily input) or month (monthly input) present,
        else they are NaN (climate); False averages whatever is there (satellite
        composites).
    source : str
        For messages.
    """
    labels = domain.time()
    starts = period_start(labels, domain.step)
    keys = period_start(ds.indexes["time"], domain.step)
    inside = np.isin(keys, starts)
    if not inside.any():
        raise CubeError(
            f"{source}: no time step inside the domain period {domain.start}..{domain.end} "
            f"(the files cover {ds.indexes['time'][0]} .. {ds.indexes['time'][-1]})"
        )
    ds = ds.isel(time=np.flatnonzero(inside))
    if not keys[inside].has_duplicates:  # already at the domain's step: relabel, no grouping (one task per chunk)
        label_of = dict(zip(starts, labels, strict=True))
        return ds.assign_coords(time=[label_of[k] for k in keys[inside]]).reindex(time=labels)
    ds = ds.assign_coords(period=("time", keys[inside]))
    grouped = ds.groupby("period")
    means = grouped.mean("time")
    if require_complete:
        counts = ds["period"].to_series().value_counts()
        src_step = time_step(ds.indexes["time"]) if ds.sizes["time"] > 1 else None
        expected = {}
        for start, label in zip(starts, labels, strict=True):
            end = start + 2 * (label - start)
            if src_step is not None and src_step >= pd.Timedelta(days=27):
                expected[start] = len(pd.period_range(start, end - pd.Timedelta(days=1), freq="M"))
            else:
                expected[start] = int(round((end - start) / pd.Timedelta(days=1)))
        complete = [p for p in means.indexes["period"] if counts.get(p, 0) >= expected.get(p, np.inf)]
        dropped = len(means.indexes["period"]) - len(complete)
        if dropped:
            log.info("%s: %d incomplete period(s) of the domain left NaN", source, dropped)
        means = means.sel(period=complete)
    out = means.reindex(period=starts).rename(period="time").assign_coords(time=labels)
    for name in out.data_vars:
        out[name].attrs = dict(ds[name].attrs)
    return out


# ---------------------------------------------------------------------------
# climate
# ---------------------------------------------------------------------------


def _target_lat_lon(domain: Domain) -> tuple[xr.DataArray, xr.DataArray]:
    """Latitude and longitude [degrees] of every domain cell, as (y, x) arrays (or 1-D for lat/lon grids)."""
    ydim, xdim = domain.dims
    if domain.geographic:
        return xr.DataArray(domain.y(), dims=ydim), xr.DataArray(domain.x(), dims=xdim)
    from pyproj import Transformer

    xx, yy = np.meshgrid(domain.x(), domain.y())
    lon, lat = Transformer.from_crs(domain.crs, "EPSG:4326", always_xy=True).transform(xx, yy)
    coords = {ydim: domain.y(), xdim: domain.x()}
    return xr.DataArray(lat, dims=(ydim, xdim), coords=coords), xr.DataArray(lon, dims=(ydim, xdim), coords=coords)


def regrid_climate(ds: xr.Dataset, domain: Domain, method: str = "nearest", *, source: str = "climate") -> xr.Dataset:
    """Put a (time, lat, lon) climate dataset on the domain's grid.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`uflux_xr.io.era5.read_era5` (regular lat/lon grid).
    domain : Domain
        Target grid (geographic or projected).
    method : {"nearest", "bilinear"}
        ``nearest`` takes the source cell each target cell centre lies in;
        ``bilinear`` interpolates between the four surrounding centres (needs
        at least two source cells along each axis).
    source : str
        For messages.

    Returns
    -------
    xarray.Dataset
        (time, lat|y, lon|x); NaN where a target cell lies more than half a
        source cell outside the source grid.
    """
    if method not in REGRID_METHODS:
        raise CubeError(f"regrid must be one of {REGRID_METHODS}, got {method!r}")
    lat, lon = _target_lat_lon(domain)
    half = {}
    for dim in ("lat", "lon"):
        axis = ds[dim].values
        half[dim] = SINGLE_CELL_HALF_WIDTH if axis.size < 2 else float(np.median(np.abs(np.diff(axis)))) / 2
    timed = [n for n in ds.data_vars if "time" in ds[n].dims]
    if method == "nearest":
        out = ds.sel(lat=lat, lon=lon, method="nearest")
        # ``sel`` snaps to the nearest cell however far: mask what lies outside the source cells
        outside = (abs(out["lat"] - lat) > half["lat"] + 1e-9) | (abs(out["lon"] - lon) > half["lon"] + 1e-9)
        out = out.drop_vars(["lat", "lon"]).where(~outside.drop_vars(["lat", "lon"], errors="ignore"))
    else:
        if ds.sizes["lat"] < 2 or ds.sizes["lon"] < 2:
            raise CubeError(f"{source}: bilinear regridding needs at least 2 x 2 source cells; use 'nearest'")
        out = ds.interp(lat=lat, lon=lon, method="linear").drop_vars(["lat", "lon"], errors="ignore")
    ydim, xdim = domain.dims
    out = out.assign_coords({ydim: domain.y(), xdim: domain.x()})
    for name in timed:
        out[name].attrs = dict(ds[name].attrs)
    if not domain.geographic:
        out = out.rio.write_crs(domain.crs)
    log.info("%s regridded to the domain by %s", source, method)
    return out


def read_climate(groups: Sequence[Sequence[str | Path]], domain: Domain, *, regrid: str = "nearest") -> xr.Dataset:
    """Climate predictors on the domain from groups of ERA5 / ERA5-Land files (one product per group).

    A variable present in several groups is taken from the first group that has it.
    """
    freq = "MS" if domain.step == "monthly" else "D"
    merged: dict[str, xr.DataArray] = {}
    land_fraction = None
    # a store of the globe and decades (ARCO-ERA5) is cut to the domain before anything is read
    bounds = None
    if domain.geographic:
        bounds = (float(domain.x().min()), float(domain.y().min()), float(domain.x().max()), float(domain.y().max()))
    for group in groups:
        files = [os.fspath(f) for f in group]
        source = ", ".join(redact(f).rstrip("/").rsplit("/", 1)[-1] for f in files)
        cube = read_era5(files, freq=freq, period=(domain.start, domain.end), bounds=bounds)
        on_grid = regrid_climate(cube, domain, regrid, source=source)
        static = [n for n in on_grid.data_vars if "time" not in on_grid[n].dims]  # ERA5 lsm
        if land_fraction is None and "land_fraction" in static:
            land_fraction = on_grid["land_fraction"]
        stepped = to_domain_steps(on_grid.drop_vars(static), domain, require_complete=True, source=source)
        for name in map(str, stepped.data_vars):
            if name in merged:
                log.info("%s: %s already taken from an earlier group; this one's is not used", source, name)
                continue
            merged[name] = stepped[name].assign_attrs(source=f"{cube.attrs['product']}: {source}")
    out = xr.Dataset(merged)
    if land_fraction is not None:
        out["land_fraction"] = land_fraction
    return out


# ---------------------------------------------------------------------------
# satellite series and static layers
# ---------------------------------------------------------------------------

_DATE_PATTERNS = (
    (
        re.compile(r"(?<!\d)A(\d{4})(\d{3})(?!\d)"),
        lambda m: pd.Timestamp(int(m[1]), 1, 1) + pd.Timedelta(days=int(m[2]) - 1),
    ),
    (re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"), lambda m: pd.Timestamp(int(m[1]), int(m[2]), int(m[3]))),
    (re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"), lambda m: pd.Timestamp(int(m[1]), int(m[2]), int(m[3]))),
)


def date_from_name(path: str | Path) -> pd.Timestamp:
    """Acquisition date in a file name: MODIS ``AYYYYDDD``, ``YYYY-MM-DD`` or ``YYYYMMDD``.

    Raises
    ------
    CubeError
        When the name holds none of them (or an impossible date).
    """
    name = Path(path).name
    for pattern, make in _DATE_PATTERNS:
        match = pattern.search(name)
        if match:
            try:
                return make(match)
            except ValueError:
                continue
    raise CubeError(f"{name}: no date (AYYYYDDD, YYYY-MM-DD or YYYYMMDD) in the file name; rename it or pass dates")


def satellite_series(
    name: str,
    files: Sequence[str | Path],
    domain: Domain,
    *,
    variable: str | None = None,
    scale_factor: float | None = None,
    resampling: str = "average",
    units: str = "1",
    qa_variable: str | None = None,
    qa_mask: int | None = None,
) -> xr.DataArray:
    """A dated series of rasters of one variable on the domain grid, one layer per file date.

    Returns
    -------
    xarray.DataArray
        (time, lat|y, lon|x) at the files' dates (not yet composited).
    """
    template = domain_template(domain)
    layers = []
    for path in sorted(files, key=date_from_name):
        layer = read_raster(
            path,
            like=template,
            resampling=resampling,
            variable=variable,
            name=name,
            units=units,
            scale_factor=scale_factor,
            qa_variable=qa_variable,
            qa_mask=qa_mask,
        )
        layers.append(layer.expand_dims(time=[date_from_name(path)]))
    if not layers:
        raise CubeError(f"{name}: no files given")
    series = xr.concat(layers, dim="time").sortby("time")
    if series.indexes["time"].has_duplicates:
        raise CubeError(f"{name}: several files for one date; merge tiles per date first")
    series.attrs = {"units": units, "source_file": ", ".join(Path(p).name for p in files)}
    return series


def satellite_composites(satellite: Mapping[str, Mapping], domain: Domain) -> xr.Dataset:
    """Composites per domain period (mean of the valid observations) of dated satellite series.

    ``RED`` and ``NIR`` reflectance become NDVI, NIRv and EVI2 per date first.
    """
    ydim, xdim = domain.dims
    dated = {}
    for name, spec in satellite.items():
        spec = dict(spec)
        files = spec.pop("files")
        dated[name] = satellite_series(name, files, domain, **spec)
    if ("RED" in dated) != ("NIR" in dated):
        raise CubeError("RED and NIR reflectance come together (for NDVI, NIRv, EVI2); one of them is missing")
    if "RED" in dated:
        red, nir = xr.align(dated.pop("RED"), dated.pop("NIR"), join="inner")
        if red.sizes["time"] == 0:
            raise CubeError("RED and NIR files share no date")
        dated.update({str(k): v for k, v in vegetation_indices(red, nir).data_vars.items()})
    out = xr.Dataset(
        {
            name: to_domain_steps(da.to_dataset(name=name), domain, require_complete=False, source=name)[name]
            for name, da in dated.items()
        }
    )
    return out.drop_vars("spatial_ref", errors="ignore").assign_coords({ydim: domain.y(), xdim: domain.x()})


def land_cover_codes(path: str | Path, domain: Domain) -> xr.DataArray:
    """IGBP codes (int16, 1–17; 0 where missing) from a land-cover raster by the modal class."""
    codes = read_raster(path, like=domain_template(domain), resampling="mode", units="1")
    valid = set(igbp_classes())
    finite = codes.values[np.isfinite(codes.values)]
    unknown = sorted(set(np.unique(finite).astype(int)) - valid)
    if unknown:
        raise CubeError(
            f"{Path(path).name}: land-cover codes {unknown[:10]} are not IGBP classes 1-17 "
            "(MODIS MCD12Q1 LC_Type1); reclassify first"
        )
    out = codes.fillna(0).astype(np.int16)
    out.attrs = {
        **{k: v for k, v in variable_attrs("IGBP").items() if k in ("long_name", "units")},
        "flag_values": np.array(sorted(valid), dtype=np.int16),
        "flag_meanings": " ".join(igbp_classes()[k] for k in sorted(valid)),
        "source_file": Path(path).name,
    }
    return out


def _land_mask(land_mask, land_cover: xr.DataArray | None, climate: xr.Dataset, domain: Domain) -> xr.DataArray:
    ydim, xdim = domain.dims
    if land_mask is None and land_cover is not None:
        mask = (land_cover > 0) & (land_cover != 17)
        how = "land-cover classes other than water (17)"
    elif land_mask == "era5":
        if "land_fraction" not in climate:
            raise CubeError("land_mask 'era5' needs ERA5's land-sea mask (variable 'lsm') in a climate group")
        mask = climate["land_fraction"] >= 0.5
        how = "ERA5 lsm >= 0.5"
    elif land_mask == "all":
        mask = xr.DataArray(np.ones((len(domain.y()), len(domain.x())), bool), dims=(ydim, xdim))
        how = "every cell (land_mask: all)"
    elif land_mask is not None:
        raster = read_raster(land_mask, like=domain_template(domain), resampling="nearest", units="1")
        mask = raster == 1
        how = f"raster {Path(land_mask).name} == 1"
    else:
        raise CubeError("a land mask is needed: land_mask='era5' | a raster path | 'all', or a land_cover raster")
    out = mask.astype(np.int8).assign_coords({ydim: domain.y(), xdim: domain.x()})
    out.attrs = {**{k: v for k, v in variable_attrs("land_mask").items() if k != "comment"}, "comment": how}
    log.info("land mask: %s; %.1f %% of cells are land", how, 100 * float(out.mean()))
    return out


def build_cube(
    domain: Domain,
    *,
    climate: Sequence[Sequence[str | Path]] = (),
    satellite: Mapping[str, Mapping] | None = None,
    land_mask: str | Path | None = None,
    land_cover: str | Path | None = None,
    elevation: str | Path | None = None,
    regrid: str = "nearest",
) -> xr.Dataset:
    """Build a domain's predictor cube from raw files (see the module docstring for the rules).

    Parameters
    ----------
    domain : Domain
        Grid, CRS, period and step of the cube.
    climate : sequence of sequences of paths
        Groups of ERA5 / ERA5-Land files, one product per group; earlier
        groups win for variables given twice.
    satellite : mapping of str to mapping, optional
        ``{name: {"files": [...], "variable": ..., "scale_factor": ...,
        "resampling": "average", "units": "1", "qa_variable": ..., "qa_mask": ...}}`` for canonical names (``RED``
        and ``NIR`` reflectance give NDVI, NIRv and EVI2; ``NDVI``, ``EVI``,
        ``LAI``, ``SIF`` ... are taken as they are).
    land_mask : {"era5", "all"} or path, optional
        Where the land mask comes from (see the module docstring).
    land_cover : path, optional
        IGBP land-cover raster (codes 1–17) -> ``IGBP``.
    elevation : path, optional
        Elevation raster [m] -> ``elevation`` (mean per cell).
    regrid : {"nearest", "bilinear"}
        Regridding of the climate.

    Returns
    -------
    xarray.Dataset
        (time, lat|y, lon|x) predictors plus static ``land_mask``, ``IGBP``,
        ``elevation``; predictors NaN outside land; plausibility-checked.
    """
    template = domain_template(domain)
    ydim, xdim = domain.dims
    parts = [read_climate(climate, domain, regrid=regrid)] if climate else []
    parts += [satellite_composites(satellite, domain)] if satellite else []
    if parts:
        cube = xr.merge(parts, join="exact", combine_attrs="override")
    else:
        cube = xr.Dataset(coords={"time": domain.time(), ydim: domain.y(), xdim: domain.x()})
    codes = land_cover_codes(land_cover, domain) if land_cover is not None else None
    if codes is not None:
        cube["IGBP"] = codes
    mask = _land_mask(land_mask, codes, cube, domain)
    cube["land_mask"] = mask
    if elevation is not None:
        elev = read_raster(elevation, like=template, resampling="average", name="elevation", units="m")
        cube["elevation"] = elev.assign_coords({ydim: domain.y(), xdim: domain.x()})
    cube = cube.drop_vars(["land_fraction", "spatial_ref"], errors="ignore")
    timed = [n for n in cube.data_vars if "time" in cube[n].dims]
    for name in timed:
        attrs = dict(cube[name].attrs)
        cube[name] = cube[name].where(mask == 1).transpose("time", ydim, xdim).astype(np.float32)
        cube[name].attrs = attrs
    if not domain.geographic:
        cube = cube.rio.write_crs(domain.crs)
    cube.attrs = {
        "Conventions": "CF-1.10",
        "title": "uflux-xr predictor cube",
        "source": "uflux_xr.build_cube",
        "uflux_domain": domain.describe(),
    }
    check_plausible(cube, source="built cube", step=pd.Timedelta(days=1))
    for line in format_coverage(cube_coverage(cube)).splitlines():
        log.info("%s", line)
    return cube


def cube_coverage(cube: xr.Dataset) -> pd.DataFrame:
    """Per variable: share of land cell-steps with a finite value and the period it covers.

    Returns
    -------
    pandas.DataFrame
        Columns ``variable``, ``units``, ``land_coverage`` [0–1], ``first``, ``last``
        (first and last time step with any value; empty for static layers).
    """
    land = cube["land_mask"] == 1 if "land_mask" in cube else True
    rows = []
    for name, da in cube.data_vars.items():
        if name == "land_mask":
            continue
        finite = da.notnull() & land
        n_land = (xr.ones_like(da, dtype=bool) & land).sum()
        share = float(finite.sum() / n_land) if int(n_land) else 0.0
        first = last = ""
        if "time" in da.dims:
            any_value = finite.any([d for d in da.dims if d != "time"]).values
            if any_value.any():
                times = da.indexes["time"][any_value]
                first, last = str(times[0].date()), str(times[-1].date())
        rows.append(
            {"variable": name, "units": da.attrs.get("units", ""), "land_coverage": share, "first": first, "last": last}
        )
    return pd.DataFrame(rows)


def format_coverage(table: pd.DataFrame) -> str:
    """The coverage table as printed by ``uflux-xr prepare``."""
    lines = ["variable     units        land coverage  period"]
    for row in table.itertuples():
        period = f"{row.first} .. {row.last}" if row.first else "static"
        lines.append(f"{row.variable:<12} {row.units:<12} {100 * row.land_coverage:6.1f} %       {period}")
    return "\n".join(lines)
