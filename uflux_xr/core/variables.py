"""Canonical variable names, units and CF metadata, and the unit conversions the
code is allowed to make.

The registry lives in ``data/variables.yaml`` (kept apart from the compute code,
as xclim does).  Code converts by the ``units`` attribute, never by assumption,
and refuses units it does not know.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
import xarray as xr
import yaml

from uflux_xr.core.constants import KELVIN, SECONDS_PER_DAY, UMOL_CO2_TO_GC_PER_DAY

# Spellings seen in FLUXNET, ERA5 and CF files, mapped to one canonical spelling.
_UNIT_ALIASES = {
    "degc": "degC",
    "deg c": "degC",
    "°c": "degC",
    "celsius": "degC",
    "degree_celsius": "degC",
    "c": "degC",
    "k": "K",
    "kelvin": "K",
    "w m-2": "W m-2",
    "w/m2": "W m-2",
    "w m^-2": "W m-2",
    "wm-2": "W m-2",
    "hpa": "hPa",
    "kpa": "kPa",
    "pa": "Pa",
    "mm": "mm",
    "mm d-1": "mm d-1",
    "mm/d": "mm d-1",
    "mm day-1": "mm d-1",
    "mm/day": "mm d-1",
    "%": "%",
    "percent": "%",
    "1": "1",
    "": "1",
    "-": "1",
    "dimensionless": "1",
    "nondimensional": "1",
    "m": "m",
    "m s-1": "m s-1",
    "m/s": "m s-1",
    "g m-2 d-1": "g m-2 d-1",
    "gc m-2 d-1": "g m-2 d-1",
    "g c m-2 d-1": "g m-2 d-1",
    "g m-2 day-1": "g m-2 d-1",
    "gc/m2/d": "g m-2 d-1",
    "umol m-2 s-1": "umol m-2 s-1",
    "µmol m-2 s-1": "umol m-2 s-1",
    "umolco2 m-2 s-1": "umol m-2 s-1",
    "umol co2 m-2 s-1": "umol m-2 s-1",
    "µmol co2 m-2 s-1": "umol m-2 s-1",
    "umol/m2/s": "umol m-2 s-1",
    "kg m-2 d-1": "kg m-2 d-1",
    "mw m-2 nm-1 sr-1": "mW m-2 nm-1 sr-1",
    "m3 m-3": "m3 m-3",
    "m**3 m**-3": "m3 m-3",
}

# (from, to) -> function on values.  Only conversions with a physical basis.
_CONVERSIONS = {
    ("K", "degC"): lambda x: x - KELVIN,
    ("degC", "K"): lambda x: x + KELVIN,
    ("kPa", "hPa"): lambda x: x * 10.0,
    ("hPa", "kPa"): lambda x: x / 10.0,
    ("Pa", "hPa"): lambda x: x / 100.0,
    ("Pa", "kPa"): lambda x: x / 1000.0,
    ("umol m-2 s-1", "g m-2 d-1"): lambda x: x * UMOL_CO2_TO_GC_PER_DAY,
    ("g m-2 d-1", "umol m-2 s-1"): lambda x: x / UMOL_CO2_TO_GC_PER_DAY,
    ("m3 m-3", "%"): lambda x: x * 100.0,
    ("%", "m3 m-3"): lambda x: x / 100.0,
}


class UnitsError(ValueError):
    """A variable has missing, unknown or unexpected units."""


class MissingVariableError(KeyError):
    """A variable or column a step needs is absent.

    A :class:`KeyError` (code that catches those keeps working) whose text is the message itself,
    not its Python repr in quotes.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@cache
def registry() -> dict:
    """The variable registry (fluxes, derived products, predictors) as a dict."""
    text = resources.files("uflux_xr").joinpath("core/data/variables.yaml").read_text()
    return yaml.safe_load(text)


def variable_attrs(name: str) -> dict:
    """CF attributes (long_name, units, standard_name, comment) of a canonical variable.

    Raises
    ------
    KeyError
        If ``name`` is not in the registry.
    """
    reg = registry()
    for section in ("fluxes", "derived", "predictors"):
        if name in reg[section]:
            return dict(reg[section][name])
    raise MissingVariableError(f"{name!r} is not a canonical uflux-xr variable; known: {sorted(known_names())}")


