"""Physics formulas, each written once: humidity, vegetation indices, radiation balance, and the process
forms shared by the demo worlds, the hybrid baselines and the partitioning.

One place for saturation vapour pressure and VPD (FAO-56), NIRv and EVI2, net radiation, the
light-use-efficiency GPP model, the respiration temperature responses (Lloyd–Taylor, Q10) and the
Priestley–Taylor evaporation, so the demo truth
(:mod:`uflux_xr.sources.demo.eager`, :mod:`uflux_xr.sources.demo.lazy`) and the baselines the
hybrid models fit (:mod:`uflux_xr.models.hybrid`) use the same forms with
the same constants.  Pure numpy functions: they broadcast over arrays and work
on xarray objects too.  The defaults are the demo world's coefficients.
"""

from __future__ import annotations

import numpy as np

from uflux_xr.core.constants import KELVIN, PSYCHROMETRIC_CONSTANT, STEFAN_BOLTZMANN

#: Share of shortwave radiation that is photosynthetically active [-] and MJ per W m-2 day.
PAR_FRACTION = 0.45
MJ_PER_W_DAY = 0.0864
#: Lloyd & Taylor (1994) reference and base temperatures [°C] (their eq. 11, T0 = −46.02 °C).
LLOYD_TAYLOR_T_REF = 10.0
LLOYD_TAYLOR_T0 = -46.02


def saturation_vapour_pressure(t):
    """Saturation vapour pressure es [kPa] over water at temperature ``t`` [°C].

    FAO-56 (Allen et al. 1998) eq. 11: es = 0.6108 exp(17.27 T / (T + 237.3)).
    """
    return 0.6108 * np.exp(17.27 * t / (t + 237.3))


def vpd_from_dewpoint(ta, td):
    """Vapour pressure deficit [hPa] from air temperature ``ta`` and dew point ``td`` [°C].

    VPD = es(TA) − es(Td) (FAO-56 eqs. 11 and 14), × 10 hPa kPa-1.
    """
    return 10.0 * (saturation_vapour_pressure(ta) - saturation_vapour_pressure(td))


def nirv(ndvi, nir):
    """Near-infrared reflectance of vegetation [-], NDVI × NIR (Badgley et al. 2017)."""
    return ndvi * nir


def evi2(nir, red):
    """Two-band enhanced vegetation index [-], 2.5 (NIR − Red) / (NIR + 2.4 Red + 1) (Jiang et al. 2008)."""
    return 2.5 * (nir - red) / (nir + 2.4 * red + 1.0)


def water_scalar(swc, wilting=9.0, field_capacity=30.0):
    """Soil-water limitation [0–1]: 0 at or below ``wilting``, 1 at or above ``field_capacity`` [%], linear between."""
    return np.clip((swc - wilting) / (field_capacity - wilting), 0.0, 1.0)


#: Largest fAPAR of :func:`fapar_from_nirv` [-].
FAPAR_MAX = 0.95


def fapar_from_nirv(nirv, slope=2.3, fapar_max=FAPAR_MAX):
    """Fraction of absorbed PAR [0–``fapar_max``] as a linear function of NIRv [-] (``slope`` [-])."""
    return np.clip(slope * nirv, 0.0, fapar_max)


def absorbed_par(sw_in, fapar):
    """Absorbed photosynthetically active radiation [MJ m-2 d-1] from daily mean SW_IN [W m-2] and fAPAR [-]."""
    return PAR_FRACTION * np.maximum(sw_in, 0.0) * MJ_PER_W_DAY * fapar


def temperature_scalar(ta, t_min=-2.0, t_opt=12.0, t_high=30.0, t_max=40.0):
    """Trapezoidal temperature limitation of light-use efficiency [0–1].

    Rises linearly from 0 at ``t_min`` to 1 at ``t_opt``, stays at 1 up to
    ``t_high`` and falls to 0 at ``t_max`` (all [°C]).
    """
    return np.clip((ta - t_min) / (t_opt - t_min), 0.0, 1.0) * np.clip((t_max - ta) / (t_max - t_high), 0.0, 1.0)


def gaussian_temperature_scalar(ta, t_opt=20.0, width=12.0):
    """Bell-shaped temperature limitation [0–1]: exp(−((T − T_opt) / width)²), temperatures [°C]."""
    return np.exp(-(((ta - t_opt) / width) ** 2))


