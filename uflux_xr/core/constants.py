"""Physical constants and unit factors, each written once with its source.

Where a reference tool uses another value on purpose (REddyProc's solar
constant, FAO-56's rounded psychrometric constant), that value is here too
under a name that says whose it is, and the caller picks it by name.
"""

from __future__ import annotations

#: 0 °C in kelvin [K].
KELVIN = 273.15
#: Stefan–Boltzmann constant [W m-2 K-4] (CODATA 2018, exact from the SI redefinition).
STEFAN_BOLTZMANN = 5.670374419e-8
#: Total solar irradiance at 1 AU [W m-2] (Kopp & Lean 2011, Geophys. Res. Lett. 38, L01706).
SOLAR_CONSTANT = 1361.0
#: The solar constant REddyProc uses for potential radiation [W m-2] (R/GeoFunctions.R, fCalcExtRadiation);
#: kept so the night/day split selects the same half-hours as REddyProc.
SOLAR_CONSTANT_REDDYPROC = 1366.1
#: Psychrometric constant at ~101 kPa [kPa K-1] (FAO-56 eq. 8 and its Table 2.2 at sea level).
PSYCHROMETRIC_CONSTANT = 0.0665
#: Molar mass of carbon [g mol-1].
MOLAR_MASS_C = 12.011
#: Seconds per day [s].
SECONDS_PER_DAY = 86400.0
#: Mean length of a year [d] (Julian year), for annual totals from daily rates.
DAYS_PER_YEAR = 365.25
#: µmol CO2 m-2 s-1 to g C m-2 d-1: molar mass of C [g mol-1] × 86400 s d-1 × 1e-6 mol µmol-1 (= 1.0377).
UMOL_CO2_TO_GC_PER_DAY = MOLAR_MASS_C * SECONDS_PER_DAY * 1e-6
#: WGS84 ellipsoid: semi-major axis [m] and flattening [-] (NIMA TR8350.2).
WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
