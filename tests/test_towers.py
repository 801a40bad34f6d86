"""Tower-file readers, on the real files in ../shared/data and on small files written here."""

import numpy as np
import pandas as pd
import pytest

import uflux_xr as ux
from uflux_xr.io.towers import TowerFileError, detect_format

from .conftest import SHARED_DATA

needs_shared = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data (real tower files) is absent")


@needs_shared
def test_de_tha_reddyproc_text():
    meta = {"DE-Tha": {"lat": 50.96, "lon": 13.57, "igbp": "ENF", "elevation": 380}}
    ds = ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv", metadata=meta)
    assert dict(ds.sizes) == {"site": 1, "time": 17520}
    time = ds.indexes["time"]
    # Hour is the END of the half hour: 0.5 -> 00:00-00:30 -> middle 00:15; 24.0 on day 365 -> 23:45.
    assert time[0] == pd.Timestamp("1998-01-01 00:15") and time[-1] == pd.Timestamp("1998-12-31 23:45")
    nee = ds["NEE"].sel(site="DE-Tha")
    assert np.isnan(nee.values[2])  # -9999 in the file
    assert nee.values[0] == pytest.approx(-1.21)
    assert 0.30 < float(nee.isnull().mean()) < 0.40  # the file's README: NEE 36 % missing
    assert ds["NEE"].attrs["units"] == "umol m-2 s-1" and ds["TA"].attrs["units"] == "degC"
    assert ds["VPD"].attrs["units"] == "hPa" and ds["SW_IN"].attrs["units"] == "W m-2"
    assert set(np.unique(ds["NEE_QC"])) <= {1.0, 2.0}
    assert ds["lat"].values[0] == 50.96 and str(ds["igbp"].values[0]) == "ENF"


@needs_shared
def test_ch_dav_parquet():
    ds = ux.read_sites(SHARED_DATA / "CH-Dav_2013-2022_halfhourly.parquet")
    raw = pd.read_parquet(SHARED_DATA / "CH-Dav_2013-2022_halfhourly.parquet")
    assert ds.sizes["time"] == len(raw) == 175296
    assert ds.indexes["time"][0] == pd.Timestamp("2013-01-01 00:15")
    np.testing.assert_array_equal(ds["NEE"].values[0], raw["NEE_CUT_REF_orig"].to_numpy())
    np.testing.assert_array_equal(ds["NEE_REF_f"].values[0], raw["NEE_CUT_REF_f"].to_numpy())
    assert ds["NEE"].attrs["units"] == "umol m-2 s-1" and ds["PA"].attrs["units"] == "kPa"
    assert {"NEE_QC", "LE_QC", "GPP", "RECO", "GPP_DT", "RECO_DT", "SWC", "P"} <= set(ds.data_vars)


@needs_shared
def test_ch_cha_fluxnet_halfhourly():
    path = SHARED_DATA / "FLX_CH-Cha_FLUXNET2015_FULLSET_HH_sample.csv"
    assert detect_format(path) == "fluxnet"
    ds = ux.read_sites(path)
    assert ds["site"].values.tolist() == ["CH-Cha"] and ds.sizes["time"] == 99
    assert ds.indexes["time"][0] == pd.Timestamp("2005-01-01 00:15")  # 0000-0030 -> middle
    assert ds["TA"].values[0, 0] == pytest.approx(2.139)
    raw = pd.read_csv(path)
    np.testing.assert_array_equal(np.isnan(ds["SWC"].values[0]), (raw["SWC_F_MDS_1"] == -9999).to_numpy())
    assert ds["NEE"].attrs == {"units": "umol m-2 s-1", "source_column": "NEE_VUT_REF"}
    assert {"NEE_QC", "LE_QC", "TA_QC", "GPP", "RECO", "GPP_DT"} <= set(ds.data_vars)
    assert ds["P"].attrs["units"] == "mm"


def _write_fluxnet(path, timestamps, nee, column="TIMESTAMP"):
    pd.DataFrame(
        {column: timestamps, "NEE_VUT_REF": nee, "NEE_VUT_REF_QC": [1.0] * len(nee), "TA_F": [5.0] * len(nee)}
    ).to_csv(path, index=False)


