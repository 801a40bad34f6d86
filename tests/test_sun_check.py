"""SW_IN against the sun: shifted clocks and swapped coordinates on real records (DE-Tha 1998, CH-Dav)."""

import numpy as np
import pandas as pd
import pytest

import uflux_xr as ux
from uflux_xr.core.sun_check import PositionError, check_sun_timing, sun_timing

from .conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")
THARANDT = {"lat": 50.96, "lon": 13.57, "utc_offset": 1.0}  # the file's README


@pytest.fixture(scope="module")
def de_tha():
    return ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv").isel(site=0)


def _timing(ds, minutes=0, **position):
    return sun_timing(ds.indexes["time"] + pd.Timedelta(minutes=minutes), ds["SW_IN"].values, **position)


def test_correct_records_show_no_lag(de_tha):
    assert abs(_timing(de_tha, **THARANDT).lag_minutes) < 5
    davos = ux.read_sites(SHARED_DATA / "CH-Dav_2013-2022_halfhourly.parquet").isel(site=0)
    timing = sun_timing(davos.indexes["time"], davos["SW_IN_orig"].values, 46.82, 9.86, 1.0)
    assert abs(timing.lag_minutes) < 15 and timing.sunlit_night_share < 0.001


@pytest.mark.parametrize("minutes", [60, -60, 30, -30])
def test_shifted_clock_is_measured_to_a_few_minutes(de_tha, minutes):
    assert _timing(de_tha, minutes, **THARANDT).lag_minutes == pytest.approx(minutes, abs=3)


@pytest.mark.parametrize("minutes", [60, -60])
def test_an_hour_is_refused_naming_the_shift_and_cause(de_tha, minutes):
    time = de_tha.indexes["time"] + pd.Timedelta(minutes=minutes)
    word = "later" if minutes > 0 else "earlier"
    with pytest.raises(PositionError, match=rf"'DE-Tha': the measured SW_IN runs (59|60|61) min {word}.*UTC"):
        check_sun_timing(time, de_tha["SW_IN"].values, **THARANDT, site="DE-Tha")


@pytest.mark.parametrize("minutes", [30, -30])
def test_half_an_hour_is_a_warning_naming_the_interval_stamp(de_tha, minutes, caplog):
    time = de_tha.indexes["time"] + pd.Timedelta(minutes=minutes)
    with caplog.at_level("WARNING", logger="uflux_xr.core.sun_check"):
        timing = check_sun_timing(time, de_tha["SW_IN"].values, **THARANDT, site="DE-Tha")
    assert timing.lag_minutes == pytest.approx(minutes, abs=3)
    assert "start of each interval read as its end" in caplog.text


def test_swapped_coordinates_are_refused_by_the_chain_and_the_reader(de_tha):
    # the case: DE-Tha 1998 partitioned at lat 13.57, lon 50.96 (the Arabian Sea) ran without a word
    swapped = {"lat": 13.57, "lon": 50.96, "utc_offset": 1.0}
    with pytest.raises(PositionError, match=r"runs 149 min later.*latitude and longitude swapped"):
        ux.process_site(de_tha, **swapped, ustar=0.3, partitioning=("nighttime",))
    with pytest.raises(PositionError, match="position_check='warn'"):
        ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv", metadata={"DE-Tha": swapped})
    # the documented override
    ds = ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv", metadata={"DE-Tha": swapped}, position_check="warn")
    assert float(ds["lat"][0]) == 13.57


def test_utc_stamps_read_as_local_time_are_refused(de_tha):
    with pytest.raises(PositionError, match=r"59 min later.*UTC offset wrong by an hour"):
        ux.process_site(de_tha, lat=50.96, lon=13.57, utc_offset=0.0, ustar=0.3, partitioning=())
    result = ux.process_site(
        de_tha, lat=50.96, lon=13.57, utc_offset=0.0, ustar=0.3, partitioning=(), position_check="off"
    )
    assert result.summary["sun_timing"] == "not checked"


def test_short_or_daily_records_are_not_judged():
    time = pd.date_range("2020-01-01", periods=48 * 5, freq="30min")
    assert sun_timing(time, np.ones(time.size), **THARANDT) is None  # 5 days
    days = pd.date_range("2020-01-01", periods=400, freq="D")
    assert sun_timing(days, np.ones(days.size), **THARANDT) is None
