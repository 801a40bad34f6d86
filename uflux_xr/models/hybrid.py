"""Process baselines for hybrid models: a physical model with a few fitted
parameters, to which a tree model adds what the physics misses.

A hybrid model of a flux is ``baseline(drivers; θ) + tree(features)``.  The
parameters θ are fitted first, by least squares on the training rows only
(so in cross-validation they never see the held-out towers); the tree then
learns the residual.  Outside the towers' climate the trees of a pure model
stay flat at the value of the nearest leaf, while the baseline carries its
functional form (warmer, more respiration) and the residual's trees only
correct it.  The fitted parameters (ε, E0 or Q10, the Priestley–Taylor α)
are in the model file and in the product's attributes.

Forms (the shapes are those of :mod:`uflux_xr.core.physics`, shared with the demo
worlds):

``lue`` (GPP)
    ε · fAPAR(NIRv) · PAR · f_T(TA; T_opt) · f_VPD(VPD; span) · √f_W(SWC)
    (Monteith 1972; Running et al. 2004).  Without NIRv, fAPAR is 1 and ε an
    effective efficiency; without SWC, f_W is 1.  Where the year's peak
    greenness ``NIRv_MAX`` is a feature, ε = ε_0 + ε_G · NIRv_MAX (ε_G ≥ 0):
    canopy nitrogen, and with it the maximum light-use efficiency, rises with
    the canopy's near-infrared reflectance (Ollinger et al. 2008, PNAS 105,
    19336; Kergoat et al. 2008, JGR 113, G04017), so one efficiency need not
    serve every biome as MOD17's per-biome table does.
``lloyd_taylor`` / ``q10`` (RECO)
    (R_ref + R_NIRv · G) · g(TA) · (1 − w + w · f_W(SWC)) + r_APAR · APAR,
    with g the Lloyd & Taylor (1994) response (E0 [K], T_ref 10 °C,
    T0 −46.02 °C) or Q10^((TA − 10) / 10).  G, the greenness that scales
    the basal rate, is the year's peak ``NIRv_MAX`` where it is a feature
    (as LAI_max in Migliavacca et al. 2011, whose model this is with NIRv for
    LAI and absorbed light for GPP), else the current NIRv.  The NIRv, SWC
    and APAR terms only where those drivers are features.
``priestley_taylor`` (LE, or ET in kg m-2 d-1)
    α · Δ/(Δ + γ) · max(0.95 Rn, 0) · (1 − w + w · f_W(SWC))
    · (1 − v + v · f_G(NIRv)) (Priestley & Taylor 1972), Rn = (1 − albedo)
    SW_IN + LW_IN − 0.97 σ TA⁴; without LW_IN, Rn = (1 − albedo) SW_IN + L_net
    with a fitted net longwave L_net.  f_G = fAPAR / fAPAR_max is the green
    canopy fraction that scales transpiration in PT-JPL (Fisher et al. 2008,
    RSE 112, 901); without NIRv the factor is 1.
``energy_balance`` (H)
    0.95 Rn minus the Priestley–Taylor LE above.
``lue_lloyd_taylor`` (NEE)
    Lloyd–Taylor respiration minus LUE GPP.  Where the training rows hold
    enough nights (SW_IN < 10 W m-2, REddyProc's night; at least a tenth of
    the rows, as in sub-daily records), the respiration is
    fitted on the nights first and the LUE terms on all rows after, as
    night-time partitioning does (Reichstein et al. 2005); else both together.

Scale parameters (ε, R_ref, α) absorb the units of the target: a half-hourly
GPP in µmol m-2 s-1 gets an ε in those units per MJ m-2 d-1 of APAR.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from uflux_xr.core import physics
from uflux_xr.core.constants import SECONDS_PER_DAY
from uflux_xr.core.variables import canonical_units, latent_heat_of_vaporization, subdaily_units

log = logging.getLogger(__name__)

#: Units each baseline driver must be in (checked when the table states its units).
DRIVER_UNITS = subdaily_units("TA", "SW_IN", "LW_IN", "VPD", "SWC", "NIRv", "NIRv_MAX")

#: Global radiation below which a row is night [W m-2] (REddyProc's ``Rg < 10``, sEddyProc_sMRFluxPartition).
NIGHT_SW_IN = 10.0
#: Nights a night-time respiration fit needs, per parameter it fits, and as a share of the rows: sub-daily
#: records are up to half nights (17 % of CH-Dav's measured half-hours, after u* filtering), while a
#: daily record's dark days (1.8 % of the demo world's tower days, all in high-latitude winters) span too
#: little of the year to fix a temperature response.
NIGHT_ROWS_PER_PARAMETER = 25
NIGHT_MIN_SHARE = 0.1

#: The baseline each flux gets with ``baseline="auto"``.
DEFAULT_BASELINES = {
    "GPP": "lue",
    "RECO": "lloyd_taylor",
    "NEE": "lue_lloyd_taylor",
    "LE": "priestley_taylor",
    "ET": "priestley_taylor",
    "H": "energy_balance",
}

#: How a tree model completes the baseline: ``additive``, prediction = baseline + trees (trained on
#: y − baseline); ``multiplicative``, prediction = baseline × trees (trained on y / baseline with
#: weights baseline², which minimises the same squared error as y − baseline × trees).
RESIDUAL_MODES = ("additive", "multiplicative")
#: Baselines whose trees multiply by default (``residual="auto"``): a respiration's reference rate is a
#: scale of the temperature response (Rb(x) f(T), as in Reichstein et al. 2022's hybrid Q10 model).
MULTIPLICATIVE_BY_DEFAULT = ("lloyd_taylor", "q10")


class BaselineError(ValueError):
    """A baseline cannot be fitted: unknown form, missing driver, wrong units, no usable rows."""


@dataclass(frozen=True)
class Parameter:
    """One fitted parameter: its name, units, start value and bounds."""

    name: str
    units: str
    initial: float
    lower: float
    upper: float
    # The optional drivers without which the parameter is left out; "A|B": either will do.
    needs: tuple[str, ...] = ()


Columns = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class BaselineForm:
    """A process baseline: which drivers it reads, which parameters it fits, and the function."""

    name: str
    description: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    scales: tuple[str, ...]  # parameters the output is proportional to, together: started from a linear fit
    site_scaled: bool  # output = scale x shape, so the shape can be fitted within sites (see fit_baseline)
    function: Callable[[dict[str, float], Columns, str], np.ndarray] = field(repr=False)
    # Parameters of a respiration term that is all of the output at night (see fit_baseline).
    night: tuple[str, ...] = ()

    def active_parameters(self, drivers) -> tuple[Parameter, ...]:
        """The parameters that apply with these drivers present."""
        return tuple(p for p in self.parameters if all(any(d in drivers for d in n.split("|")) for n in p.needs))


def _water_factor(p: dict[str, float], c: Columns):
    """1 − w + w f_W(SWC), or 1 without SWC."""
    if "SWC" not in c:
        return 1.0
    return 1.0 - p["water_weight"] + p["water_weight"] * physics.water_scalar(c["SWC"])


def _gpp(p: dict[str, float], c: Columns, target: str):
    fapar = physics.fapar_from_nirv(c["NIRv"]) if "NIRv" in c else 1.0
    f_water = physics.water_scalar(c["SWC"]) if "SWC" in c else 1.0
    f_t = physics.temperature_scalar(c["TA"], t_opt=p["t_opt"])
    epsilon = p["epsilon"] + (p["epsilon_nirv_max"] * c["NIRv_MAX"] if "epsilon_nirv_max" in p else 0.0)
    return physics.lue_gpp(
        epsilon,
        physics.absorbed_par(c["SW_IN"], fapar),
        f_t,
        physics.vpd_scalar(c["VPD"], span=p["vpd_span"]),
        f_water,
    )


def _respiration(response: str):
    def reco(p: dict[str, float], c: Columns, target: str):
        greenness = c.get("NIRv_MAX", c.get("NIRv"))
        base = p["r_ref"] + (p["r_nirv"] * greenness if greenness is not None else 0.0)
        if response == "lloyd_taylor":
            g = physics.lloyd_taylor(c["TA"], e0=p["e0"])
        else:
            g = physics.q10_response(c["TA"], q10=p["q10"])
        autotrophic = (
            p["r_apar"] * physics.absorbed_par(c["SW_IN"], physics.fapar_from_nirv(c["NIRv"])) if "r_apar" in p else 0.0
        )
        return base * g * _water_factor(p, c) + autotrophic

    return reco


def _net_radiation(p: dict[str, float], c: Columns):
    if "LW_IN" in c:
        return physics.net_radiation(c["SW_IN"], c["LW_IN"], c["TA"], p["albedo"])
    return (1 - p["albedo"]) * c["SW_IN"] + p["lw_net"]


def _latent(p: dict[str, float], c: Columns, target: str):
    available = 0.95 * _net_radiation(p, c)  # Rn - G, G taken as 5 % of Rn (as the demo world)
    le = physics.priestley_taylor(physics.slope_saturation_vapour_pressure(c["TA"]), available, p["alpha"])
    le = le * _water_factor(p, c)
    if "vegetation_weight" in p:
        green = physics.fapar_from_nirv(c["NIRv"]) / physics.FAPAR_MAX
        le = le * (1.0 - p["vegetation_weight"] + p["vegetation_weight"] * green)
    if target == "ET":  # W m-2 -> kg m-2 d-1
        return le * SECONDS_PER_DAY / latent_heat_of_vaporization(c["TA"])
    return le


def _sensible(p: dict[str, float], c: Columns, target: str):
    return 0.95 * _net_radiation(p, c) - _latent(p, c, "LE")


_lloyd_taylor_reco = _respiration("lloyd_taylor")
_q10_reco = _respiration("q10")


def _nee(p: dict[str, float], c: Columns, target: str):
    return _lloyd_taylor_reco(p, c, "RECO") - _gpp(p, c, "GPP")


_EPSILON = Parameter("epsilon", "g C MJ-1", 1.0, 1e-4, 1e4)
# Efficiency gained per unit of peak NIRv; not negative (more canopy nitrogen, more efficiency, Ollinger 2008).
_EPSILON_PEAK = Parameter("epsilon_nirv_max", "g C MJ-1", 1.0, 0.0, 1e4, needs=("NIRv_MAX",))
_T_OPT = Parameter("t_opt", "degC", 12.0, 2.0, 30.0)
_VPD_SPAN = Parameter("vpd_span", "hPa", 30.0, 5.0, 200.0)
# Respiration at 10 degC is not negative and does not fall with greenness (bare soil, NIRv 0, respires
# least): unbounded, a pooled fit of half-hourly NEE without NIRv at CH-Dav gave R_ref -0.36 with E0 590 K,
# the respiration term bending the light response instead.
_R_REF = Parameter("r_ref", "target units", 1.0, 0.0, 1e4)  # at 10 degC
_R_NIRV = Parameter("r_nirv", "target units", 1.0, 0.0, 1e4, needs=("NIRv|NIRv_MAX",))
# Autotrophic respiration in proportion to absorbed light, a proxy of GPP (Ra ~ 0.5 GPP, Waring et al. 1998).
_R_APAR = Parameter("r_apar", "target units per MJ m-2 d-1", 0.05, 0.0, 1e3, needs=("NIRv", "SW_IN"))
_E0 = Parameter("e0", "K", 200.0, 10.0, 1000.0)
_Q10 = Parameter("q10", "1", 2.0, 1.0, 10.0)
_WATER = Parameter("water_weight", "1", 0.5, 0.0, 1.0, needs=("SWC",))
_ALPHA = Parameter("alpha", "1", 1.0, 1e-3, 1e3)
_VEGETATION = Parameter("vegetation_weight", "1", 0.5, 0.0, 1.0, needs=("NIRv",))
_ALBEDO = Parameter("albedo", "1", 0.15, 0.02, 0.6)
_LW_NET = Parameter("lw_net", "W m-2", -50.0, -300.0, 100.0, needs=("no LW_IN",))

BASELINES: dict[str, BaselineForm] = {
    form.name: form
    for form in (
        BaselineForm(
            "lue",
            "light-use efficiency GPP",
            ("SW_IN", "TA", "VPD"),
            ("NIRv", "NIRv_MAX", "SWC"),
            (_EPSILON, _EPSILON_PEAK, _T_OPT, _VPD_SPAN),
            ("epsilon", "epsilon_nirv_max"),
            True,
            _gpp,
        ),
        BaselineForm(
            "lloyd_taylor",
            "Lloyd-Taylor respiration",
            ("TA",),
            ("NIRv", "NIRv_MAX", "SWC", "SW_IN"),
            (_R_REF, _R_NIRV, _E0, _WATER, _R_APAR),
            ("r_ref", "r_nirv"),
            True,
            _lloyd_taylor_reco,
        ),
        BaselineForm(
            "q10",
            "Q10 respiration",
            ("TA",),
            ("NIRv", "NIRv_MAX", "SWC", "SW_IN"),
            (_R_REF, _R_NIRV, _Q10, _WATER, _R_APAR),
            ("r_ref", "r_nirv"),
            True,
            _q10_reco,
        ),
        BaselineForm(
            "priestley_taylor",
            "Priestley-Taylor evaporation",
            ("SW_IN", "TA"),
            ("LW_IN", "SWC", "NIRv"),
            (_ALPHA, _ALBEDO, _LW_NET, _WATER, _VEGETATION),
            ("alpha",),
            True,
            _latent,
        ),
        BaselineForm(
            "energy_balance",
            "available energy minus Priestley-Taylor LE",
            ("SW_IN", "TA"),
            ("LW_IN", "SWC", "NIRv"),
            (_ALPHA, _ALBEDO, _LW_NET, _WATER, _VEGETATION),
            (),
            False,
            _sensible,
        ),
        BaselineForm(
            "lue_lloyd_taylor",
            "Lloyd-Taylor respiration minus light-use efficiency GPP",
            ("SW_IN", "TA", "VPD"),
            ("NIRv", "NIRv_MAX", "SWC"),
            (_EPSILON, _EPSILON_PEAK, _T_OPT, _VPD_SPAN, _R_REF, _R_NIRV, _E0, _WATER),
            ("epsilon", "epsilon_nirv_max", "r_ref", "r_nirv"),
            False,
            _nee,
            night=("r_ref", "r_nirv", "e0", "water_weight"),
        ),
    )
}


def get_baseline(name: str, target: str) -> BaselineForm:
    """The baseline form called ``name`` (``"auto"``: the default for ``target``, see :data:`DEFAULT_BASELINES`)."""
    if name == "auto":
        if target not in DEFAULT_BASELINES:
            raise BaselineError(
                f"no default baseline for {target!r}; name one of {sorted(BASELINES)} (defaults exist for "
                f"{sorted(DEFAULT_BASELINES)})"
            )
        name = DEFAULT_BASELINES[target]
    if name not in BASELINES:
        raise BaselineError(f"unknown baseline {name!r}; available: {sorted(BASELINES)} or 'auto'")
    return BASELINES[name]


@dataclass
class FittedBaseline:
    """A baseline form with its parameters fitted on training rows.

    Attributes
    ----------
    form : str
        Name in :data:`BASELINES`.
    target : str
        The flux it models.
    drivers : list of str
        Driver columns it reads (required and the optional ones present).
    parameters : dict
        Fitted values, by parameter name (units in :attr:`parameter_units`).
    parameter_units : dict
        Units of each parameter.
    n_rows : int
        Training rows of the fit.
    rmse : float
        Root-mean-square error of the baseline alone on its training rows [target units].
    fit : {"pooled", "within-site", "night-time respiration"}
        How the parameters were fitted (see :func:`fit_baseline`).
    residual : {"additive", "multiplicative"}
        How the trees complete the baseline (:data:`RESIDUAL_MODES`).
    """

    form: str
    target: str
    drivers: list[str]
    parameters: dict[str, float]
    parameter_units: dict[str, str]
    n_rows: int
    rmse: float
    fit: str = "pooled"
    residual: str = "additive"

    def predict(self, columns: Columns) -> np.ndarray:
        """The baseline [target units] from driver arrays (float64)."""
        values = {d: np.asarray(columns[d], dtype=np.float64) for d in self.drivers}
        with np.errstate(invalid="ignore", over="ignore"):
            return np.asarray(BASELINES[self.form].function(self.parameters, values, self.target), dtype=np.float64)

    def combine(self, baseline: np.ndarray, trees: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        """The hybrid prediction from the baseline and the trees' output (float32).

        ``weight`` [-] (per row, in [0, 1]; None: 1) scales the trees' part: the prediction is
        baseline + weight * (hybrid prediction - baseline), the baseline alone at 0
        (:func:`residual_weight`)."""
        out = baseline * trees if self.residual == "multiplicative" else baseline + trees
        if weight is not None:
            out = baseline + np.asarray(weight) * (out - baseline)
        return out.astype(np.float32)

    def tree_target(self, baseline: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """What the trees learn from target ``y`` given the ``baseline``, and the row weights (None: equal)."""
        if self.residual == "additive":
            return y - baseline, None
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(baseline != 0, y / baseline, 1.0), baseline.astype(np.float64) ** 2

    def to_dict(self) -> dict:
        """JSON-serialisable description (model files, product attributes)."""
        return {
            "form": self.form,
            "target": self.target,
            "drivers": list(self.drivers),
            "parameters": {k: float(v) for k, v in self.parameters.items()},
            "parameter_units": dict(self.parameter_units),
            "n_rows": int(self.n_rows),
            "rmse": float(self.rmse),
            "fit": self.fit,
            "residual": self.residual,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> FittedBaseline:
        """Inverse of :meth:`to_dict`."""
        if d["form"] not in BASELINES:
            raise BaselineError(f"model file names an unknown baseline {d['form']!r}; available: {sorted(BASELINES)}")
        return cls(
            d["form"],
            d["target"],
            list(d["drivers"]),
            dict(d["parameters"]),
            dict(d["parameter_units"]),
            int(d["n_rows"]),
            float(d["rmse"]),
            d.get("fit", "pooled"),
            d.get("residual", "additive"),
        )

    def describe(self) -> str:
        """One line: form and fitted parameters."""
        values = ", ".join(f"{k}={v:.4g}" for k, v in self.parameters.items())
        fit = f"RMSE {self.rmse:.3g} on {self.n_rows} rows, {self.fit} fit, {self.residual} trees"
        return f"{self.form} baseline of {self.target} ({values}; {fit})"


def residual_weight(di, threshold: float):
    """How much of a hybrid's machine-learned part to keep at a dissimilarity index: 1 inside the
    area of applicability (DI <= threshold), threshold / DI beyond it, 1 where DI is unknown.

    Outside the AOA no tower vouches for what the trees learnt, while the process baseline's form
    still holds; so the residual fades with the distance from the sampled predictor space and the
    prediction tends to the baseline (the hybrid-modelling argument of Reichstein et al. 2019,
    Nature 566, 195-204: the physics carries the extrapolation).  ``threshold / DI`` needs no
    tuning: the residual is halved at twice the threshold.  benchmarks/README.md has where it
    helps (extrapolation to warmer climates, ``hybrid_demo.py``) and where it does not (the few
    extreme days outside the AOA of a network that covers every climate, ``aoa_error.py``), so a
    run applies it only with ``applicability.hybrid_residual: fade``.

    Parameters
    ----------
    di : numpy.ndarray or xarray.DataArray
        Dissimilarity index [-] (:func:`uflux_xr.aoa`).
    threshold : float
        The AOA threshold of the same reference [-].

    Returns
    -------
    Same type as ``di``
        Weight [-] in (0, 1].
    """
    if not threshold > 0:
        raise ValueError(f"the AOA threshold must be positive, got {threshold!r}")
    return threshold / np.fmax(di, threshold)  # fmax skips NaN: an unknown DI gives the threshold, weight 1


def resolve_residual(residual: str, form: str, weights_supported: bool) -> str:
    """The residual mode for ``residual="auto"``: multiplicative for respiration baselines where the
    tree kind takes row weights, else additive; an explicit mode is checked and returned."""
    if residual == "auto":
        multiply = form in MULTIPLICATIVE_BY_DEFAULT and weights_supported
        return "multiplicative" if multiply else "additive"
    if residual not in RESIDUAL_MODES:
        raise BaselineError(f"residual must be 'auto' or one of {RESIDUAL_MODES}, got {residual!r}")
    if residual == "multiplicative" and not weights_supported:
        raise BaselineError("residual='multiplicative' needs a model kind whose fit takes sample_weight")
    return residual


def baseline_drivers(form: BaselineForm, features, units: Mapping[str, str] | None = None) -> list[str]:
    """The drivers ``form`` reads among ``features``; raises when a required one is missing or in other units."""
    features = list(features)
    missing = [d for d in form.required if d not in features]
    if missing:
        raise BaselineError(
            f"the {form.name} baseline ({form.description}) needs {list(form.required)} among the features; "
            f"missing {missing} (features: {features})"
        )
    drivers = [*form.required, *(d for d in form.optional if d in features)]
    for d in drivers:
        have = (units or {}).get(d)
        if have not in (None, "unknown") and canonical_units(have) != canonical_units(DRIVER_UNITS[d]):
            raise BaselineError(
                f"the {form.name} baseline needs {d} in {DRIVER_UNITS[d]!r}; the table has it in {have!r}"
            )
    return drivers


def fit_baseline(
    name: str,
    columns: Columns,
    y: np.ndarray,
    target: str,
    features,
    units: Mapping[str, str] | None = None,
    groups=None,
    residual: str = "additive",
) -> FittedBaseline:
    """Fit a baseline's parameters by bounded least squares (scipy ``least_squares``, trust region reflective).

    Parameters
    ----------
    name : str
        Form in :data:`BASELINES`, or ``"auto"`` for the target's default.
    columns : mapping of str to numpy.ndarray
        Driver values per training row (a DataFrame works).
    y : numpy.ndarray
        The target per row [target units].
    target : str
        Flux name (``ET`` gets the Priestley–Taylor output in kg m-2 d-1).
    features : sequence of str
        The model's features; the baseline's drivers must be among them.
    units : mapping, optional
        Units of the columns; a driver in units the form does not expect is an error.
    groups : array-like, optional
        Site of each row.  Where given, a form with scale parameters fits its
        shape parameters within sites first (a free scale per site), then the
        scales across sites with the shape fixed; else all parameters at once.
        A form with a night-time respiration term (NEE) with enough night rows
        (SW_IN < :data:`NIGHT_SW_IN`) fits that term on the nights, then the
        rest on all rows with it fixed: in daytime NEE the respiration's
        temperature response and the light response's trade off (a pooled fit
        of half-hourly CH-Dav NEE put E0 at its lower bound of 10 K).
    residual : {"additive", "multiplicative"}
        How trees will complete this baseline (recorded in the result).

    Returns
    -------
    FittedBaseline
    """
    if residual not in RESIDUAL_MODES:
        raise BaselineError(f"residual must be one of {RESIDUAL_MODES}, got {residual!r}")
    form = get_baseline(name, target)
    drivers = baseline_drivers(form, features, units)
    values = {d: np.asarray(columns[d], dtype=np.float64) for d in drivers}
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(y) & np.all([np.isfinite(v) for v in values.values()], axis=0)
    if "TA" in values:  # Lloyd-Taylor is undefined at and below T0
        ok &= values["TA"] > physics.LLOYD_TAYLOR_T0 + 1.0
    if ok.sum() < len(form.parameters) + 2:
        raise BaselineError(f"only {int(ok.sum())} usable rows to fit the {form.name} baseline of {target}")
    values, y = {d: v[ok] for d, v in values.items()}, y[ok]
    present = set(drivers) | ({"no LW_IN"} if "LW_IN" not in drivers else set())
    params = form.active_parameters(present)
    names = [p.name for p in params]
    start = {p.name: p.initial for p in params}
    if form.scales:  # the output is proportional to these together: start them from the linear fit
        with np.errstate(invalid="ignore", over="ignore"):
            shape = form.function(start, values, target)
        denom = float(np.dot(shape, shape))
        if np.isfinite(denom) and denom > 0:
            factor = float(np.dot(shape, y)) / denom
            start.update({n: start[n] * factor for n in form.scales if n in start})
    by_name = {p.name: p for p in params}

    def solve(free: list[str], fixed: dict[str, float], residual_of) -> dict[str, float]:
        lower = np.array([by_name[n].lower for n in free])
        upper = np.array([by_name[n].upper for n in free])
        margin = 1e-9 * (upper - lower)
        x0 = np.clip([start[n] for n in free], lower + margin, upper - margin)

        def residual(x):
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                r = residual_of({**fixed, **dict(zip(free, x, strict=True))})
            return np.where(np.isfinite(r), r, 1e6)

        fit = least_squares(residual, x0, bounds=(lower, upper), x_scale="jac", method="trf")
        return {**fixed, **{n: float(v) for n, v in zip(free, fit.x, strict=True)}}

    scales = [n for n in form.scales if n in by_name]
    shape_names = [n for n in names if n not in scales]
    within_site = groups is not None and form.site_scaled and bool(shape_names)
    night_names = [n for n in names if n in form.night]
    night = values["SW_IN"] < NIGHT_SW_IN if night_names and "SW_IN" in values else np.zeros(len(y), dtype=bool)
    how = "within-site" if within_site else "pooled"
    if night.sum() >= max(NIGHT_ROWS_PER_PARAMETER * len(night_names), NIGHT_MIN_SHARE * len(y)) > 0:
        at_night = {d: v[night] for d, v in values.items()}
        day_names = [n for n in names if n not in night_names]
        respiration = solve(
            night_names,
            {n: start[n] for n in day_names},
            lambda p: form.function(p, at_night, target) - y[night],
        )
        fitted = solve(
            day_names,
            {n: respiration[n] for n in night_names},
            lambda p: form.function(p, values, target) - y,
        )
        how = "night-time respiration"
    elif within_site:
        # Shape parameters (E0 or Q10, T_opt, albedo, water weight) from the variation within each
        # site, with a free scale per site profiled out in closed form: across sites, the scale
        # (reference respiration, efficiency) varies with vegetation in ways that correlate with
        # climate and would bias the shape (Reichstein et al. 2005 estimate E0 within short windows
        # of one site for the same reason).  The scales are then fitted across sites, shape fixed.
        codes = np.unique(np.asarray(groups)[ok], return_inverse=True)[1]
        unit = {n: 0.0 for n in scales} | {scales[0]: 1.0}

        def within(p):
            # output = a + s h, with a the part that does not scale (autotrophic respiration)
            a = form.function({**p, **dict.fromkeys(scales, 0.0)}, values, target)
            h = form.function({**p, **unit}, values, target) - a
            s_group = np.bincount(codes, h * (y - a)) / np.maximum(np.bincount(codes, h * h), 1e-300)
            return y - a - s_group[codes] * h

        shape_fit = solve(shape_names, {}, within)
        fitted = solve(scales, {n: shape_fit[n] for n in shape_names}, lambda p: form.function(p, values, target) - y)
    else:
        fitted = solve(names, {}, lambda p: form.function(p, values, target) - y)
    fitted = {n: fitted[n] for n in names}
    with np.errstate(invalid="ignore", over="ignore"):
        rmse = float(np.sqrt(np.nanmean((form.function(fitted, values, target) - y) ** 2)))
    result = FittedBaseline(
        form.name,
        target,
        drivers,
        fitted,
        {p.name: p.units for p in params},
        int(ok.sum()),
        rmse,
        how,
        residual,
    )
    log.info("fitted %s", result.describe())
    return result
