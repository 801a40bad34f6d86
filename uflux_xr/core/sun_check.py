"""Does a tower's measured SW_IN say it stands where, and keeps the time, its record claims?

Incoming short-wave radiation follows the sun: its mean diurnal course peaks at solar noon, which the
position and the UTC offset of the record fix to the minute.  Compared with the potential radiation of
the stated position (:func:`uflux_xr.core.solar.potential_radiation`), a record whose time stamps are
shifted (UTC taken for local time, the start of the interval for its middle, daylight-saving time), or
whose coordinates are wrong (latitude and longitude swapped, a longitude without its sign), shows a lag
of the cross-correlation and sunshine while the sun is below the horizon.  Flux networks run this test
before processing (FLUXNET2015's timestamp-alignment check of SW_IN against the potential radiation,
Pastorello et al. 2020; ONEFlux's ``SW_IN_VS_SW_IN_POT`` flag in ``qc_auto``).

:func:`sun_timing` measures; :func:`check_sun_timing` decides and names the likely cause.  The doors
call it where a record meets its coordinates: :func:`uflux_xr.process_site` and
:func:`uflux_xr.read_sites` with metadata.  ``position_check="warn"`` logs instead of stopping,
``"off"`` skips it (a tower on a mountain's west slope, a shaded sensor).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from uflux_xr.core.domain import time_step
from uflux_xr.core.solar import potential_radiation

log = logging.getLogger(__name__)

#: How :func:`check_sun_timing` acts on a mismatch.
POSITION_CHECK_POLICIES = ("raise", "warn", "off")
#: A lag at least this long is an error [min].  A shift of an hour (a time-zone or daylight-saving error)
#: measures 59-61 min on DE-Tha 1998; correct records stay within 12 min (DE-Tha 1998: -1 min, CH-Dav
#: 2013-2022: +4 to +12 min a year), so the limit sits between the two.
LAG_LIMIT_MINUTES = 45.0
#: A lag at least this long, but under :data:`LAG_LIMIT_MINUTES`, is logged as a warning [min]:
#: half an interval is the start or end of the averaging period taken for its middle.
LAG_WARNING_MINUTES = 20.0
#: Fewest days with SW_IN for a diurnal course worth comparing.
MIN_DAYS = 10
#: Resolution of the lag search [min].
_LAG_STEP_MINUTES = 5


class PositionError(ValueError):
    """A tower's SW_IN does not fit its coordinates and UTC offset."""


@dataclass(frozen=True)
class SunTiming:
    """What a record's SW_IN says about its position and clock.

    Attributes
    ----------
    lag_minutes : float
        How much later the measured mean diurnal course of SW_IN runs than the potential radiation of the
        stated position and UTC offset [min]; positive: the time stamps are late.
    correlation : float
        Correlation of the two diurnal courses at that lag.
    sunlit_night_share : float
        Share of the records with the sun below the horizon (at the stated position) that have
        SW_IN above 50 W m-2 [0-1].
    swapped_lag_minutes : float or None
        The lag with latitude and longitude swapped (None where the swap is no position).
    days : int
        Days with SW_IN used.
    step_minutes : float
        The record's time step [min].
    """

    lag_minutes: float
    correlation: float
    sunlit_night_share: float
    swapped_lag_minutes: float | None
    days: int
    step_minutes: float


