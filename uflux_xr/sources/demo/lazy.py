"""The demo world generated lazily at a domain's real resolution and extent.

:func:`uflux_xr.sources.demo.eager.make_world` simulates a soil bucket day after day over
the whole grid, which needs the grid in memory.  For the real product domains
(0.25° global, 100 m UK: ~9 × 10^7 cells) the world here is instead a closed
form of coordinates and time, evaluated chunk by chunk by dask and never whole:

* every spatial pattern is a sum of random plane waves in a planar kilometre
  frame (easting/northing for projected grids; lon·cos(lat), lat in km for
  lat/lon grids), so a cell has the same value whatever chunk it falls in;
* weather anomalies are those patterns times per-step AR(1) amplitudes (a small
  (time, modes) table per field, drawn once from the seed);
* soil water is a climatological wetness index plus a slow anomaly (no
  bucket), and vegetation is in equilibrium with temperature and soil water;
* fluxes follow the same process formulas as the eager world (light-use
  efficiency GPP, Lloyd–Taylor RECO, Priestley–Taylor LE, energy-balance H).

Vegetation proxies for UFLUX-style ensembles: NIRv, NDVI, EVI2 and SIF, each a
different nonlinear view of the same canopy (SIF also scales with light).

Towers sit at cell centres, so their predictors are evaluated at the points
directly (:meth:`LazyWorld.site_predictors`) and equal what extraction from
the cube would give, without computing any chunk of the cube.
"""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401 - registers the .rio accessor
import xarray as xr
from dask.base import tokenize

from uflux_xr.core import physics
from uflux_xr.core.constants import KELVIN, STEFAN_BOLTZMANN
from uflux_xr.core.domain import COORDINATE_ATTRS, STEP_DAYS, Domain
from uflux_xr.core.physics import saturation_vapour_pressure
from uflux_xr.core.solar import toa_daily_radiation
from uflux_xr.sources.demo.eager import (
    IGBP_CLASSES,
    _attrs,
    _igbp_from_climate,
    _tower_records,
)

#: Time-varying predictors the lazy world provides.
PREDICTORS = ("TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv", "NDVI", "EVI2", "SIF")
#: Static layers.
STATIC = ("land_mask", "IGBP", "elevation")
#: True fluxes.
FLUXES = ("GPP", "RECO", "NEE", "LE", "H")
KM_PER_DEGREE = 111.32

# Pattern name -> (number of plane waves, shortest and longest wavelength [km]).
_PATTERNS = {
    "land": (12, 400.0, 4000.0),
    "coast": (8, 3.0, 60.0),
    "elevation": (10, 2.0, 600.0),
    "continentality": (8, 500.0, 4000.0),
    "aridity": (8, 300.0, 3000.0),
    "split": (12, 0.4, 40.0),
}
# Weather field -> (plane waves, wavelengths [km], daily AR(1) coefficient).
_WEATHER = {
    "temp": (8, 800.0, 4000.0, 0.75),
    "cloud": (8, 400.0, 3000.0, 0.6),
    "rain": (8, 150.0, 1500.0, 0.3),
    "soil": (6, 300.0, 2000.0, 0.97),
}


def _draw_waves(rng, n, wl_lo, wl_hi):
    """Wave vectors [rad km-1] and phases of ``n`` plane waves, wavelengths log-uniform."""
    wl = np.exp(rng.uniform(np.log(wl_lo), np.log(wl_hi), n))
    angle = rng.uniform(0, np.pi, n)
    k = 2 * np.pi / wl
    return np.stack([k * np.cos(angle), k * np.sin(angle)], axis=1), rng.uniform(0, 2 * np.pi, n)


def _waves(waves, px, py) -> np.ndarray:
    """The plane waves at planar points, shape (n, *px.shape), each of unit variance."""
    k, phase = waves
    out = np.empty((len(phase), *px.shape), dtype=np.float32)
    for i in range(len(phase)):
        out[i] = np.cos(k[i, 0] * px + k[i, 1] * py + phase[i])
    return out * np.float32(np.sqrt(2.0))