def known_names() -> set[str]:
    """All canonical variable names in the registry."""
    reg = registry()
    return set(reg["fluxes"]) | set(reg["derived"]) | set(reg["predictors"])


#: Carbon fluxes, whose sub-daily tower records are in µmol CO2 m-2 s-1 (the registry's units are the products').
CARBON_FLUXES_SUBDAILY_UNITS = "umol m-2 s-1"
#: Carbon fluxes: their amounts are of carbon (g C) or of CO2 (µmol CO2), which CF units cannot say.
CARBON_FLUXES = frozenset({"NEE", "GPP", "RECO"})
_MASS_PREFIXES = ("mg", "g", "kg", "Mg", "Gg", "Tg", "Pg")


def display_units(name: str, units: str) -> str:
    """``units`` of variable ``name`` as a reader expects them, with the element of a carbon flux.

    CF units (``g m-2 d-1``, ``Pg yr-1``, ``umol m-2 s-1``) stay in the files, where udunits reads
    them; figures, tables and reports show ``g C m-2 d-1``, ``Pg C yr-1``, ``µmol CO2 m-2 s-1``.
    Variants (``GPP_DT``, ``NEE_U50_f``, ``GPP_error``) count as their flux.

    Parameters
    ----------
    name : str
        Variable name.
    units : str
        Its units attribute.

    Returns
    -------
    str
        The units to show (unchanged for other variables).
    """
    parts = units.split()
    if not parts or name.split("_")[0] not in CARBON_FLUXES:
        return units
    if parts[0] in _MASS_PREFIXES:
        return " ".join([parts[0], "C", *parts[1:]])
    if parts[0] in ("umol", "µmol", "mol", "mmol"):
        return " ".join([parts[0].replace("umol", "µmol"), "CO2", *parts[1:]])
    return units


def subdaily_units(*names: str) -> dict[str, str]:
    """Units [as strings] each variable has in a sub-daily site dataset: the registry's, except the carbon
    fluxes (NEE, GPP, RECO), which towers record in µmol CO2 m-2 s-1.

    The one table of the units the tower wing's steps expect; they check their inputs against it
    (:func:`check_units`).

    Raises
    ------
    KeyError
        A name the registry does not know.
    """
    return {
        name: CARBON_FLUXES_SUBDAILY_UNITS if name in CARBON_FLUXES else variable_attrs(name)["units"] for name in names
    }


def is_categorical(name: str) -> bool:
    """Whether predictor ``name`` holds class codes (IGBP) rather than a quantity."""
    return name in registry().get("categorical", ())


def igbp_classes() -> dict[int, str]:
    """The IGBP land-cover classes as {code: abbreviation} (MODIS MCD12Q1 LC_Type1 codes 1-17,
    FLUXNET's abbreviations); one table for towers and cubes alike."""
    return {int(k): v for k, v in registry()["igbp"].items()}


def igbp_name(value) -> str:
    """The IGBP abbreviation (``"ENF"``) of a code (``1``) or of a spelling of the name.

    Unknown or missing values give ``"unknown"``; an unrecognised text raises.
    """
    classes = igbp_classes()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "unknown"
    if isinstance(value, int | np.integer) or (isinstance(value, float) and float(value).is_integer()):
        code = int(value)
        if code not in classes:
            raise ValueError(f"IGBP code {code} is not one of {sorted(classes)}")
        return classes[code]
    text = str(value).strip().upper()
    if text in ("", "UNKNOWN", "NAN", "NONE"):
        return "unknown"
    if text in classes.values():
        return text
    raise ValueError(f"unknown IGBP class {value!r}; expected one of {sorted(set(classes.values()))} or a code 1-17")


def igbp_code(value) -> int:
    """The IGBP code (1-17) of an abbreviation or code; ``"unknown"`` raises."""
    name = igbp_name(value)
    if name == "unknown":
        raise ValueError(f"no IGBP class for {value!r}")
    return {v: k for k, v in igbp_classes().items()}[name]


