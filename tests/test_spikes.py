"""Spike detection: hesseflux's madspikes on DE-Tha 1998, ONEFlux's rules, known spikes on a synthetic series."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.site.spikes import flag_spikes, oneflux_night_day, oneflux_spikes, spike_removed

from .conftest import SHARED_DATA


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")
def test_hesseflux_counts_on_de_tha():
    # hesseflux 5 madspikes (z 7, 2nd derivatives, 15-day windows moved by a day, SW_IN > 10 is day) on the
    # records with qc 1 flags 38 NEE, 247 LE and 122 H records
    ds = ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv")
    counts = {}
    for var in ("NEE", "LE", "H"):
        flags = flag_spikes(ds, var, convention="hesseflux", good_qc=1)[f"{var}_SPIKE"].values[0]
        counts[var] = int(np.nansum(flags))
        assert np.isnan(flags[ds[var].isnull().values[0]]).all()  # missing records are not tested
    assert counts == {"NEE": 38, "LE": 247, "H": 122}


SPIKES = [100, 500, 777, 1200]


def spiky_site() -> xr.Dataset:
    """30 days of half-hourly NEE following SW_IN with N(0, 0.3) noise and four spikes of 12-20."""
    rng = np.random.default_rng(0)
    time = pd.date_range("2021-06-01 00:15", periods=48 * 30, freq="30min")
    hour = (time.hour + time.minute / 60).to_numpy()
    sw = np.clip(800 * np.sin(np.pi * (hour - 6) / 12), 0, None)
    nee = 3.0 - 0.02 * sw + rng.normal(0, 0.3, time.size)
    nee[SPIKES] += np.array([15.0, -12.0, 20.0, -18.0])
    return xr.Dataset(
        {"NEE": ("time", nee, {"units": "umol m-2 s-1"}), "SW_IN": ("time", sw, {"units": "W m-2"})},
        coords={"time": time},
    )


def test_known_spikes_are_found():
    ds = spiky_site()
    spikes = SPIKES
    flags = flag_spikes(ds, "NEE", convention="hesseflux")["NEE_SPIKE"].values
    found = set(np.flatnonzero(flags == 1).tolist())
    assert set(spikes) <= found
    # a large spike also moves the double differences of its neighbours: the method flags them too
    assert found <= {s + k for s in spikes for k in (-1, 0, 1)}
    with pytest.raises(KeyError, match=r"needs SW_IN"):
        flag_spikes(ds.drop_vars("SW_IN"), "NEE")


def test_oneflux_spike_levels_and_gap_edges():
    # night everywhere (SW_IN 0): one series; 13-day blocks of 624 half-hours
    rng = np.random.default_rng(3)
    n = 624 * 2
    values = rng.normal(0, 1, n)
    d = np.full(n, np.nan)
    d[1:-1] = (values[1:-1] - values[:-2]) - (values[2:] - values[1:-1])
    block = d[1:623]
    median = np.median(block)
    unit = np.median(np.abs(block - median)) / 0.6745
    # a spike of height h moves its double difference by 2 h: place one at each level
    for pos, z in ((100, 4.5), (200, 6.2), (300, 9.0)):
        values[pos] += z * unit / 2 + (median - d[pos]) / 2
    values[500] = np.nan
    values[501] = values[502] + 50.0  # a jump next to a gap: flag 1 whatever its level
    night, day = oneflux_night_day(np.zeros(n), np.zeros(n))
    assert night.all() and not day.any()
    flags = oneflux_spikes(values, np.isfinite(values), night, day, 48, gap_step=6.0)
    assert flags[100] == 1 and flags[200] == 2 and flags[300] == 3
    assert flags[501] == 1 and flags[500] == -1
    # records at dawn and dusk belong to both series
    sw = np.r_[np.zeros(10), np.full(10, 300.0), np.zeros(10)]
    night, day = oneflux_night_day(np.full(30, np.nan), sw)
    assert night[9] and day[9] and night[10] and day[10] and night[19] and day[20]
    assert not night[14] and not day[4]


def test_papale_spikes_find_injected_spikes():
    ds = spiky_site()
    spikes = SPIKES
    flags = ux.flag_spikes(ds, "NEE", lat=47.0, lon=8.0, utc_offset=1)["NEE_SPIKE"]
    assert flags.attrs["removed_from"] == 2
    removed = set(np.flatnonzero(spike_removed(flags).values).tolist())
    assert set(spikes) <= removed
    assert removed <= {s + k for s in spikes for k in (-1, 0, 1)}
    with pytest.raises(KeyError, match="NEE_QC"):
        ux.flag_spikes(ds, "NEE", good_qc=1)