def _pattern(waves, px, py) -> np.ndarray:
    """Static unit-variance pattern: the normalised sum of its waves."""
    return _waves(waves, px, py).sum(axis=0) / np.float32(np.sqrt(len(waves[1])))


def _ar1_amplitudes(rng, n_time, n_modes, ar1_daily, step_days):
    """Per-step AR(1) amplitudes (n_time, n_modes) of the step means of a daily AR(1) process."""
    a = ar1_daily**step_days
    # Variance of the mean of n daily AR(1) values ≈ (1 + φ) / ((1 − φ) n) for n ≫ 1.
    scale = min(1.0, np.sqrt((1 + ar1_daily) / ((1 - ar1_daily) * step_days)))
    amp = np.empty((n_time, n_modes))
    amp[0] = rng.standard_normal(n_modes)
    innov = rng.standard_normal((n_time, n_modes)) * np.sqrt(1 - a**2)
    for t in range(1, n_time):
        amp[t] = a * amp[t - 1] + innov[t]
    return (amp * scale / np.sqrt(n_modes)).astype(np.float32)


class LazyWorld:
    """The demo world on a :class:`~uflux_xr.core.domain.Domain`, evaluated on demand.

    Parameters
    ----------
    domain : Domain
        Grid and period (any CRS, resolution and step).
    seed : int
        Seed of every random draw; the same seed and domain give the same world.
    n_sites : int
        Number of towers, placed on land cells.
    climate_km : float, optional
        Make the climate (TA, SW_IN, LW_IN, VPD, P, SWC) on a grid this coarse [km] and give every
        cell its coarse cell's value, as a reanalysis regridded by nearest neighbour (ERA5-Land
        0.1° ≈ 9 km); land cover stays at the domain's resolution and the vegetation proxies get a
        field-scale pattern (±15 %, 0.3–3 km).  None: every field at the domain's resolution.
    """

    def __init__(self, domain: Domain, seed: int = 0, n_sites: int = 60, climate_km: float | None = None):
        self.domain, self.seed, self.n_sites, self.climate_km = domain, seed, n_sites, climate_km
        rng = np.random.default_rng(seed)
        self._static_waves = {name: _draw_waves(rng, *spec) for name, spec in _PATTERNS.items()}
        self._weather_waves = {name: _draw_waves(rng, n, lo, hi) for name, (n, lo, hi, _) in _WEATHER.items()}
        # Drawn from its own stream so that the worlds without climate_km stay as they were.
        self._field_waves = _draw_waves(np.random.default_rng([seed, 5]), 10, 0.3, 3.0)
        self.time = domain.time()
        step_days = STEP_DAYS[domain.step]
        self._amplitudes = {
            name: _ar1_amplitudes(rng, len(self.time), n, ar1, step_days) for name, (n, _, _, ar1) in _WEATHER.items()
        }
        self._doy = (self.time.day_of_year.to_numpy() + self.time.hour.to_numpy() / 24.0).astype(np.float32)
        self._x, self._y = domain.x(), domain.y()
        self._site_rng_seed = seed + 1

    def __getstate__(self):
        # The pyproj transformer is rebuilt where the world is unpickled (dask workers).
        state = dict(self.__dict__)
        state.pop("_to_lonlat", None)
        return state

    # ----------------------------------------------------------------- geometry
    @functools.cached_property
    def _to_lonlat(self):
        from pyproj import Transformer

        return Transformer.from_crs(self.domain.crs, "EPSG:4326", always_xy=True)

    def _frames(self, y, x):
        """Latitude, longitude [degrees] and planar coordinates [km] of points (y, x of equal shape)."""
        if self.domain.geographic:
            lat, lon = y, x
            px = lon * KM_PER_DEGREE * np.cos(np.deg2rad(lat))
            py = lat * KM_PER_DEGREE
        else:
            lon, lat = self._to_lonlat.transform(x, y)
            px, py = x / 1000.0, y / 1000.0
        return [np.asarray(a, dtype=np.float64) for a in (lat, lon, px, py)]

    def _climate_cells(self, lat, lon, px, py) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The coarse climate cells (``climate_km``) holding the points, flattened.

        Returns
        -------
        (y, x, inverse)
            Centres of the distinct cells in the domain's coordinates, and for each point the
            index of its cell.
        """
        if self.climate_km is None:
            raise ValueError("this world has no coarse climate grid (climate_km is None)")
        if self.domain.geographic:
            step = self.climate_km / KM_PER_DEGREE  # [degrees]
            iy, ix = np.floor(lat.ravel() / step), np.floor(lon.ravel() / step)
        else:
            step = self.climate_km * 1000.0  # [m]
            iy, ix = np.floor(py.ravel() * 1000.0 / step), np.floor(px.ravel() * 1000.0 / step)
        key = (iy - iy.min()) * (ix.max() - ix.min() + 1) + (ix - ix.min())
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return (iy[first] + 0.5) * step, (ix[first] + 0.5) * step, inverse

    # ----------------------------------------------------------------- the model
    def _static(self, lat, lon, px, py) -> dict[str, np.ndarray]:
        pat = {name: _pattern(w, px, py) for name, w in self._static_waves.items()}
        land = (pat["land"] + 0.3 * pat["coast"]) > -0.25
        elevation = np.where(land, np.clip(500 + 450 * pat["elevation"], 0, 3500), 0.0).astype(np.float32)
        continentality = np.clip(0.5 + 0.35 * pat["continentality"], 0, 1)
        aridity = np.clip(0.25 + 0.25 * pat["aridity"] - 0.012 * (lat - 45), 0, 1).astype(np.float32)
        # Poleward of 35 degrees as the European worlds always had it; equatorward the annual mean rises
        # to ~27 degC and the seasonal swing falls to ~1.5 K at the equator, as on Earth.  (A swing that
        # grew again towards the equator made monthly means of 60 degC and a VPD of 125 hPa in the
        # global world's deserts.)
        abs_lat = np.abs(lat)
        tropical = abs_lat < 35
        t_annual = (
            np.where(tropical, 18.5 + 0.25 * (35 - abs_lat), 36.0 - 0.5 * abs_lat)
            - 0.0065 * elevation
            + 3.0 * (aridity - 0.25)
        )
        t_amp = np.where(
            tropical,
            (1.5 + 3.5 * abs_lat / 35) + 6.0 * continentality * abs_lat / 35,
            5.0 + 0.22 * (abs_lat - 35) + 6.0 * continentality,
        )
        igbp = np.where(land, _igbp_from_climate(t_annual, aridity, pat["split"]), 0).astype(np.int16)
        return {
            "land": land,
            "elevation": elevation,
            "aridity": aridity,
            "t_annual": t_annual.astype(np.float32),
            "t_amp": t_amp.astype(np.float32),
            "igbp": igbp,
        }

    def _climate(self, t: np.ndarray, lat, px, py, s: dict) -> dict[str, np.ndarray]:
        """Weather at steps ``t`` and points (latitude ``lat`` [degrees], planar ``px``, ``py`` [km])
        with static layers ``s``.

        Returns float32/float64 arrays of shape (steps, *lat.shape): ta [degC], sw_in [W m-2],
        lw_in [W m-2], vpd [hPa], precip [mm d-1], swc [%] and es [kPa].
        """
        weather = {
            name: np.tensordot(self._amplitudes[name][t], _waves(w, px, py), axes=(1, 0))
            for name, w in self._weather_waves.items()
        }
        doy = self._doy[t].reshape((-1,) + (1,) * lat.ndim)
        season = np.cos(2 * np.pi * (doy - 20) / 365.25)
        ta = s["t_annual"] - s["t_amp"] * season + 3.0 * weather["temp"]
        cloud_base = -0.6 + 0.03 * (lat - 45) - 1.5 * s["aridity"] + 0.4 * season
        cloud = 1.0 / (1.0 + np.exp(-(cloud_base + 1.3 * weather["cloud"])))
        sw_in = toa_daily_radiation(lat, doy).astype(np.float32) * (0.78 - 0.5 * cloud)
        lw_in = (0.68 + 0.25 * cloud) * STEFAN_BOLTZMANN * (ta + KELVIN) ** 4
        rh = np.clip(0.45 + 0.4 * cloud - 0.25 * s["aridity"] + 0.05 * weather["rain"], 0.15, 0.98)
        es = saturation_vapour_pressure(ta)
        vpd = 10.0 * es * (1.0 - rh)  # kPa -> hPa
        precip = np.maximum(0.0, 18.0 * (cloud - 0.55) * (1.0 + 0.8 * weather["rain"])) * (1.2 - s["aridity"])
        wetness = np.clip(0.75 - 0.9 * s["aridity"] + 0.12 * season + 0.2 * weather["soil"], 0.0, 1.0)
        swc = 5.0 + 40.0 * wetness
        return {"ta": ta, "sw_in": sw_in, "lw_in": lw_in, "vpd": vpd, "precip": precip, "swc": swc, "es": es}

    def _fields(self, t: np.ndarray, lat, lon, px, py, names) -> dict[str, np.ndarray]:
        """Every time-varying field named in ``names`` at steps ``t`` and points (lat, lon, px, py).

        Returns float32 arrays of shape (steps, *lat.shape); land-surface
        fields are NaN over water.
        """
        s = self._static(lat, lon, px, py)
        land = s["land"]
        if self.climate_km is None:
            climate = self._climate(t, lat, px, py, s)
        else:
            # Each coarse climate cell is evaluated once and given to every point inside it.
            cy, cx, inverse = self._climate_cells(lat, lon, px, py)
            at = self._frames(cy, cx)
            cells = self._climate(t, at[0], at[2], at[3], self._static(*at))
            climate = {k: v[:, inverse].reshape(v.shape[:1] + lat.shape) for k, v in cells.items()}
        ta, sw_in, lw_in, vpd, precip, swc, es = (
            climate[k] for k in ("ta", "sw_in", "lw_in", "vpd", "precip", "swc", "es")
        )
        doy = self._doy[t].reshape((-1,) + (1,) * lat.ndim)

        # Canopy in equilibrium with temperature and soil water (no lag, no state).
        nirv_max, lue_max, albedo, evergreen = _class_table(s["igbp"])
        f_water = physics.water_scalar(swc)
        f_temp_green = 1.0 / (1.0 + np.exp(-(ta - 6.0) / 2.5))
        floor = np.where(evergreen, 0.75, 0.15)
        green = nirv_max * (floor + (1 - floor) * f_temp_green * np.sqrt(f_water))
        if self.climate_km is not None:  # fields differ within a climate cell
            green = green * (1.0 + 0.15 * np.clip(_pattern(self._field_waves, px, py), -1.0, 1.0))
        fapar = physics.fapar_from_nirv(green)
        apar = physics.absorbed_par(sw_in, fapar)
        out = {
            "TA": ta,
            "SW_IN": sw_in,
            "LW_IN": lw_in,
            "VPD": vpd,
            "P": precip,
            "SWC": swc,
            "NIRv": green,
            "NDVI": 0.08 + 0.84 * (1.0 - np.exp(-7.0 * green)),
            "EVI2": 0.04 + 1.9 * green * (1.0 - 0.6 * green),
            "SIF": 0.11 * apar * (0.7 + 0.3 * f_water),  # [mW m-2 nm-1 sr-1]
        }
        if any(n in FLUXES for n in names):
            gpp = physics.lue_gpp(lue_max, apar, physics.temperature_scalar(ta), physics.vpd_scalar(vpd), f_water)
            ref_resp = 0.6 + 2.5 * nirv_max / 0.38
            reco = ref_resp * physics.lloyd_taylor(ta) * (0.35 + 0.65 * f_water) + 0.12 * gpp
            snow = ta < 0
            avail = 0.95 * physics.net_radiation(sw_in, lw_in, ta, np.where(snow, 0.5, albedo))
            delta = physics.slope_saturation_vapour_pressure(ta, es)
            stress = 0.1 + 0.9 * f_water * (0.35 + 0.65 * fapar / physics.FAPAR_MAX)
            le = np.where(snow, 0.3, 1.0) * physics.priestley_taylor(delta, avail) * stress
            out.update({"GPP": gpp, "RECO": reco, "NEE": reco - gpp, "LE": le, "H": avail - le})
        water = ~land
        result = {}
        for name in names:
            value = np.broadcast_to(out[name], doy.shape[:1] + lat.shape).astype(np.float32)
            result[name] = value if name in ("TA", "SW_IN", "LW_IN", "VPD", "P") else np.where(water, np.nan, value)
        return result

    # ----------------------------------------------------------------- dask
    def _axes(self, window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Time indices and y, x coordinates of the grid, cut to ``window`` (index slices per dim)."""
        window = window or {}
        ydim, xdim = self.domain.dims
        t = np.arange(len(self.time))[window.get("time", slice(None))]
        return t, self._y[window.get(ydim, slice(None))], self._x[window.get(xdim, slice(None))]

    def _grid_block(self, names, axes, block_info=None):
        (_, _), (t0, t1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        t, y, x = axes
        y2d, x2d = np.meshgrid(y[y0:y1], x[x0:x1], indexing="ij")
        fields = self._fields(t[t0:t1], *self._frames(y2d, x2d), names)
        return np.stack([fields[n] for n in names])

    def _static_block(self, axes, block_info=None):
        (_, _), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        _, y, x = axes
        y2d, x2d = np.meshgrid(y[y0:y1], x[x0:x1], indexing="ij")
        s = self._static(*self._frames(y2d, x2d))
        return np.stack([s["land"].astype(np.float32), s["igbp"].astype(np.float32), s["elevation"]])

    def _coords(self, axes) -> dict:
        ydim, xdim = self.domain.dims
        t, y, x = axes
        return {
            "time": self.time[t],
            ydim: (ydim, y, dict(COORDINATE_ATTRS[ydim])),
            xdim: (xdim, x, dict(COORDINATE_ATTRS[xdim])),
        }

    def _stacked(self, names, chunks, axes) -> da.Array:
        ydim, xdim = self.domain.dims
        shape = (len(names), *(len(a) for a in axes))
        sizes = ((len(names),), chunks.get("time", shape[1]), chunks.get(ydim, shape[2]), chunks.get(xdim, shape[3]))
        blocks = da.core.normalize_chunks(sizes, shape)
        return da.map_blocks(
            functools.partial(self._grid_block, tuple(names), axes),
            chunks=blocks,
            dtype=np.float32,
            name="lazyworld-" + tokenize(self.seed, self.domain, names, blocks, axes),
            meta=np.empty((0, 0, 0, 0), np.float32),
        )

    def cube(self, chunks: dict[str, int], names=PREDICTORS, window: dict[str, slice] | None = None) -> xr.Dataset:
        """The predictor cube, lazy: (time, y, x) variables computed one chunk at a time.

        Parameters
        ----------
        chunks : dict
            Chunk sizes per dim (``time`` and the domain's y/x dims); dims not named
            are one chunk.
        names : sequence of str
            Time-varying predictors to include (see :data:`PREDICTORS`).
        window : dict of str to slice, optional
            Index slices of the domain to generate (the same values as slicing the
            whole cube, without a graph over the whole domain).
        """
        ydim, xdim = self.domain.dims
        dims3 = ("time", ydim, xdim)
        axes = self._axes(window)
        stacked = self._stacked(list(names), chunks, axes)
        data: dict[str, tuple] = {n: (dims3, stacked[i], _attrs(n)) for i, n in enumerate(names)}
        static_chunks = da.core.normalize_chunks(
            ((3,), chunks.get(ydim, len(axes[1])), chunks.get(xdim, len(axes[2]))), (3, len(axes[1]), len(axes[2]))
        )
        static = da.map_blocks(
            functools.partial(self._static_block, axes),
            chunks=static_chunks,
            dtype=np.float32,
            name="lazyworld-static-" + tokenize(self.seed, self.domain, static_chunks, axes),
            meta=np.empty((0, 0, 0), np.float32),
        )
        data["land_mask"] = ((ydim, xdim), static[0].astype(np.int8), _attrs("land_mask"))
        data["IGBP"] = ((ydim, xdim), static[1].astype(np.int16), _igbp_attrs())
        data["elevation"] = ((ydim, xdim), static[2], _attrs("elevation"))
        cube = xr.Dataset(data, coords=self._coords(axes))
        cube.attrs = {
            "title": "uflux-xr lazy demo world predictor cube",
            "source": f"uflux_xr.sources.demo.lazy seed={self.seed}",
        }
        if not self.domain.geographic:
            cube = cube.rio.write_crs(self.domain.crs)
        return cube

    def truth(self, chunks: dict[str, int], names=FLUXES, window: dict[str, slice] | None = None) -> xr.Dataset:
        """The noise-free fluxes on the grid, lazy like :meth:`cube`."""
        ydim, xdim = self.domain.dims
        axes = self._axes(window)
        stacked = self._stacked(list(names), chunks, axes)
        data = {n: (("time", ydim, xdim), stacked[i], _attrs(n)) for i, n in enumerate(names)}
        return xr.Dataset(data, coords=self._coords(axes))

    # ----------------------------------------------------------------- towers
    def land_fraction(self, window: dict[str, slice] | None = None, n_points: int = 20_000, seed: int = 0) -> float:
        """Share of land [0-1] among ``n_points`` random cells of the domain (or of an index ``window`` of it),
        from the static layers alone: no chunk of the cube is computed."""
        y, x = self._y, self._x
        if window:
            ydim, xdim = self.domain.dims
            y, x = y[window.get(ydim, slice(None))], x[window.get(xdim, slice(None))]
        rng = np.random.default_rng(seed)
        iy, ix = rng.integers(0, len(y), n_points), rng.integers(0, len(x), n_points)
        return float(self._static(*self._frames(y[iy], x[ix]))["land"].mean())

    @functools.cached_property
    def site_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Grid indices (iy, ix) of the towers: land cells drawn uniformly over the domain."""
        rng = np.random.default_rng(self._site_rng_seed)
        iy, ix = [], []
        for _ in range(100):  # draws of candidate cells; a domain with ~no land gives up
            cy = rng.integers(0, len(self._y), 4 * self.n_sites)
            cx = rng.integers(0, len(self._x), 4 * self.n_sites)
            land = self._static(*self._frames(self._y[cy], self._x[cx]))["land"]
            iy.extend(cy[land])
            ix.extend(cx[land])
            if len(iy) >= self.n_sites:
                break
        if len(iy) < self.n_sites:
            raise ValueError(f"the domain {self.domain.describe()} has no land cells for towers")
        return np.asarray(iy[: self.n_sites]), np.asarray(ix[: self.n_sites])

    def site_predictors(self, names=PREDICTORS) -> xr.Dataset:
        """Predictors at the tower cells, (time, site): what extraction from :meth:`cube` gives."""
        iy, ix = self.site_cells
        lat, lon, px, py = self._frames(self._y[iy], self._x[ix])
        fields = self._fields(np.arange(len(self.time)), lat, lon, px, py, list(names))
        static = self._static(lat, lon, px, py)
        ds = xr.Dataset(
            {n: (("time", "site"), v, _attrs(n)) for n, v in fields.items()},
            coords={"time": self.time, "site": self.site_ids},
        )
        ds["IGBP"] = ("site", static["igbp"], _igbp_attrs())
        ds["land_mask"] = ("site", static["land"].astype(np.int8), _attrs("land_mask"))
        ds["elevation"] = ("site", static["elevation"], _attrs("elevation"))
        return ds

    @property
    def site_ids(self) -> list[str]:
        """Tower identifiers, ``LW-001``..."""
        return [f"LW-{i + 1:03d}" for i in range(self.n_sites)]

    def sites(self) -> xr.Dataset:
        """Tower records (site, time): fluxes with noise, QC fractions and gaps, as the eager world's."""
        iy, ix = self.site_cells
        lat, lon, px, py = self._frames(self._y[iy], self._x[ix])
        names = ["GPP", "RECO", "LE", "H", "TA", "SW_IN", "VPD", "P"]
        fields = self._fields(np.arange(len(self.time)), lat, lon, px, py, names)
        sim = {k: v[:, None, :] for k, v in fields.items()}  # (time, 1, site) as _tower_records indexes it
        rng = np.random.default_rng(self._site_rng_seed + 1)
        records = _tower_records(rng, sim, self.time, np.zeros(self.n_sites, int), np.arange(self.n_sites))
        static = self._static(lat, lon, px, py)
        data = {}
        for name, values in records.items():
            if name.endswith("_QC"):
                attrs = {"long_name": f"fraction of good-quality records in the step for {name[:-3]}", "units": "1"}
            else:
                attrs = _attrs(name)
            data[name] = (("site", "time"), values.astype(np.float32), attrs)
        sites = xr.Dataset(
            data,
            coords={
                "site": self.site_ids,
                "time": self.time,
                "lat": ("site", lat, {"units": "degrees_north"}),
                "lon": ("site", lon, {"units": "degrees_east"}),
                "igbp": ("site", [IGBP_CLASSES[c][0] for c in static["igbp"]]),
                "elevation": ("site", static["elevation"], {"units": "m"}),
            },
        )
        sites.attrs = {
            "title": f"uflux-xr lazy demo world tower network ({self.domain.step})",
            "source": f"uflux_xr.sources.demo.lazy seed={self.seed}",
        }
        return sites


def _class_table(igbp: np.ndarray):
    """Per-cell class properties (max NIRv, max LUE, albedo, evergreen) from IGBP codes."""
    codes = np.zeros(max(IGBP_CLASSES) + 1, dtype=int)
    table = np.array([[0.0, 0.0, 0.07, 0.0]] + [list(v[1:]) for v in IGBP_CLASSES.values()], dtype=np.float32)
    codes[list(IGBP_CLASSES)] = np.arange(1, len(IGBP_CLASSES) + 1)
    props = table[codes[igbp]]
    return props[..., 0], props[..., 1], props[..., 2], props[..., 3].astype(bool)


def _igbp_attrs() -> dict:
    return {
        **_attrs("IGBP"),
        "flag_values": np.array(list(IGBP_CLASSES), dtype=np.int16),
        "flag_meanings": " ".join(v[0] for v in IGBP_CLASSES.values()),
    }


def site_table(world: LazyWorld, features, targets) -> pd.DataFrame:
    """Training table of the lazy world's towers: the same rows and columns as
    :func:`uflux_xr.grid.extract.extract_at_sites` on the world's cube, without touching the cube."""
    from uflux_xr.grid.extract import join_site_table
    from uflux_xr.grid.features import resolve_features

    at = resolve_features(world.site_predictors(), list(features))
    return join_site_table(xr.Dataset(at), world.sites(), features, targets)
