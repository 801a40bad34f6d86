"""Spike detection: hesseflux's madspikes on DE-Tha 1998 and known spikes on a synthetic series."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.spikes import flag_spikes

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


def test_known_spikes_are_found():
    rng = np.random.default_rng(0)
    time = pd.date_range("2021-06-01 00:15", periods=48 * 30, freq="30min")
    hour = (time.hour + time.minute / 60).to_numpy()
    sw = np.clip(800 * np.sin(np.pi * (hour - 6) / 12), 0, None)
    nee = 3.0 - 0.02 * sw + rng.normal(0, 0.3, time.size)
    spikes = [100, 500, 777, 1200]
    nee[spikes] += np.array([15.0, -12.0, 20.0, -18.0])
    ds = xr.Dataset(
        {"NEE": ("time", nee, {"units": "umol m-2 s-1"}), "SW_IN": ("time", sw, {"units": "W m-2"})},
        coords={"time": time},
    )
    flags = flag_spikes(ds, "NEE", convention="hesseflux")["NEE_SPIKE"].values
    found = set(np.flatnonzero(flags == 1).tolist())
    assert set(spikes) <= found
    # a large spike also moves the double differences of its neighbours: the method flags them too
    assert found <= {s + k for s in spikes for k in (-1, 0, 1)}
    with pytest.raises(KeyError, match=r"needs SW_IN"):
        flag_spikes(ds.drop_vars("SW_IN"), "NEE")