def rectangular_hyperbola(apar, alpha, p_max):
    """Light response saturating at ``p_max`` [g C m-2 d-1] with initial slope ``alpha`` [g C MJ-1]:
    α APAR P_max / (α APAR + P_max), APAR [MJ m-2 d-1] (Michaelis–Menten form, e.g. Lasslop et al. 2010)."""
    with np.errstate(invalid="ignore"):  # NaN drivers give NaN
        denominator = alpha * apar + p_max
        positive = denominator > 0
        return np.where(positive, alpha * apar * p_max / np.where(positive, denominator, 1.0), 0.0)  # water: 0


def vpd_scalar(vpd, onset=5.0, span=30.0, floor=0.1):
    """VPD limitation of light-use efficiency [``floor``–1].

    1 below ``onset`` [hPa], falling linearly by 1 over ``span`` [hPa], never below ``floor``.
    """
    return np.clip(1.0 - (vpd - onset) / span, floor, 1.0)


def lue_gpp(epsilon, apar, f_temperature, f_vpd, f_water):
    """Light-use-efficiency GPP [g C m-2 d-1] (Monteith 1972; Running et al. 2004).

    ``epsilon`` [g C MJ-1] × APAR [MJ m-2 d-1] × temperature and VPD scalars
    × the square root of the water scalar (all [0–1]).
    """
    return epsilon * apar * f_temperature * f_vpd * np.sqrt(f_water)


def lloyd_taylor(ta, e0=309.0, t_ref=LLOYD_TAYLOR_T_REF, t0=LLOYD_TAYLOR_T0):
    """Lloyd & Taylor (1994) respiration response [-], 1 at ``t_ref``.

    exp(E0 (1 / (Tref − T0) − 1 / (T − T0))), ``ta``, ``t_ref``, ``t0`` [°C],
    ``e0`` [K].  Undefined (NaN) at and below T0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(e0 * (1.0 / (t_ref - t0) - 1.0 / (ta - t0)))


def q10_response(ta, q10=2.0, t_ref=LLOYD_TAYLOR_T_REF):
    """Q10 respiration response [-], 1 at ``t_ref``: Q10^((T − Tref) / 10), temperatures [°C]."""
    return q10 ** ((ta - t_ref) / 10.0)


def slope_saturation_vapour_pressure(ta, es=None):
    """Slope of the saturation vapour pressure curve Δ [kPa K-1] at ``ta`` [°C] (FAO-56 eq. 13).

    ``es`` [kPa], the saturation vapour pressure at ``ta``, is computed when not given.
    """
    if es is None:
        es = saturation_vapour_pressure(ta)
    return 4098.0 * es / (ta + 237.3) ** 2


def net_radiation(sw_in, lw_in, ta, albedo, emissivity=0.97, lw_absorptivity=1.0):
    """Net radiation [W m-2]: absorbed short wave and long wave minus the emission of a surface at ``ta``.

    Rn = (1 − albedo) SW_IN + a LW_IN − ε σ T⁴ (T = TA in kelvin).  The defaults are the demo world's (ε 0.97, the
    incoming long wave absorbed whole); FAO-56's reference surface (:func:`uflux_xr.site.gapfill.fao_pm.
    net_radiation`) passes ε = a = 0.98, Kirchhoff's law for a grey surface.

    Parameters
    ----------
    sw_in, lw_in : array-like
        Incoming short- and long-wave radiation [W m-2].
    ta : array-like
        Air (surface) temperature [°C].
    albedo : array-like
        Surface albedo [1].
    emissivity : float
        Surface emissivity ε [1].
    lw_absorptivity : float
        Share of the incoming long wave absorbed [1].
    """
    return (1 - albedo) * sw_in + lw_absorptivity * lw_in - emissivity * STEFAN_BOLTZMANN * (ta + KELVIN) ** 4


def priestley_taylor(delta, available_energy, alpha=1.26):
    """Priestley & Taylor (1972) latent heat flux [W m-2] from Δ [kPa K-1] and Rn − G [W m-2].

    α Δ / (Δ + γ) × max(Rn − G, 0); α = 1.26 for a wet surface.
    """
    return alpha * delta / (delta + PSYCHROMETRIC_CONSTANT) * np.maximum(available_energy, 0)