def test_fluxnet_daily_weekly_monthly_timestamps_and_units(tmp_path):
    dd = tmp_path / "FLX_XX-Aaa_FLUXNET2015_FULLSET_DD_2001-2001_1-4.csv"
    _write_fluxnet(dd, [20010101, 20010102], [-1.5, -9999])
    ds = ux.read_sites(dd)
    assert list(ds.indexes["time"]) == [pd.Timestamp("2001-01-01 12:00"), pd.Timestamp("2001-01-02 12:00")]
    assert ds["NEE"].attrs["units"] == "g m-2 d-1" and np.isnan(ds["NEE"].values[0, 1])
    mm = tmp_path / "FLX_XX-Bbb_FLUXNET2015_FULLSET_MM_2001-2001_1-4.csv"
    _write_fluxnet(mm, [200101, 200102], [1.0, 2.0])
    assert ux.read_sites(mm).indexes["time"][0] == pd.Timestamp("2001-01-16 12:00")  # middle of January
    hr = tmp_path / "FLX_XX-Hrr_FLUXNET2015_FULLSET_HR_2001-2001_1-4.csv"
    pd.DataFrame(
        {
            "TIMESTAMP_START": [200101010000, 200101010100],
            "TIMESTAMP_END": [200101010100, 200101010200],
            "NEE_VUT_REF": [1.0, 2.0],
        }
    ).to_csv(hr, index=False)
    hourly = ux.read_sites(hr)
    assert hourly.indexes["time"][0] == pd.Timestamp("2001-01-01 00:30")
    assert hourly["NEE"].attrs["units"] == "umol m-2 s-1"
    ww = tmp_path / "FLX_XX-Ccc_FLUXNET2015_FULLSET_WW_2001-2001_1-4.csv"
    pd.DataFrame({"TIMESTAMP_START": [20010101], "TIMESTAMP_END": [20010107], "NEE_VUT_REF": [1.0]}).to_csv(
        ww, index=False
    )
    assert ux.read_sites(ww).indexes["time"][0] == pd.Timestamp("2001-01-04 12:00")


def test_ameriflux_base(tmp_path):
    path = tmp_path / "base.csv"
    path.write_text(
        "# Site: US-Xyz\n# Version: 1-5\n"
        "TIMESTAMP_START,TIMESTAMP_END,FC,TA_1_2_1,TA_1_1_1,SW_IN,VPD,LE\n"
        "202101010000,202101010030,2.5,-1,5.0,0,3.2,-9999\n"
        "202101010030,202101010100,2.0,-1,4.5,0,3.0,10\n"
    )
    assert detect_format(path) == "ameriflux-base"
    ds = ux.read_sites(path)
    assert ds["site"].values.tolist() == ["US-Xyz"]
    assert ds.indexes["time"][0] == pd.Timestamp("2021-01-01 00:15")
    assert ds["NEE"].values[0].tolist() == [2.5, 2.0] and ds["NEE"].attrs["source_column"] == "FC"
    assert ds["TA"].values[0].tolist() == [5.0, 4.5] and ds["TA"].attrs["source_column"] == "TA_1_1_1"
    assert np.isnan(ds["LE"].values[0, 0]) and ds["VPD"].attrs["units"] == "hPa"
    nohead = tmp_path / "US-Nhd_base.csv"
    nohead.write_text("TIMESTAMP_START,TIMESTAMP_END,FC\n202101010000,202101010030,1.0\n")
    assert detect_format(nohead) == "ameriflux-base"
    notime = tmp_path / "US-Ntm_base.csv"
    notime.write_text("# Site: US-Ntm\nTIME,FC\n1,2\n")
    with pytest.raises(TowerFileError, match="missing required columns TIMESTAMP_START/TIMESTAMP_END"):
        ux.read_sites(notime)


def test_many_sites_and_metadata_table(tmp_path):
    a = tmp_path / "FLX_XX-Aaa_DD.csv"
    b = tmp_path / "FLX_XX-Bbb_DD.csv"
    _write_fluxnet(a, [20010101, 20010102], [1.0, 2.0])
    _write_fluxnet(b, [20010102, 20010103], [3.0, 4.0])
    meta = tmp_path / "sites.csv"
    pd.DataFrame(
        {
            "site": ["XX-Aaa", "XX-Bbb"],
            "lat": [1.0, 2.0],
            "lon": [3.0, 4.0],
            "igbp": ["GRA", "ENF"],
            "elevation": [10.0, 20.0],
        }
    ).to_csv(meta, index=False)
    ds = ux.read_sites([a, b], metadata=meta)
    assert dict(ds.sizes) == {"site": 2, "time": 3}
    assert ds["igbp"].values.tolist() == ["GRA", "ENF"] and ds["lat"].values.tolist() == [1.0, 2.0]
    assert np.isnan(ds["NEE"].sel(site="XX-Aaa").values[2]) and ds["NEE"].sel(site="XX-Bbb").values[2] == 4.0


