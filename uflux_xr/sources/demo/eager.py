"""The embedded demo world: a seeded predictor cube, a tower network and the true
flux grids, generated without any download.

The world is built so that the fluxes are process-model functions of the
predictors (plus a soil-water state), which makes upscaling scores against the
truth meaningful:

* weather: seasonal and latitudinal cycles plus spatially smooth, temporally
  autocorrelated anomalies (random Fourier modes with AR(1) amplitudes);
* vegetation (NIRv) that greens with temperature and soil moisture and decays
  towards a dormant floor, with a 10-day response time;
* GPP from a light-use-efficiency model limited by temperature, VPD and soil
  water (Monteith 1972; Running et al. 2004);
* RECO from Lloyd & Taylor (1994) with a reference respiration tied to site
  productivity and a moisture limitation;
* LE from Priestley & Taylor (1972) with a soil-water/canopy stress factor; the
  soil bucket loses exactly this ET, so water and energy are coupled day by day;
* H as the residual of the energy balance, NEE = RECO − GPP.

Towers sit on land cells (jittered inside the cell), measure NEE and RECO with
heteroscedastic noise (GPP is derived as RECO − NEE, as partitioning does),
and have realistic gaps: scattered days, gap episodes of 5–30 days and, at a
few sites, multi-month outages.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core import physics
from uflux_xr.core.constants import KELVIN, PSYCHROMETRIC_CONSTANT, STEFAN_BOLTZMANN  # noqa: F401 - re-exported
from uflux_xr.core.domain import COORDINATE_ATTRS
from uflux_xr.core.physics import saturation_vapour_pressure
from uflux_xr.core.solar import toa_daily_radiation
from uflux_xr.core.variables import latent_heat_of_vaporization, variable_attrs

#: IGBP classes used by the demo world: code -> (abbreviation, max NIRv [-],
#: max light-use efficiency [g C MJ-1 APAR], albedo [-], evergreen).
IGBP_CLASSES = {
    1: ("ENF", 0.26, 1.6, 0.10, True),
    4: ("DBF", 0.34, 2.0, 0.15, False),
    5: ("MF", 0.30, 1.8, 0.13, False),
    7: ("OSH", 0.12, 1.2, 0.22, False),
    9: ("SAV", 0.18, 1.4, 0.20, False),
    10: ("GRA", 0.24, 1.7, 0.20, False),
    12: ("CRO", 0.38, 2.1, 0.19, False),
}

BUCKET_CAPACITY = 150.0  # plant-available water [mm]


class DemoWorld(NamedTuple):
    """What :func:`make_world` returns: unpack as ``cube, sites, truth = make_world()``."""

    cube: xr.Dataset
    sites: xr.Dataset
    truth: xr.Dataset


#: Share of the demo world's cells that are land (the top of a smooth random field).
LAND_SHARE = 0.6


def _smooth_basis(rng, lat2d, lon2d, n_modes, wavelength_deg):
    """Random Fourier modes on the grid, shape (n_modes, ny, nx), each of unit variance."""
    wl = rng.uniform(*wavelength_deg, n_modes)
    angle = rng.uniform(0, np.pi, n_modes)
    phase = rng.uniform(0, 2 * np.pi, n_modes)
    k = 2 * np.pi / wl
    arg = (k * np.cos(angle))[:, None, None] * lon2d + (k * np.sin(angle))[:, None, None] * lat2d
    return np.sqrt(2.0) * np.cos(arg + phase[:, None, None])


def _static_field(rng, lat2d, lon2d, n_modes=10, wavelength_deg=(6.0, 30.0)):
    """Smooth static random field of unit variance."""
    basis = _smooth_basis(rng, lat2d, lon2d, n_modes, wavelength_deg)
    return basis.sum(axis=0) / np.sqrt(n_modes)


def _weather_field(rng, lat2d, lon2d, n_time, n_modes=16, ar1=0.75, wavelength_deg=(8.0, 40.0)):
    """Smooth anomaly field (time, ny, nx) with unit variance and AR(1) memory in time."""
    basis = _smooth_basis(rng, lat2d, lon2d, n_modes, wavelength_deg)
    amp = np.empty((n_time, n_modes))
    amp[0] = rng.standard_normal(n_modes)
    innov = rng.standard_normal((n_time, n_modes)) * np.sqrt(1 - ar1**2)
    for t in range(1, n_time):
        amp[t] = ar1 * amp[t - 1] + innov[t]
    field = np.tensordot(amp, basis, axes=(1, 0)) / np.sqrt(n_modes)
    return field


def _igbp_from_climate(t_annual, aridity, split_field):
    """IGBP code per cell from annual mean temperature [°C], an aridity index [-] and a
    random field used to split climatically similar areas between classes."""
    code = np.full(t_annual.shape, 10, dtype=np.int16)  # grassland by default
    code[(aridity > 0.55) & (t_annual > 10)] = 7
    code[(aridity > 0.35) & (aridity <= 0.55) & (t_annual > 10)] = 9
    temperate = (aridity <= 0.35) & (t_annual >= 4)
    code[temperate & (split_field > 0.5)] = 4
    code[temperate & (split_field <= 0.5) & (split_field > -0.2)] = 12
    code[temperate & (split_field <= -0.2) & (split_field > -0.8)] = 5
    code[(t_annual < 4) & (aridity <= 0.55)] = 1
    return code


#: Process forms the demo world can be generated with (``make_world(process_forms=...)``).
PROCESS_FORMS = ("standard", "alternative")
#: The alternative world's respiration Q10 [-] (the standard world's Lloyd-Taylor E0 is 309 K).
ALTERNATIVE_Q10 = 2.0


def _simulate(lat, lon, time, seed, process_forms="standard"):
    """Run the demo world's climate, vegetation and flux models on the grid.

    Returns a dict of numpy arrays: static layers (ny, nx) and daily fields (nt, ny, nx).
    """
    rng = np.random.default_rng(seed)
    lat2d, lon2d = np.meshgrid(lat, lon, indexing="ij")
    nt = len(time)
    doy = pd.DatetimeIndex(time).day_of_year.to_numpy()

    land_field = _static_field(rng, lat2d, lon2d, 12, (10.0, 40.0))
    land = land_field > np.quantile(land_field, 1 - LAND_SHARE)
    elevation = np.where(land, np.clip(600 + 600 * _static_field(rng, lat2d, lon2d), 0, 3000), 0.0)
    continentality = np.clip(0.5 + 0.35 * _static_field(rng, lat2d, lon2d), 0, 1)
    aridity = np.clip(0.25 + 0.25 * _static_field(rng, lat2d, lon2d) - 0.012 * (lat2d - 45), 0, 1)
    split = _static_field(rng, lat2d, lon2d, 10, (3.0, 12.0))

    t_annual = 36.0 - 0.5 * np.abs(lat2d) - 0.0065 * elevation + 3.0 * (aridity - 0.25)
    t_amp = 5.0 + 0.22 * (np.abs(lat2d) - 35) + 6.0 * continentality
    igbp = np.where(land, _igbp_from_climate(t_annual, aridity, split), 0).astype(np.int16)

    nirv_max = np.zeros_like(lat2d)
    lue_max = np.zeros_like(lat2d)
    albedo = np.full_like(lat2d, 0.07)  # open water
    evergreen = np.zeros(lat2d.shape, dtype=bool)
    for code, (_, vmax, eps, alb, ever) in IGBP_CLASSES.items():
        sel = igbp == code
        nirv_max[sel], lue_max[sel], albedo[sel], evergreen[sel] = vmax, eps, alb, ever

    w_temp = _weather_field(rng, lat2d, lon2d, nt)
    w_cloud = _weather_field(rng, lat2d, lon2d, nt, ar1=0.6)
    w_rain = _weather_field(rng, lat2d, lon2d, nt, ar1=0.3, wavelength_deg=(4.0, 15.0))

    season = np.cos(2 * np.pi * (doy - 20) / 365.25)[:, None, None]
    ta = t_annual - t_amp * season + 3.0 * w_temp
    cloud_base = -0.6 + 0.03 * (lat2d - 45) - 1.5 * aridity + 0.4 * season
    cloud = 1.0 / (1.0 + np.exp(-(cloud_base + 1.3 * w_cloud)))
    toa = toa_daily_radiation(lat2d[None], doy[:, None, None])
    sw_in = toa * (0.78 - 0.5 * cloud)
    ta_k = ta + KELVIN
    lw_in = (0.68 + 0.25 * cloud) * STEFAN_BOLTZMANN * ta_k**4
    rh = np.clip(0.45 + 0.4 * cloud - 0.25 * aridity + 0.05 * w_rain, 0.15, 0.98)
    vpd = 10.0 * saturation_vapour_pressure(ta) * (1.0 - rh)  # kPa -> hPa
    precip = np.maximum(0.0, 18.0 * (cloud - 0.55) * (1.0 + 0.8 * w_rain)) * (1.2 - aridity)

    # Sequential land-surface model: bucket soil water, NIRv, GPP, RECO, LE.
    shape = (nt,) + lat2d.shape
    out = {k: np.empty(shape, dtype=np.float32) for k in ("SWC", "NIRv", "GPP", "RECO", "LE")}
    bucket = np.full(lat2d.shape, 0.7 * BUCKET_CAPACITY)
    greenness = nirv_max * np.where(evergreen, 0.8, 0.3)
    delta_coef = physics.slope_saturation_vapour_pressure(ta)
    snow = ta < 0
    rn = physics.net_radiation(sw_in, lw_in, ta, np.where(snow & land, 0.5, albedo))
    avail = 0.95 * rn  # Rn - G, daily G taken as 5 % of Rn
    lam = latent_heat_of_vaporization(ta)
    ref_resp = 0.6 + 2.5 * nirv_max / 0.38  # [g C m-2 d-1] at 10 °C, tied to site productivity
    for t in range(nt):
        swc = 5.0 + 40.0 * bucket / BUCKET_CAPACITY  # [%]
        f_water = physics.water_scalar(swc)
        f_temp_green = 1.0 / (1.0 + np.exp(-(ta[t] - 6.0) / 2.5))
        floor = np.where(evergreen, 0.75, 0.15)
        target = nirv_max * (floor + (1 - floor) * f_temp_green * np.sqrt(f_water))
        greenness += (target - greenness) / 10.0
        fapar = physics.fapar_from_nirv(greenness)
        apar = physics.absorbed_par(sw_in[t], fapar)
        f_vpd = physics.vpd_scalar(vpd[t])
        if process_forms == "standard":
            gpp = physics.lue_gpp(lue_max, apar, physics.temperature_scalar(ta[t]), f_vpd, f_water)
            response = physics.lloyd_taylor(ta[t])
        else:  # a saturating light curve, a bell-shaped temperature response and Q10 respiration
            light = physics.rectangular_hyperbola(apar, lue_max, 2.2 * lue_max * 6.0)
            gpp = light * physics.gaussian_temperature_scalar(ta[t]) * f_vpd * np.sqrt(f_water)
            response = physics.q10_response(ta[t], ALTERNATIVE_Q10)
        reco = ref_resp * response * (0.35 + 0.65 * f_water) + 0.12 * gpp
        stress = 0.1 + 0.9 * f_water * (0.35 + 0.65 * fapar / physics.FAPAR_MAX)
        pt = physics.priestley_taylor(delta_coef[t], avail[t])
        le = np.where(snow[t], 0.3, 1.0) * pt * stress
        et_mm = le * 86400.0 / lam[t]
        bucket = np.clip(bucket + precip[t] - et_mm, 0.0, BUCKET_CAPACITY)
        out["SWC"][t], out["NIRv"][t], out["GPP"][t] = swc, greenness, gpp
        out["RECO"][t], out["LE"][t] = reco, le

    fields = {"TA": ta, "SW_IN": sw_in, "LW_IN": lw_in, "VPD": vpd, "P": precip, **out}
    fields = {k: v.astype(np.float32) for k, v in fields.items()}
    fields["H"] = (avail - fields["LE"]).astype(np.float32)
    fields["NEE"] = fields["RECO"] - fields["GPP"]
    fields["ET"] = (fields["LE"] * 86400.0 / lam).astype(np.float32)
    sea = ~land[None]
    for name in ("SWC", "NIRv", "GPP", "RECO", "LE", "H", "NEE", "ET"):
        fields[name] = np.where(sea, np.float32(np.nan), fields[name])
    # Satellite vegetation index with retrieval noise (the truth used the noise-free state).
    fields["NIRv"] = fields["NIRv"] + (0.008 * rng.standard_normal(shape)).astype(np.float32)
    return {"land": land, "elevation": elevation, "igbp": igbp, **fields}


def _place_towers(rng, lat, lon, land, igbp, n_sites, candidates=None):
    """Tower cells on land (and within ``candidates`` when given), weighted so rare IGBP classes are still sampled."""
    iy, ix = np.nonzero(land if candidates is None else land & candidates)
    if len(iy) < n_sites:
        raise ValueError(f"{len(iy)} candidate land cells for {n_sites} towers; widen tower_ta_quantiles")
    codes = igbp[iy, ix]
    counts = {c: (codes == c).sum() for c in np.unique(codes)}
    weight = np.array([counts[c] ** -0.6 for c in codes], dtype=float)
    pick = rng.choice(len(iy), size=n_sites, replace=False, p=weight / weight.sum())
    return iy[pick], ix[pick]


def _gap_mask(rng, n_time, long_outage: bool) -> np.ndarray:
    """True where a tower record is missing: scattered days, gap episodes, an optional outage."""
    gap = rng.random(n_time) < 0.08
    for _ in range(rng.integers(1, 4)):
        length = rng.integers(5, 31)
        start = rng.integers(0, max(1, n_time - length))
        gap[start : start + length] = True
    if long_outage:
        length = rng.integers(60, 121)
        start = rng.integers(0, max(1, n_time - length))
        gap[start : start + length] = True
    return gap


def _tower_records(rng, sim, time, iy, ix):
    """Observed daily fluxes and meteorology at the tower cells, with noise and gaps."""
    n_sites, nt = len(iy), len(time)
    at = {k: sim[k][:, iy, ix].T.astype(float) for k in ("GPP", "RECO", "LE", "H", "TA", "SW_IN", "VPD", "P")}
    # Measurement errors grow with flux magnitude (Richardson et al. 2006).
    nee_err = (0.3 + 0.08 * np.abs(at["RECO"] - at["GPP"])) * rng.standard_normal((n_sites, nt))
    reco_err = (0.2 + 0.06 * at["RECO"]) * rng.standard_normal((n_sites, nt))
    nee = at["RECO"] - at["GPP"] + nee_err
    reco = at["RECO"] + reco_err
    gpp = reco - nee  # partitioning: GPP = RECO - NEE, so errors are shared as in FLUXNET
    le = at["LE"] + (4.0 + 0.08 * np.abs(at["LE"])) * rng.standard_normal((n_sites, nt))
    h = at["H"] + (5.0 + 0.10 * np.abs(at["H"])) * rng.standard_normal((n_sites, nt))

    outage = rng.random(n_sites) < 0.12
    carbon_gap = np.array([_gap_mask(rng, nt, o) for o in outage])
    energy_gap = np.array([_gap_mask(rng, nt, o) for o in outage]) | carbon_gap & (rng.random((n_sites, nt)) < 0.5)
    records = {}
    for name, values, gap in (
        ("NEE", nee, carbon_gap),
        ("RECO", reco, carbon_gap),
        ("GPP", gpp, carbon_gap),
        ("LE", le, energy_gap),
        ("H", h, energy_gap),
    ):
        qc = np.where(gap, 0.0, np.clip(rng.beta(9.0, 1.5, (n_sites, nt)), 0.5, 1.0))
        records[name] = np.where(gap, np.nan, values)
        records[f"{name}_QC"] = qc
    met_gap = rng.random((n_sites, nt)) < 0.03
    records["TA"] = np.where(met_gap, np.nan, at["TA"] + 0.3 * rng.standard_normal((n_sites, nt)))
    records["SW_IN"] = np.where(
        met_gap, np.nan, np.maximum(0, at["SW_IN"] * (1 + 0.03 * rng.standard_normal((n_sites, nt))))
    )
    records["VPD"] = np.where(
        met_gap, np.nan, np.maximum(0, at["VPD"] * (1 + 0.05 * rng.standard_normal((n_sites, nt))))
    )
    records["P"] = np.where(met_gap, np.nan, at["P"])
    return records


def _attrs(name):
    a = variable_attrs(name)
    return {k: v for k, v in a.items() if k in ("long_name", "units", "standard_name")}


def make_world(
    seed: int = 0,
    *,
    lat_range: tuple[float, float] = (35.0, 70.0),
    lon_range: tuple[float, float] = (-10.0, 40.0),
    resolution: float = 0.5,
    start: str = "2020-01-01",
    end: str = "2020-12-31",
    n_sites: int = 60,
    tower_ta_quantiles: tuple[float, float] = (0.0, 1.0),
    process_forms: str = "standard",
) -> DemoWorld:
    """Generate the demo world: predictor cube, tower network and true flux grids.

    Parameters
    ----------
    seed : int
        Seed of every random draw; the same seed gives the same world.
    lat_range, lon_range : tuple of float
        Domain edges [degrees north, degrees east].
    resolution : float
        Grid spacing [degrees].
    start, end : str
        First and last day (inclusive), ISO dates; time steps are labelled at 12:00.
    n_sites : int
        Number of towers, placed on land cells.
    tower_ta_quantiles : tuple of float
        Place towers only on land cells whose annual mean air temperature lies
        between these quantiles [0-1] of all land cells: ``(0, 0.7)`` leaves
        the warmest 30 % of the land without towers, a network that covers only
        part of the climate space.  The default ``(0, 1)`` places them anywhere
        (and gives the same world as before the option existed).
    process_forms : {"standard", "alternative"}
        The flux models of the truth.  ``standard``: light-use-efficiency GPP
        with a trapezoidal temperature response and Lloyd–Taylor respiration
        (E0 = 309 K), the forms the hybrid baselines fit.  ``alternative``: a
        saturating (rectangular-hyperbola) light curve, a bell-shaped
        temperature response and Q10 respiration (Q10 = :data:`ALTERNATIVE_Q10`),
        to test hybrid models whose baseline does not match the truth.

    Returns
    -------
    DemoWorld
        ``cube`` (time, lat, lon) with TA [°C], SW_IN and LW_IN [W m-2], VPD [hPa],
        P [mm d-1], SWC [%], NIRv [-], and static ``land_mask``, ``IGBP``, ``elevation``;
        ``sites`` (site, time) with daily tower fluxes GPP, RECO, NEE [g C m-2 d-1],
        LE, H [W m-2], their ``_QC`` fractions and tower meteorology;
        ``truth`` (time, lat, lon) with the noise-free fluxes and ET [kg m-2 d-1].
    """
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if process_forms not in PROCESS_FORMS:
        raise ValueError(f"process_forms must be one of {PROCESS_FORMS}, got {process_forms!r}")
    lat = np.arange(lat_range[0] + resolution / 2, lat_range[1], resolution)
    lon = np.arange(lon_range[0] + resolution / 2, lon_range[1], resolution)
    # Days labelled at their middle (12:00), as the data contracts label every period.
    time = pd.date_range(start, end, freq="D") + pd.Timedelta(hours=12)
    if len(lat) < 2 or len(lon) < 2 or len(time) < 2:
        raise ValueError("the demo domain needs at least 2 cells in lat and lon and 2 days")
    sim = _simulate(lat, lon, time, seed, process_forms)
    coords = {
        "time": time,
        "lat": ("lat", lat, dict(COORDINATE_ATTRS["lat"])),
        "lon": ("lon", lon, dict(COORDINATE_ATTRS["lon"])),
    }
    dims3 = ("time", "lat", "lon")
    cube = xr.Dataset(
        {name: (dims3, sim[name], _attrs(name)) for name in ("TA", "SW_IN", "LW_IN", "VPD", "P", "SWC", "NIRv")},
        coords=coords,
    )
    cube["land_mask"] = (("lat", "lon"), sim["land"].astype(np.int8), _attrs("land_mask"))
    cube["IGBP"] = (
        ("lat", "lon"),
        sim["igbp"],
        {
            **_attrs("IGBP"),
            "flag_values": np.array(list(IGBP_CLASSES), dtype=np.int16),
            "flag_meanings": " ".join(v[0] for v in IGBP_CLASSES.values()),
        },
    )
    cube["elevation"] = (("lat", "lon"), sim["elevation"].astype(np.float32), _attrs("elevation"))
    source = f"uflux_xr.sources.demo.eager seed={seed}" + (
        "" if process_forms == "standard" else f" process_forms={process_forms}"
    )
    cube.attrs = {"title": "uflux-xr demo world predictor cube", "source": source}

    truth = xr.Dataset(
        {name: (dims3, sim[name], _attrs(name)) for name in ("GPP", "RECO", "NEE", "LE", "H", "ET")}, coords=coords
    )
    truth.attrs = {"title": "uflux-xr demo world true fluxes", "source": source}

    rng = np.random.default_rng(seed + 1)
    candidates = None
    if tuple(tower_ta_quantiles) != (0.0, 1.0):
        lo, hi = tower_ta_quantiles
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"tower_ta_quantiles must be 0 <= low < high <= 1, got {tower_ta_quantiles}")
        t_annual = sim["TA"].mean(axis=0)
        edges = np.quantile(t_annual[sim["land"]], [lo, hi])
        candidates = (t_annual >= edges[0]) & (t_annual <= edges[1])
    iy, ix = _place_towers(rng, lat, lon, sim["land"], sim["igbp"], n_sites, candidates)
    records = _tower_records(rng, sim, time, iy, ix)
    site_ids = [f"DW-{i + 1:03d}" for i in range(n_sites)]
    jitter = lambda n: rng.uniform(-0.45, 0.45, n) * resolution  # noqa: E731 - towers inside the cell
    sites = xr.Dataset(
        {
            name: (
                ("site", "time"),
                values.astype(np.float32),
                _attrs(name.removesuffix("_QC"))
                if not name.endswith("_QC")
                else {"long_name": f"fraction of good-quality records in the day for {name[:-3]}", "units": "1"},
            )
            for name, values in records.items()
        },
        coords={
            "site": site_ids,
            "time": time,
            "lat": ("site", lat[iy] + jitter(n_sites), {"units": "degrees_north"}),
            "lon": ("site", lon[ix] + jitter(n_sites), {"units": "degrees_east"}),
            "igbp": ("site", [IGBP_CLASSES[c][0] for c in sim["igbp"][iy, ix]]),
            "elevation": ("site", sim["elevation"][iy, ix], {"units": "m"}),
        },
    )
    sites.attrs = {"title": "uflux-xr demo world tower network (daily)", "source": source}
    return DemoWorld(cube, sites, truth)
