"""The gap-filling methods and their options, in one registry.

Each method has a frozen options dataclass (its keywords in
:func:`uflux_xr.site.gapfill.gapfill`, with their defaults and units) and
declares the drivers it reads with the units it expects, which
:func:`check_driver_units` checks in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from uflux_xr.core.suggest import did_you_mean
from uflux_xr.core.variables import check_units, subdaily_units


@dataclass(frozen=True)
class MDSOptions:
    """Marginal distribution sampling.

    Attributes
    ----------
    convention : {"reddyproc", "hesseflux"}
        ``reddyproc``: REddyProc's windows, step order, quality codes and
        driver handling (:mod:`uflux_xr.site.gapfill.mds_reddyproc`); ``hesseflux``:
        hesseflux's (:mod:`uflux_xr.site.gapfill.mds_hesseflux`).
    sw_dev, ta_dev, vpd_dev : float
        Similarity tolerances [W m-2, °C, hPa] (REddyProc T1, T3, T2).
    long_gap : float
        Gaps longer than this [days] stay unfilled, leading and trailing ones
        included (REddyProc ``sFillInit``, hesseflux ``longgap``: 60).
    edge_gaps : {"skip", "fill_near_data"}
        ``skip``: a leading or trailing gap longer than ``long_gap`` is left
        whole (REddyProc, hesseflux); ``fill_near_data``: its part within
        ``long_gap`` days of the first or last measurement is filled, as the
        MPI-BGC online tool did (2,879 half-hours of a 187-day leading gap).
    fill_all : bool
        ``reddyproc``: run measured records through the look-up as well, so
        ``_fsd``, ``_fnum`` and ``_fall`` describe every record (REddyProc's
        ``FillAll = TRUE``, its default).
    statistics : {"reichstein05", "vekuri23"}
        ``reddyproc``: mean of the matches (Reichstein et al. 2005) or the
        skewness-corrected mean of Vekuri et al. (2023).
    fill_drivers : bool
        Fill SW_IN, TA and VPD with MDS first and match on the filled
        drivers.  Neither REddyProc nor hesseflux does (both read the drivers
        as measured); True gives a fill where a driver is missing at the gap.
    """

    convention: Literal["reddyproc", "hesseflux"] = "reddyproc"
    sw_dev: float = 50.0
    ta_dev: float = 2.5
    vpd_dev: float = 5.0
    long_gap: float = 60.0
    edge_gaps: Literal["skip", "fill_near_data"] = "skip"
    fill_all: bool = True
    statistics: Literal["reichstein05", "vekuri23"] = "reichstein05"
    fill_drivers: bool = False

    def __post_init__(self):
        _check_choice(self, "convention", ("reddyproc", "hesseflux"))
        _check_choice(self, "edge_gaps", ("skip", "fill_near_data"))
        _check_choice(self, "statistics", ("reichstein05", "vekuri23"))
        if self.convention == "hesseflux" and self.statistics != "reichstein05":
            raise ValueError("statistics='vekuri23' is REddyProc's; use it with convention='reddyproc'")


@dataclass(frozen=True)
class MDVOptions:
    """Mean diurnal variation: the same time of day within ±``window`` days [days]."""

    window: int = 7


@dataclass(frozen=True)
class FAOPMOptions:
    """FAO-56 Penman-Monteith: half-width of the crop-coefficient window ``kc_window`` [days]."""

    kc_window: int = 7


@dataclass(frozen=True)
class KalmanOptions:
    """Kalman smoother: ``kc_window`` as FAO-PM [days], ``window`` the MDV half-width [days]."""

    kc_window: int = 7
    window: int = 3


@dataclass(frozen=True)
class LearnedOptions:
    """ML (tree ensemble) and SVR fills.

    Attributes
    ----------
    train_years : "all", "nearest" or list of int
        Years whose measurements train the model filling each gap year.
    n_nearest : int
        With ``train_years="nearest"``: how many other years.
    drivers : tuple of str, optional
        Default: those present among :data:`uflux_xr.site.gapfill.ml.CANDIDATE_DRIVERS`.
    antecedent_days : tuple of int
        Trailing-mean windows [days] added as features.
    time_trend : bool
        Add the time in years as a feature.
    model : str
        ML: registered model kind.
    members : int
        ML: ensemble members (seeds); their spread is ``_fsd``.
    max_train : int
        SVR: at most this many training rows.
    params : dict, optional
        Model options.
    """

    train_years: str | tuple = "all"
    n_nearest: int = 2
    drivers: tuple | None = None
    antecedent_days: tuple = ()
    time_trend: bool = False
    model: str = "lightgbm"
    members: int = 3
    max_train: int = 5000
    params: dict | None = None


@dataclass(frozen=True)
class Method:
    """A registered gap-filling method: its options and the drivers it reads [units]."""

    options: type
    drivers: dict


#: Units of every driver a method may read.
DRIVER_UNITS = subdaily_units("SW_IN", "TA", "VPD", "NETRAD", "LW_IN", "PA", "WS")

METHODS: dict[str, Method] = {
    "mds": Method(MDSOptions, {d: DRIVER_UNITS[d] for d in ("SW_IN", "TA", "VPD")}),
    "mdv": Method(MDVOptions, {}),
    "fao_pm": Method(FAOPMOptions, {d: DRIVER_UNITS[d] for d in ("TA", "VPD", "NETRAD", "SW_IN", "LW_IN", "PA", "WS")}),
    "kalman": Method(
        KalmanOptions, {d: DRIVER_UNITS[d] for d in ("TA", "VPD", "NETRAD", "SW_IN", "LW_IN", "PA", "WS")}
    ),
    "ml": Method(LearnedOptions, {}),
    "svr": Method(LearnedOptions, {}),
}


def options_from_keywords(cls: type, options: dict, what: str):
    """``cls(**options)``; an unknown keyword is an error naming ``what`` and the valid options."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        named = ", ".join(f"{key!r}{did_you_mean(key, known)}" for key in unknown)
        raise TypeError(f"{what} has no option(s) {named}; its options: {sorted(known)}")
    return cls(**options)


def method_options(method: str, options: dict):
    """The options dataclass of ``method`` built from keywords; unknown keywords are an error."""
    if method not in METHODS:
        raise ValueError(f"unknown gap-filling method {method!r}; implemented: {list(METHODS)}")
    return options_from_keywords(METHODS[method].options, options, f"gap-filling method {method!r}")


def check_driver_units(ds, method: str) -> None:
    """Refuse a driver present in ``ds`` in other units than ``method`` expects."""
    check_units(ds, METHODS[method].drivers, user=method.upper().replace("_", "-"))


def _check_choice(options, name: str, choices: tuple) -> None:
    value = getattr(options, name)
    if value not in choices:
        raise ValueError(f"{type(options).__name__}.{name} must be one of {list(choices)}, got {value!r}")