def test_bad_tower_files_name_file_and_problem(tmp_path):
    dup = tmp_path / "FLX_XX-Dup_DD.csv"
    _write_fluxnet(dup, [20010101, 20010101], [1.0, 2.0])
    with pytest.raises(TowerFileError, match=r"FLX_XX-Dup_DD.csv: duplicate timestamps"):
        ux.read_sites(dup)
    back = tmp_path / "FLX_XX-Bck_DD.csv"
    _write_fluxnet(back, [20010102, 20010101], [1.0, 2.0])
    with pytest.raises(TowerFileError, match="not increasing at row 1"):
        ux.read_sites(back)
    units = tmp_path / "XX-Unt_2001.txt"
    units.write_text("Day\tHour\tNEE\tTair\n--\t--\tumolm-2s-1\tfurlongs\n1\t0.5\t1.0\t2.0\n1\t1.0\t1.0\t2.0\n")
    with pytest.raises(TowerFileError, match=r"column 'Tair' has unknown units 'furlongs'"):
        ux.read_sites(units)
    notime = tmp_path / "FLX_XX-Ntm_DD.csv"
    pd.DataFrame({"DATE": [1], "NEE_VUT_REF": [1.0]}).to_csv(notime, index=False)
    with pytest.raises(TowerFileError, match="unknown tower file format"):
        ux.read_sites(notime)
    with pytest.raises(TowerFileError, match="no FLUXNET timestamp columns"):
        ux.read_sites(notime, format="fluxnet")
    nosite = tmp_path / "fluxes.csv"
    _write_fluxnet(nosite, [20010101], [1.0])
    with pytest.raises(TowerFileError, match="no site id"):
        ux.read_sites(nosite)
    assert ux.read_sites(nosite, site="XX-Set")["site"].values.tolist() == ["XX-Set"]
    novars = tmp_path / "FLX_XX-Nov_DD.csv"
    pd.DataFrame({"TIMESTAMP": [20010101], "FOO": [1.0]}).to_csv(novars, index=False)
    with pytest.raises(TowerFileError, match="none of the FLUXNET variables"):
        ux.read_sites(novars)
    parquet = tmp_path / "XX-Prq_halfhourly.parquet"
    pd.DataFrame({"LE_orig": [1.0]}, index=pd.DatetimeIndex(["2021-01-01 00:15"], name="TIMESTAMP_MIDDLE")).to_parquet(
        parquet
    )
    with pytest.raises(TowerFileError, match="missing required column 'NEE_CUT_REF_orig'"):
        ux.read_sites(parquet)
    with pytest.raises(FileNotFoundError, match="tower file not found"):
        ux.read_sites(tmp_path / "missing.csv")


@pytest.mark.parametrize(
    ("name", "site"),
    [
        ("FLX_CH-Cha_FLUXNET2015_FULLSET_HH_2005-2014_1-4.csv", "CH-Cha"),
        ("AMF_US-Ha1_BASE_HH_15-5.csv", "US-Ha1"),
        ("ICOSETC_DE-Tha_FLUXNET_HH_L2.csv", "DE-Tha"),
        ("eddypro_CH-Dav_full_output_2020-06-01T000000_adv.csv", "CH-Dav"),
        ("CH-Dav_2013-2022_halfhourly.parquet", "CH-Dav"),
        # the patterns anywhere in the name, after a prefix
        ("exampledata_FLX_CH-Cha_FLUXNET2015_FULLSET_HH_2005-2014_1-4.csv", "CH-Cha"),
        ("2024_eddypro_CH-FRU_FR-20120601_fluxnet_2013-01-01T000000_adv.csv", "CH-FRU"),
        ("exampledata_CH-Dav_2013.csv", "CH-Dav"),
        # CC-XXX inside other words is not a site: ET-FUL from FLUXNET-FULLSET, RO-FLU from EDDYPRO-FLUXNET
        ("tower_FLUXNET-FULLSET_2005.csv", None),
        ("site_EDDYPRO-FLUXNET_2020.csv", None),
    ],
)
def test_site_ids_only_from_known_file_name_patterns(name, site):
    from pathlib import Path

    from uflux_xr.io.towers import _site_from_name

    assert _site_from_name(Path("/nonexistent") / name.replace(".csv", ".nc")) == site