def canonical_units(units: str | None) -> str | None:
    """Canonical spelling of a units string, or None when it is not recognised."""
    if units is None:
        return None
    return _UNIT_ALIASES.get(str(units).strip().lower())


def convert_values(values, from_units: str, to_units: str):
    """Convert values between two units the registry knows.

    Parameters
    ----------
    values : array-like
        Values in ``from_units``.
    from_units, to_units : str
        Units strings (any known spelling).

    Raises
    ------
    UnitsError
        If either unit is unknown or no conversion between them exists.
    """
    src, dst = canonical_units(from_units), canonical_units(to_units)
    if src is None or dst is None:
        bad = from_units if src is None else to_units
        raise UnitsError(f"unknown units {bad!r}")
    if src == dst:
        return values
    try:
        return _CONVERSIONS[(src, dst)](values)
    except KeyError:
        raise UnitsError(f"no conversion from {from_units!r} to {to_units!r}") from None


def can_convert(from_units: str, to_units: str) -> bool:
    """Whether :func:`convert_values` converts between these units."""
    src, dst = canonical_units(from_units), canonical_units(to_units)
    return src is not None and dst is not None and (src == dst or (src, dst) in _CONVERSIONS)


def check_units(ds: xr.Dataset, expected: dict[str, str], *, user: str) -> None:
    """Refuse a variable present in ``ds`` whose known units differ from ``expected`` (name → units).

    ``user`` names what reads them, for the message ("MDS", "the u* threshold").
    Variables that are absent, or whose units are not recognised, pass.
    """
    for name, units in expected.items():
        if name not in ds:
            continue
        have = canonical_units(ds[name].attrs.get("units"))
        if have is not None and have != units:
            raise UnitsError(f"{name!r} is in {ds[name].attrs.get('units')!r}; {user} expects {units!r}")


def ensure_units(da: xr.DataArray, expected: str, *, name: str, source: str) -> xr.DataArray:
    """Return ``da`` in ``expected`` units, converting when a known conversion exists.

    Parameters
    ----------
    da : xarray.DataArray
        Variable with a ``units`` attribute.
    expected : str
        Units the caller works in.
    name : str
        Variable name, for the error message.
    source : str
        Where the variable came from (file name or "site dataset"), for the error message.

    Raises
    ------
    UnitsError
        When ``units`` is missing, unknown, or cannot be converted to ``expected``.
    """
    units = da.attrs.get("units")
    if units is None:
        raise UnitsError(f"{source}: variable {name!r} has no 'units' attribute; expected {expected!r}")
    if canonical_units(units) is None:
        raise UnitsError(f"{source}: variable {name!r} has unknown units {units!r}; expected {expected!r}")
    try:
        out = convert_values(da, units, expected)
    except UnitsError:
        raise UnitsError(
            f"{source}: variable {name!r} is in {units!r}, which cannot be converted to {expected!r}"
        ) from None
    out = out.copy() if out is da else out
    out.attrs = {**da.attrs, "units": expected}
    return out


def latent_heat_of_vaporization(ta):
    """Latent heat of vaporisation of water λ [J kg-1] at air temperature ``ta`` [°C].

    λ(T) = (2.501 − 0.002361 T) × 10⁶ (Allen et al. 1998, FAO-56, eq. 3-1 style
    linearisation; Henderson-Sellers 1984 gives near-identical values).
    """
    ta = ta if isinstance(ta, xr.DataArray) else np.asarray(ta)
    return (2.501 - 0.002361 * ta) * 1e6


def le_to_et(le, ta, seconds: float = SECONDS_PER_DAY):
    """Evapotranspiration [kg m-2 (= mm) per period] from latent heat flux.

    Parameters
    ----------
    le : array-like
        Latent heat flux [W m-2], mean over the period.
    ta : array-like
        Air temperature [°C] for λ(T).
    seconds : float
        Length of the period [s]; 86400 for daily values, 1800 for half-hourly.
    """
    return le * seconds / latent_heat_of_vaporization(ta)