def _diurnal_lag(minutes: np.ndarray, sw: np.ndarray, days: pd.DatetimeIndex, lat, lon, utc_offset, step_min):
    """(lag [min], correlation) of the measured mean diurnal course against the potential one."""
    bins = np.round((minutes - step_min / 2) / step_min).astype(int) % int(round(1440 / step_min))
    n_bins = int(round(1440 / step_min))
    sums = np.bincount(bins, weights=sw, minlength=n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    measured = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    # The potential course on a fine clock (every 5 min) averaged over the same days: shifting it is a roll.
    fine = np.arange(0, 1440, _LAG_STEP_MINUTES)
    stamps = (days.values[:, None] + pd.to_timedelta(fine + _LAG_STEP_MINUTES / 2, unit="min").values[None, :]).ravel()
    course = potential_radiation(stamps, lat, lon, utc_offset).reshape(len(days), fine.size).mean(axis=0)
    centres = ((np.arange(n_bins) + 0.5) * step_min / _LAG_STEP_MINUTES).astype(int) % fine.size
    ok = np.isfinite(measured)
    lags = np.arange(-fine.size // 2, fine.size // 2)
    scores = np.array([np.corrcoef(measured[ok], course[(centres[ok] - k) % fine.size])[0, 1] for k in lags])
    best = int(np.nanargmax(scores))
    lag = float(lags[best])
    if 0 < best < len(scores) - 1:  # parabola through the peak and its neighbours
        a, b, c = scores[best - 1 : best + 2]
        denominator = a - 2 * b + c
        if denominator < 0:
            lag += 0.5 * (a - c) / denominator
    return lag * _LAG_STEP_MINUTES, float(scores[best])


def sun_timing(time, sw_in, lat: float, lon: float, utc_offset: float) -> SunTiming | None:
    """Compare a record's SW_IN with the potential radiation of its stated position and clock.

    Parameters
    ----------
    time : array_like of datetime64
        Time stamps at the middle of each interval in local standard time, sub-daily.
    sw_in : array_like
        Incoming short-wave radiation [W m-2].
    lat, lon : float
        Stated position [degrees north, degrees east].
    utc_offset : float
        Stated hours local standard time is ahead of UTC [h].

    Returns
    -------
    SunTiming or None
        None when the record has SW_IN on fewer than :data:`MIN_DAYS` days, or is not sub-daily.
    """
    index = pd.DatetimeIndex(time)
    sw = np.asarray(sw_in, dtype=np.float64)
    good = np.isfinite(sw)
    if good.sum() < 2 or len(index) < 2:
        return None
    step_min = time_step(index) / pd.Timedelta(minutes=1)
    if not 0 < step_min <= 180:
        return None
    index, sw = index[good], np.clip(sw[good], 0.0, None)
    days = index.normalize().unique()
    if len(days) < MIN_DAYS:
        return None
    if len(days) > 366:  # a year of days, spread over the record, gives the course to the minute
        days = days[np.linspace(0, len(days) - 1, 366).round().astype(int)]
        keep = index.normalize().isin(days)
        index, sw = index[keep], sw[keep]
    minutes = (index.hour * 60 + index.minute + index.second / 60).to_numpy(dtype=float)
    lag, correlation = _diurnal_lag(minutes, sw, days, lat, lon, utc_offset, step_min)
    night = potential_radiation(index, lat, lon, utc_offset) <= 0
    sunlit = float((sw[night] > 50.0).mean()) if night.any() else 0.0
    swapped = None
    if -90 <= lon <= 90 and abs(lat - lon) > 1:
        swapped = _diurnal_lag(minutes, sw, days, lon, lat, utc_offset, step_min)[0]
    return SunTiming(lag, correlation, sunlit, swapped, len(days), step_min)


def likely_timing_cause(timing: SunTiming, lat: float, lon: float, utc_offset: float) -> str:
    """The likely reasons for a lag: the known mistakes whose lag it matches."""
    lag, step_minutes = timing.lag_minutes, timing.step_minutes
    near = 0.25 * max(step_minutes, 40.0)  # how close a lag must be to a mistake's lag [min]
    swapped = timing.swapped_lag_minutes
    if swapped is not None and abs(swapped) < LAG_WARNING_MINUTES:
        return f"latitude and longitude swapped (with lat={lon:g}, lon={lat:g} the lag is {swapped:+.0f} min)"
    causes = []
    if lon != 0 and abs(lag - 8.0 * lon) < near:  # 4 min of clock per degree of longitude, the sign flips 2 lon
        causes.append(f"the longitude's sign (lon={-lon:g} fits)")
    if utc_offset != 0 and abs(abs(lag) - 60.0 * abs(utc_offset)) < near:
        causes.append(
            f"time stamps in UTC read as local standard time (UTC{utc_offset:+g}), or the reverse: "
            "utc_offset must be the clock of the time stamps"
        )
    if abs(abs(lag) - 60.0) < near:
        causes.append("daylight-saving time in the time stamps, or a UTC offset wrong by an hour")
    if abs(abs(lag) - step_minutes) < near:
        causes.append("time stamps at the start of each interval read as its end, or the reverse")
    if abs(abs(lag) - step_minutes / 2) < near:
        causes.append(f"time stamps at the {'start' if lag < 0 else 'end'} of each interval read as its middle")
    return " or ".join(causes) or "a wrong UTC offset, wrong coordinates or shifted time stamps"


def check_sun_timing(
    time, sw_in, lat: float, lon: float, utc_offset: float, *, site: str, policy: str = "raise"
) -> SunTiming | None:
    """Stop (or warn) when a record's SW_IN does not fit its stated position and clock.

    Parameters
    ----------
    time, sw_in, lat, lon, utc_offset
        As :func:`sun_timing`.
    site : str
        Site id, for the message.
    policy : {"raise", "warn", "off"}
        ``raise``: a lag of :data:`LAG_LIMIT_MINUTES` (45 min) or more raises :class:`PositionError`; ``warn``:
        it is logged; ``off``: nothing is checked.  A lag between :data:`LAG_WARNING_MINUTES` and the
        limit is always only logged.

    Returns
    -------
    SunTiming or None
        The measurement (None when off or too short to tell).

    Raises
    ------
    PositionError
        Naming the site, the lag, the likely cause and the override.
    """
    if policy not in POSITION_CHECK_POLICIES:
        raise ValueError(f"position_check must be one of {list(POSITION_CHECK_POLICIES)}, got {policy!r}")
    if policy == "off" or not all(np.isfinite([lat, lon, utc_offset])):
        return None
    timing = sun_timing(time, sw_in, lat, lon, utc_offset)
    if timing is None:
        return None
    lag = timing.lag_minutes
    if abs(lag) < LAG_WARNING_MINUTES:
        return timing
    cause = likely_timing_cause(timing, lat, lon, utc_offset)
    message = (
        f"site {site!r}: the measured SW_IN runs {abs(lag):.0f} min {'later' if lag > 0 else 'earlier'} than the "
        f"sun at lat={lat:g}, lon={lon:g} with UTC offset {utc_offset:+g} h (diurnal courses correlate "
        f"{timing.correlation:.3f} at that lag; {100 * timing.sunlit_night_share:.1f} % of the records with the sun "
        f"below the horizon have SW_IN > 50 W m-2); likely cause: {cause}"
    )
    if abs(lag) < LAG_LIMIT_MINUTES or policy == "warn":
        log.warning("%s", message)
        return timing
    raise PositionError(
        f"{message}. Correct the coordinates, the UTC offset or the time stamps; if they are right (a "
        "shaded sensor, a slope facing the afternoon sun), pass position_check='warn' "
        "(command line: --position-check warn)"
    )
