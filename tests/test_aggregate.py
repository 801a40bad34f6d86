import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uflux_xr as ux
from uflux_xr.site.aggregate import to_daily, to_monthly, uflux_training_mask

from .conftest import SHARED_DATA


def halfhourly(days=2, **columns):
    time = pd.date_range("2021-03-01 00:15", periods=48 * days, freq="30min")
    units = {"NEE": "umol m-2 s-1", "LE": "W m-2", "TA": "degC", "P": "mm", "NEE_QC": "1"}
    data = {k: (("site", "time"), np.asarray(v, float).reshape(1, -1), {"units": units[k]}) for k, v in columns.items()}
    return xr.Dataset(data, coords={"site": ["XX-Syn"], "time": time, "lat": ("site", [1.0])})


def test_daily_units_sums_coverage_and_et():
    n = 96
    nee = np.ones(n)
    nee[50] = np.nan  # one missing record on day 2
    ds = halfhourly(
        NEE=nee,
        LE=np.full(n, 100.0),
        TA=np.full(n, 20.0),
        P=np.full(n, 0.1),
        NEE_QC=np.where(np.arange(n) < 24, 2.0, 0.0),
    )
    d = to_daily(ds)
    assert list(d.indexes["time"]) == [pd.Timestamp("2021-03-01 12:00"), pd.Timestamp("2021-03-02 12:00")]
    assert d["NEE"].attrs["units"] == "g m-2 d-1"
    assert d["NEE"].values[0, 0] == pytest.approx(1.0377, abs=1e-4)  # 12.011 * 86400 * 1e-6
    assert np.isnan(d["NEE"].values[0, 1])  # incomplete day dropped at min_coverage=1
    assert to_daily(ds, min_coverage=0.9)["NEE"].values[0, 1] == pytest.approx(1.0377, abs=1e-4)
    assert d["NEE_QC"].values[0].tolist() == pytest.approx([0.5, 47 / 48])  # flag 2 bad; missing bad
    assert d["P"].attrs["units"] == "mm d-1" and d["P"].values[0, 0] == pytest.approx(4.8)
    # ET = 100 W m-2 * 86400 s / lambda(20 °C) = 3.5211 kg m-2 d-1
    assert d["ET"].values[0, 0] == pytest.approx(3.5211, rel=1e-4)
    assert d["lat"].values.tolist() == [1.0]


def test_monthly_means_and_middle_of_month():
    time = pd.date_range("2021-01-01 12:00", "2021-02-28 12:00", freq="D")
    gpp = np.where(time.month == 1, 2.0, 4.0)
    gpp[40] = np.nan
    daily = xr.Dataset(
        {
            "GPP": (("site", "time"), gpp[None], {"units": "g m-2 d-1"}),
            "GPP_QC": (("site", "time"), np.full((1, len(time)), 0.5), {"units": "1"}),
        },
        coords={"site": ["XX-Syn"], "time": time},
    )
    m = to_monthly(daily)
    assert list(m.indexes["time"]) == [pd.Timestamp("2021-01-16 12:00"), pd.Timestamp("2021-02-15 00:00")]
    assert m["GPP"].values[0, 0] == 2.0 and np.isnan(m["GPP"].values[0, 1])  # February lacks a day
    assert to_monthly(daily, min_coverage=0.9)["GPP"].values[0, 1] == 4.0
    assert m["GPP_QC"].values[0].tolist() == [0.5, 0.5] and m["GPP"].attrs["units"] == "g m-2 d-1"


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")
def test_ch_dav_daily_matches_a_hand_computation():
    path = SHARED_DATA / "CH-Dav_2013-2022_halfhourly.parquet"
    daily = to_daily(ux.read_sites(path))
    raw = pd.read_parquet(path)
    day = raw.loc["2016-07-10"]
    assert len(day) == 48
    got = daily.sel(site="CH-Dav", time="2016-07-10 12:00")
    assert float(got["GPP"]) == pytest.approx(day["GPP_CUT_REF_f"].mean() * 12.011 * 86400e-6, rel=1e-9)
    assert float(got["NEE_REF_f"]) == pytest.approx(day["NEE_CUT_REF_f"].mean() * 1.0377, rel=1e-3)
    assert float(got["P"]) == pytest.approx(day["PREC_TOT_T1_25+20_1"].sum(), rel=1e-9)
    assert float(got["TA"]) == pytest.approx(day["Tair_f"].mean(), rel=1e-9)
    good = (day["NEE_CUT_REF_orig"].notna() & (day["QCF_NEE"] <= 1)).sum() / 48
    assert float(got["NEE_QC"]) == pytest.approx(good)
    assert daily.sizes["time"] == 3652


def test_uflux_training_mask():
    time = pd.date_range("2021-01-01 12:00", periods=4, freq="D")

    def var(values):
        return (("site", "time"), np.array([values], float), {"units": "g m-2 d-1"})

    ds = xr.Dataset(
        {
            "GPP": var([5, -1, 5, 5]),
            "RECO": var([3, 3, 3, 3]),
            "GPP_DT": var([6, -1, 9, 5]),
            "RECO_DT": var([3, 3, 3, 3]),
            "NEE_QC": (("site", "time"), np.array([[1.0, 1.0, 1.0, 0.2]]), {"units": "1"}),
        },
        coords={"site": ["XX-Syn"], "time": time},
    )
    mask = uflux_training_mask(ds, qc_threshold=0.5)
    assert mask.values[0].tolist() == [True, False, False, False]  # ok, GPP < 0, |NT-DT| = 4 > 3, QC 0.2
    assert uflux_training_mask(ds, nt_dt_tolerance=None, nonnegative=False).values.all()
    wrong = ds.assign(GPP=ds["GPP"].assign_attrs(units="umol m-2 s-1"))
    with pytest.raises(ValueError, match="GPP must be in g m-2 d-1"):
        uflux_training_mask(wrong)