def test_ambiguous_site_ids_in_a_file_name_are_refused():
    from pathlib import Path

    from uflux_xr.io.towers import _site_from_name

    with pytest.raises(TowerFileError, match=r"several site ids \['CH-Dav', 'DE-Tha'\]; pass .* site="):
        _site_from_name(Path("/nonexistent/CH-Dav_vs_DE-Tha_2020.nc"))


@needs_shared
def test_year_reaches_day_hour_text_files_through_read_sites(tmp_path):
    copy = tmp_path / "XX-Tha_halfhourly.tsv"  # no year in the name
    copy.write_bytes((SHARED_DATA / "DE-Tha_1998_halfhourly.tsv").read_bytes())
    with pytest.raises(TowerFileError, match="needs year="):
        ux.read_sites(copy)
    ds = ux.read_sites(copy, year=1998)
    assert ds.indexes["time"][0] == pd.Timestamp("1998-01-01 00:15")
    with pytest.raises(TowerFileError, match="year= applies to REddyProc Day/Hour text files only"):
        ux.read_sites(SHARED_DATA / "CH-Dav_2013-2022_halfhourly.parquet", year=1998)


def test_metadata_aliases_and_errors(tmp_path):
    a = tmp_path / "FLX_XX-Aaa_DD.csv"
    _write_fluxnet(a, [20010101, 20010102], [1.0, 2.0])
    badc = pd.DataFrame({"SITE_ID": ["XX-Aaa"], "LOCATION_LAT": [46.8], "LOCATION_LONG": [9.9], "IGBP": ["enf"]})
    ds = ux.read_sites(a, metadata=badc)
    assert ds["lat"].values.tolist() == [46.8] and ds["igbp"].values.tolist() == ["ENF"]
    with pytest.raises(TowerFileError, match=r"no 'lat' column \(accepted: lat, latitude"):
        ux.read_sites(a, metadata=pd.DataFrame({"site": ["XX-Aaa"], "lon": [9.9]}))
    with pytest.raises(TowerFileError, match=r"lat of site\(s\) \['XX-Aaa'\] missing or outside \[-90, 90\]"):
        ux.read_sites(a, metadata=pd.DataFrame({"site": ["XX-Aaa"], "lat": [146.8], "lon": [9.9]}))
    with pytest.raises(TowerFileError, match="site 'XX-Aaa' is not in the site metadata"):
        ux.read_sites(a, metadata={"XX-Bbb": {"lat": 1.0, "lon": 2.0}})
    with pytest.raises(ValueError, match="unknown IGBP class 'forest'"):
        ux.read_sites(a, metadata={"XX-Aaa": {"lat": 1.0, "lon": 2.0, "igbp": "forest"}})


@needs_shared
def test_ch_dav_gap_filled_year_gives_daily_training_rows():
    # The measured-only daily rule leaves no CH-Dav day with complete NEE; the FLUXNET rule on NEE_f does.
    ds = ux.read_sites(SHARED_DATA / "CH-Dav_2013-2022_halfhourly.parquet").sel(time=slice("2015", "2015"))
    assert int(ux.aggregate.to_daily(ds)["NEE"].notnull().sum()) == 0
    daily = ux.aggregate.to_daily(ux.gapfill(ds, "NEE", method="mds"))
    assert int(daily["NEE"].notnull().sum()) == 365
    assert int((daily["NEE_QC"] >= 0.8).sum()) > 300


def _eddypro_fluxnet_file(path, rows: int, spikes: dict, missing_share: float = 0.0):
    """An EddyPro output in its FLUXNET format (TIMESTAMP_START/END, FC, LE, H, ..., -9999 missing) from
    DE-Tha 1998's measured values, with ``spikes`` {column: [(row, value), ...]} put in."""
    real = ux.read_sites(SHARED_DATA / "DE-Tha_1998_halfhourly.tsv").isel(site=0, time=slice(4000, 4000 + rows))
    start = pd.date_range("2024-06-01", periods=rows, freq="30min")
    table = pd.DataFrame(
        {
            "TIMESTAMP_START": start.strftime("%Y%m%d%H%M"),
            "TIMESTAMP_END": (start + pd.Timedelta("30min")).strftime("%Y%m%d%H%M"),
            "FC": real["NEE"].values,
            "FC_SSITC_TEST": 0,
            "LE": real["LE"].values,
            "H": real["H"].values,
            "USTAR": real["USTAR"].values,
            "TA_1_1_1": real["TA"].values,
            "SW_IN_1_1_1": real["SW_IN"].values,
        }
    )
    rng = np.random.default_rng(0)
    table.loc[rng.random(rows) < missing_share, "FC"] = np.nan
    for column, changes in spikes.items():
        for row, value in changes:
            table.loc[row, column] = value
    table.fillna(-9999).to_csv(path, index=False)
    return path


@needs_shared
def test_raw_eddypro_files_lose_their_few_out_of_range_values(tmp_path, caplog):
    # As two real EddyPro FLUXNET-format files (CH-HON 2024: 2 of 132 LE values out of range; CH-FRU 2012:
    # 1 of 49 NEE values), with the prefixes their names carried.
    hon = _eddypro_fluxnet_file(
        tmp_path / "exampledata_eddypro_CH-HON_fluxnet_2024-06-01T000000_adv.csv",
        132,
        {"LE": [(10, 2500.0), (50, -400.0)]},
    )
    fru = _eddypro_fluxnet_file(
        tmp_path / "2012_eddypro_CH-FRU_FR-20120601_fluxnet_adv.csv", 132, {"FC": [(7, -95.0)]}, missing_share=0.6
    )
    with caplog.at_level("WARNING", logger="uflux_xr.core.plausibility"):
        ds = ux.read_sites(hon)
    assert str(ds["site"].values[0]) == "CH-HON"
    le = ds["LE"].isel(site=0)
    assert np.isnan(le.values[[10, 50]]).all() and int(le.count()) == int(np.isfinite(le.values).sum())
    assert ds["LE_RANGE"].dtype == np.int8 and ds["LE_RANGE"].values[0].nonzero()[0].tolist() == [10, 50]
    assert "LE_RANGE" in ds and "NEE_RANGE" not in ds
    assert ds.attrs["physical_range_removed"] == "LE 2"
    measured = int((pd.read_csv(hon)["LE"] != -9999).sum())
    assert f"LE 2 of {measured} ({200 / measured:.2g} %) outside [-150, 1000] W m-2" in caplog.text
    both = ux.read_sites([hon, fru])
    assert sorted(map(str, both["site"].values)) == ["CH-FRU", "CH-HON"]
    fru_nee = both["NEE_RANGE"].sel(site="CH-FRU").values
    assert int(fru_nee.sum()) == 1 and int(both["NEE_RANGE"].sel(site="CH-HON").sum()) == 0
    assert both["NEE_RANGE"].dtype == np.int8


@needs_shared
def test_a_unit_error_is_still_refused_in_a_raw_file(tmp_path):
    # LE in kW m-2 would be in range; TA in kelvin labelled degC puts every value out: refused, with the cause
    path = tmp_path / "eddypro_CH-HON_fluxnet_2024.csv"
    _eddypro_fluxnet_file(path, 132, {})
    table = pd.read_csv(path)
    table["TA_1_1_1"] = table["TA_1_1_1"].where(table["TA_1_1_1"] == -9999, table["TA_1_1_1"] + 273.15)
    table.to_csv(path, index=False)
    with pytest.raises(ux.PlausibilityError, match=r"more than 5 % of the values.*kelvin"):
        ux.read_sites(path)


def test_daily_records_keep_the_strict_rule(tmp_path):
    days = pd.date_range("2020-01-01", periods=30, freq="D")
    table = pd.DataFrame({"TIMESTAMP": days.strftime("%Y%m%d"), "NEE_VUT_REF": np.r_[np.ones(29), 80.0]})
    path = tmp_path / "FLX_XX-Day_FLUXNET2015_FULLSET_DD_2020-2020_1-4.csv"
    table.to_csv(path, index=False)
    with pytest.raises(ux.PlausibilityError, match="NEE has 1 of 30 values"):
        ux.read_sites(path)
