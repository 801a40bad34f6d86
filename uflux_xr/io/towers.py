"""Readers of eddy-covariance tower files into the site dataset: dims (site, time), canonical names with units.

Formats (``format=`` of :func:`read_sites`):

``fluxnet``
    FLUXNET2015 / ONEFlux FULLSET and SUBSET CSV files at HH, HR, DD, WW, MM
    resolution (ICOS and AmeriFlux FLUXNET-format releases share the layout).
``reddyproc``
    The REddyProc / hesseflux text format: a row of names, a row of units, then
    data; time from ``Year DoY Hour`` or, in hesseflux files, ``Day Hour`` plus
    the year (from ``year=`` or the file name).  ``Hour`` is the END of the
    half hour.
``ameriflux-base``
    AmeriFlux BASE CSV files (``# Site:`` header lines, ``TIMESTAMP_START``/
    ``TIMESTAMP_END``, names such as ``FC``, ``TA_1_1_1``, ``SW_IN``; the first
    position/replicate of a variable is used, FC as NEE without storage).
``diive``
    The parquet layout of the CH-Dav example (index ``TIMESTAMP_MIDDLE``,
    REddyProc output columns), FLUXNET units.

Every reader returns canonical names (``NEE GPP RECO LE H TA SW_IN ...``) with
``units`` attributes, -9999 as NaN, quality flags as ``<VAR>_QC``, and time at
the middle of the averaging period (timezone-naive local standard time, as
FLUXNET ships it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from uflux_xr.core.plausibility import RANGE_FLAG_SUFFIX, screen_physical_range
from uflux_xr.core.sun_check import check_sun_timing
from uflux_xr.core.variables import can_convert, canonical_units, convert_values, igbp_name, registry
from uflux_xr.io.storage import local_copy

log = logging.getLogger(__name__)

MISSING = -9999.0

#: FLUXNET column chosen for each canonical variable, in order of preference.
FLUXNET_COLUMNS = {
    "NEE": ["NEE_VUT_REF", "NEE_CUT_REF"],
    "GPP": ["GPP_NT_VUT_REF", "GPP_NT_CUT_REF"],
    "RECO": ["RECO_NT_VUT_REF", "RECO_NT_CUT_REF"],
    "GPP_DT": ["GPP_DT_VUT_REF", "GPP_DT_CUT_REF"],
    "RECO_DT": ["RECO_DT_VUT_REF", "RECO_DT_CUT_REF"],
    "LE": ["LE_F_MDS", "LE_CORR"],
    "H": ["H_F_MDS", "H_CORR"],
    "TA": ["TA_F", "TA_F_MDS"],
    "SW_IN": ["SW_IN_F", "SW_IN_F_MDS"],
    "LW_IN": ["LW_IN_F", "LW_IN_F_MDS"],
    "VPD": ["VPD_F", "VPD_F_MDS"],
    "P": ["P_F", "P"],
    "PA": ["PA_F", "PA"],
    "WS": ["WS_F", "WS"],
    "USTAR": ["USTAR"],
    "SWC": ["SWC_F_MDS_1"],
    "TS": ["TS_F_MDS_1"],
    "RH": ["RH"],
}

# Units of the FLUXNET columns above, from ONEFlux's variable tables
# (var_info_definitions_*.txt): half-hourly/hourly, and daily or coarser.
_FLUXNET_UNITS_HH = {
    "NEE": "umol m-2 s-1",
    "GPP": "umol m-2 s-1",
    "RECO": "umol m-2 s-1",
    "GPP_DT": "umol m-2 s-1",
    "RECO_DT": "umol m-2 s-1",
    "LE": "W m-2",
    "H": "W m-2",
    "TA": "degC",
    "SW_IN": "W m-2",
    "LW_IN": "W m-2",
    "VPD": "hPa",
    "P": "mm",
    "PA": "kPa",
    "WS": "m s-1",
    "USTAR": "m s-1",
    "SWC": "%",
    "TS": "degC",
    "RH": "%",
}
_FLUXNET_UNITS_DAILY = {
    **_FLUXNET_UNITS_HH,
    **{k: "g m-2 d-1" for k in ("NEE", "GPP", "RECO", "GPP_DT", "RECO_DT")},
    "P": "mm d-1",
}

#: REddyProc / hesseflux column names -> canonical names.
REDDYPROC_COLUMNS = {
    "NEE": "NEE",
    "LE": "LE",
    "H": "H",
    "Rg": "SW_IN",
    "Tair": "TA",
    "Tsoil": "TS",
    "rH": "RH",
    "RH": "RH",
    "VPD": "VPD",
    "Ustar": "USTAR",
    "qcNEE": "NEE_QC",
    "qcLE": "LE_QC",
    "qcH": "H_QC",
}

#: CH-Dav (diive) parquet columns -> canonical names, and their units (FLUXNET's).
DIIVE_COLUMNS = {
    "NEE_CUT_REF_orig": ("NEE", "umol m-2 s-1"),
    "QCF_NEE": ("NEE_QC", "1"),
    "LE_orig": ("LE", "W m-2"),
    "QCF_LE": ("LE_QC", "1"),
    "GPP_CUT_REF_f": ("GPP", "umol m-2 s-1"),
    "Reco_CUT_REF": ("RECO", "umol m-2 s-1"),
    "GPP_DT_CUT_REF": ("GPP_DT", "umol m-2 s-1"),
    "Reco_DT_CUT_REF": ("RECO_DT", "umol m-2 s-1"),
    "NEE_CUT_REF_f": ("NEE_REF_f", "umol m-2 s-1"),
    "LE_f": ("LE_REF_f", "W m-2"),
    "Tair_f": ("TA", "degC"),
    "Rg_f": ("SW_IN", "W m-2"),
    "VPD_f": ("VPD", "hPa"),
    "Tair_orig": ("TA_orig", "degC"),
    "Rg_orig": ("SW_IN_orig", "W m-2"),
    "VPD_orig": ("VPD_orig", "hPa"),
    "LW_IN": ("LW_IN", "W m-2"),
    "PA": ("PA", "hPa"),  # 820-854 in the file: hPa (CH-Dav lies at 1,639 m, ~83 kPa)
    "RH": ("RH", "%"),
    "PPFD": ("PPFD_IN", "umol m-2 s-1"),
    "SWC_FF0_0.15_1": ("SWC", "%"),
    "PREC_TOT_T1_25+20_1": ("P", "mm"),
}

# Site ids where the known file-name patterns put them, anywhere in the name (a download or an example
# may add a prefix: ``exampledata_FLX_CH-Cha_...``): after FLX_/AMF_/ICOSETC_/ICOS_/EFDC_/eddypro_
# (FLUXNET, AmeriFlux, ICOS, European Fluxes Database, EddyPro outputs), else as a word of its own, at
# the start or after an underscore (``CH-Dav_2013-2022_halfhourly.parquet``).  A CC-XXX inside another
# word is not a site (``FLUXNET-FULLSET`` holds ET-FUL).
_SITE_CODE = r"([A-Z]{2}-[A-Za-z0-9]{3})(?=[_.\-]|$)"
_SITE_ID_AFTER_NETWORK = re.compile(r"(?:^|_)(?:FLX|AMF|ICOSETC|ICOS|EFDC|eddypro)_" + _SITE_CODE)
_SITE_ID_AS_WORD = re.compile(r"(?:^|_)" + _SITE_CODE)
_SITE_HEADER = re.compile(r"^#\s*Site:\s*([A-Z]{2}-[A-Za-z0-9]{3})", re.MULTILINE)


class TowerFileError(ValueError):
    """A tower file cannot be read into the site dataset."""


def _site_from_name(path: Path) -> str | None:
    """Site id from an AmeriFlux '# Site:' header line, else from the file name."""
    if path.suffix.lower() in (".csv", ".txt", ".tsv"):
        with open(path, encoding="latin-1") as fh:
            head = fh.read(2000)
        match = _SITE_HEADER.search(head)
        if match:
            return match.group(1)
    for pattern in (_SITE_ID_AFTER_NETWORK, _SITE_ID_AS_WORD):
        found = list(dict.fromkeys(pattern.findall(path.name)))
        if len(found) > 1:
            raise TowerFileError(
                f"{path}: the file name holds several site ids {found}; pass the one it is with site= "
                "(command line: --site)"
            )
        if found:
            return found[0]
    return None


def _check_time(time: pd.DatetimeIndex, path: Path) -> None:
    if time.has_duplicates:
        dups = time[time.duplicated()].unique()[:3]
        raise TowerFileError(f"{path}: duplicate timestamps, e.g. {[str(t) for t in dups]}")
    if not time.is_monotonic_increasing:
        bad = int(np.flatnonzero(np.diff(time.values) < np.timedelta64(0))[0])
        raise TowerFileError(
            f"{path}: timestamps are not increasing at row {bad + 1} ({time[bad]} then {time[bad + 1]})"
        )


def _to_dataset(frame: pd.DataFrame, units: dict[str, str], path: Path) -> xr.Dataset:
    """Site dataset (time) from canonical columns; -9999 -> NaN; units checked.

    Predictors are converted to the registry's units (PA in hPa -> kPa); fluxes
    keep the file's units (µmol m-2 s-1 half-hourly, g C m-2 d-1 daily).  Every
    variable is checked against its plausible range: a sub-daily record loses its
    few values outside it (flagged ``<VAR>_RANGE``), a daily one is refused
    (:func:`uflux_xr.core.plausibility.screen_physical_range`).
    """
    ds = xr.Dataset()
    predictors = registry()["predictors"]
    for name, series in frame.items():
        u = units.get(name, "1")
        if canonical_units(u) is None:
            raise TowerFileError(f"{path}: column for {name!r} has unknown units {u!r}")
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, copy=True)
        values[values == MISSING] = np.nan
        u = canonical_units(u) or u  # known: checked above
        target = predictors.get(name, {}).get("units")
        if target is not None and u != target and can_convert(u, target):
            values, u = np.asarray(convert_values(values, u, target), dtype=np.float64), target
        ds[name] = ("time", values, {"units": u})
    ds = ds.assign_coords(time=frame.index.values)
    return screen_physical_range(ds, source=str(path))


# ---------------------------------------------------------------------------
# FLUXNET2015 / ONEFlux
# ---------------------------------------------------------------------------


def _fluxnet_time(frame: pd.DataFrame, path: Path) -> tuple[pd.DatetimeIndex, str]:
    """Middle of each averaging period, and the resolution label (HH, DD, WW, MM, YY)."""

    def parse(col, fmt):
        try:
            return pd.to_datetime(frame[col].astype("int64").astype(str), format=fmt)
        except (ValueError, TypeError) as err:
            raise TowerFileError(f"{path}: column {col!r} is not {fmt} timestamps ({err})") from None

    if "TIMESTAMP_START" in frame and "TIMESTAMP_END" in frame:
        width = len(str(int(frame["TIMESTAMP_START"].iloc[0])))
        if width == 12:
            start, end = parse("TIMESTAMP_START", "%Y%m%d%H%M"), parse("TIMESTAMP_END", "%Y%m%d%H%M")
            return pd.DatetimeIndex(start + (end - start) / 2), "HH"
        start = parse("TIMESTAMP_START", "%Y%m%d")
        end = parse("TIMESTAMP_END", "%Y%m%d") + pd.Timedelta(days=1)  # weekly: END is the last day
        return pd.DatetimeIndex(start + (end - start) / 2), "WW"
    if "TIMESTAMP" in frame:
        width = len(str(int(frame["TIMESTAMP"].iloc[0])))
        if width == 8:
            return pd.DatetimeIndex(parse("TIMESTAMP", "%Y%m%d") + pd.Timedelta(hours=12)), "DD"
        if width == 6:
            start = parse("TIMESTAMP", "%Y%m")
            end = start + pd.offsets.MonthBegin(1)
            return pd.DatetimeIndex(start + (end - start) / 2), "MM"
        if width == 4:
            start = parse("TIMESTAMP", "%Y")
            end = start + pd.offsets.YearBegin(1)
            return pd.DatetimeIndex(start + (end - start) / 2), "YY"
    raise TowerFileError(f"{path}: no FLUXNET timestamp columns (TIMESTAMP_START/TIMESTAMP_END or TIMESTAMP)")


def read_fluxnet(path: str | Path) -> xr.Dataset:
    """Read one FLUXNET2015 / ONEFlux CSV file (any resolution) into a site dataset (time).

    The canonical variables are taken from the preferred FLUXNET column
    (:data:`FLUXNET_COLUMNS`; NEE from ``NEE_VUT_REF``, GPP/RECO from the
    night-time partitioning, daytime ones as ``GPP_DT``/``RECO_DT``) with its
    ``_QC`` column as ``<VAR>_QC``; units follow ONEFlux's tables for the file's
    resolution (µmol CO2 m-2 s-1 half-hourly, g C m-2 d-1 daily and coarser).
    """
    path = Path(path)
    frame = pd.read_csv(path, na_values=[MISSING, str(int(MISSING))], low_memory=False)
    time, resolution = _fluxnet_time(frame, path)
    units = _FLUXNET_UNITS_HH if resolution == "HH" else _FLUXNET_UNITS_DAILY
    out, out_units, sources = {}, {}, {}
    for name, candidates in FLUXNET_COLUMNS.items():
        col = next((c for c in candidates if c in frame), None)
        if col is None:
            continue
        out[name], out_units[name], sources[name] = frame[col], units[name], col
        if f"{col}_QC" in frame:
            out[f"{name}_QC"], out_units[f"{name}_QC"] = frame[f"{col}_QC"], "1"
    if not out:
        raise TowerFileError(f"{path}: none of the FLUXNET variables {sorted(FLUXNET_COLUMNS)} found")
    table = pd.DataFrame(out)
    table.index = time
    _check_time(table.index, path)
    ds = _to_dataset(table, out_units, path)
    for name, col in sources.items():
        ds[name].attrs["source_column"] = col
    ds.attrs.update({"source_file": path.name, "source_format": f"FLUXNET {resolution}"})
    return ds


# ---------------------------------------------------------------------------
# AmeriFlux BASE
# ---------------------------------------------------------------------------

#: AmeriFlux BASE variable -> (canonical name, units of the AmeriFlux BASE convention).
AMERIFLUX_BASE_VARIABLES = {
    "FC": ("NEE", "umol m-2 s-1"),
    "NEE": ("NEE", "umol m-2 s-1"),
    "LE": ("LE", "W m-2"),
    "H": ("H", "W m-2"),
    "TA": ("TA", "degC"),
    "SW_IN": ("SW_IN", "W m-2"),
    "LW_IN": ("LW_IN", "W m-2"),
    "VPD": ("VPD", "hPa"),
    "P": ("P", "mm"),
    "PA": ("PA", "kPa"),
    "WS": ("WS", "m s-1"),
    "USTAR": ("USTAR", "m s-1"),
    "RH": ("RH", "%"),
    "SWC": ("SWC", "%"),
    "TS": ("TS", "degC"),
}
_BASE_NAME = re.compile(r"^(?P<var>[A-Z_]+?)(?:_(?P<h>\d+)_(?P<v>\d+)_(?P<r>\d+))?$")


def read_ameriflux_base(path: str | Path) -> xr.Dataset:
    """Read an AmeriFlux BASE CSV file into a site dataset (time).

    For each variable the unsuffixed column, else the qualifier with the lowest
    horizontal/vertical/replicate indices (``TA_1_1_1`` before ``TA_1_2_1``) is
    used; NEE is taken from ``NEE`` when present, else from ``FC`` (the
    turbulent flux, without the storage term).
    """
    path = Path(path)
    with open(path, encoding="latin-1") as fh:
        skip = 0
        for line in fh:
            if not line.startswith("#"):
                break
            skip += 1
    frame = pd.read_csv(path, skiprows=skip, na_values=[MISSING, str(int(MISSING))], low_memory=False)
    if "TIMESTAMP_START" not in frame or "TIMESTAMP_END" not in frame:
        raise TowerFileError(f"{path}: missing required columns TIMESTAMP_START/TIMESTAMP_END")
    time, _ = _fluxnet_time(frame, path)
    chosen: dict[str, tuple[tuple, str, str]] = {}
    for col in frame.columns:
        m = _BASE_NAME.match(col)
        if not m or m["var"] not in AMERIFLUX_BASE_VARIABLES:
            continue
        canon = AMERIFLUX_BASE_VARIABLES[m["var"]][0]
        rank = (
            m["var"] != "NEE" and canon == "NEE",  # NEE before FC
            0 if m["h"] is None else 1,
            *(int(m[k] or 0) for k in ("h", "v", "r")),
        )
        if canon not in chosen or rank < chosen[canon][0]:
            chosen[canon] = (rank, col, m["var"])
    if not chosen:
        raise TowerFileError(f"{path}: none of the AmeriFlux BASE variables {sorted(AMERIFLUX_BASE_VARIABLES)} found")
    table = pd.DataFrame({canon: frame[col] for canon, (_, col, _) in chosen.items()})
    table.index = time
    _check_time(table.index, path)
    units = {canon: AMERIFLUX_BASE_VARIABLES[base][1] for canon, (_, _, base) in chosen.items()}
    ds = _to_dataset(table, units, path)
    for canon, (_, col, _) in chosen.items():
        ds[canon].attrs["source_column"] = col
    ds.attrs.update({"source_file": path.name, "source_format": "AmeriFlux BASE"})
    return ds


# ---------------------------------------------------------------------------
# REddyProc / hesseflux text
# ---------------------------------------------------------------------------

_REDDYPROC_UNITS = {
    "umolm-2s-1": "umol m-2 s-1",
    "wm-2": "W m-2",
    "degc": "degC",
    "%": "%",
    "hpa": "hPa",
    "ms-1": "m s-1",
    "--": "1",
    "-": "1",
    "kpa": "kPa",
    "mm": "mm",
}


def read_reddyproc(path: str | Path, year: int | None = None) -> xr.Dataset:
    """Read a REddyProc / hesseflux text file (names row, units row, data) into a site dataset.

    Parameters
    ----------
    path : str or path-like
        Tab- or whitespace-separated file.
    year : int, optional
        Year of a ``Day Hour`` file without a ``Year`` column (default: a
        4-digit year in the file name).
    """
    path = Path(path)
    with open(path, encoding="latin-1") as fh:
        names = fh.readline().split()
        unit_row = fh.readline().split()
    if len(unit_row) != len(names):
        raise TowerFileError(f"{path}: the units row has {len(unit_row)} fields for {len(names)} names")
    frame = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, names=names, engine="python")
    if {"Year", "DoY", "Hour"} <= set(frame):
        years = frame["Year"].astype(int)
        days = frame["DoY"].astype(int)
    elif {"Day", "Hour"} <= set(frame):
        if year is None:
            found = re.search(r"(19|20)\d{2}", path.name)
            if found is None:
                raise TowerFileError(f"{path}: a Day/Hour file needs year= (no year in the file name)")
            year = int(found.group(0))
        years = pd.Series(year, index=frame.index)
        days = frame["Day"].astype(int)
    else:
        raise TowerFileError(f"{path}: missing time columns; expected Year DoY Hour or Day Hour, got {names[:4]}")
    # Hour is the end of the averaging period; the period length is the step of Hour.
    step_h = float(np.median(np.diff(frame["Hour"].to_numpy()[:100]))) % 24 or 0.5
    end = (
        pd.to_datetime(years.astype(str), format="%Y")
        + pd.to_timedelta(days - 1, unit="D")
        + pd.to_timedelta(frame["Hour"], unit="h")
    )
    time = pd.DatetimeIndex(end - pd.to_timedelta(step_h / 2, unit="h"))
    out, out_units = {}, {}
    for col, unit in zip(names, unit_row, strict=True):
        if col not in REDDYPROC_COLUMNS:
            continue
        canon = REDDYPROC_COLUMNS[col]
        u = _REDDYPROC_UNITS.get(unit.lower())
        if u is None:
            raise TowerFileError(f"{path}: column {col!r} has unknown units {unit!r}")
        out[canon], out_units[canon] = frame[col], u
    table = pd.DataFrame(out)
    table.index = time
    _check_time(table.index, path)
    ds = _to_dataset(table, out_units, path)
    ds.attrs.update({"source_file": path.name, "source_format": "REddyProc text"})
    return ds


# ---------------------------------------------------------------------------
# diive / CH-Dav parquet
# ---------------------------------------------------------------------------


def read_diive_parquet(path: str | Path) -> xr.Dataset:
    """Read the CH-Dav example parquet (index ``TIMESTAMP_MIDDLE``) into a site dataset.

    Measured fluxes after QC become ``NEE`` and ``LE`` (with ``QCF_*`` as
    ``_QC``); REddyProc's gap-filled references are kept as ``NEE_REF_f`` and
    ``LE_REF_f``; gap-filled drivers are ``TA``, ``SW_IN``, ``VPD`` and the
    measured ones ``*_orig``.
    """
    path = Path(path)
    frame = pd.read_parquet(path)
    if frame.index.name != "TIMESTAMP_MIDDLE":
        raise TowerFileError(f"{path}: expected the index TIMESTAMP_MIDDLE, got {frame.index.name!r}")
    present = {col: spec for col, spec in DIIVE_COLUMNS.items() if col in frame}
    if "NEE_CUT_REF_orig" not in present:
        raise TowerFileError(f"{path}: missing required column 'NEE_CUT_REF_orig'")
    table = pd.DataFrame({name: frame[col] for col, (name, _) in present.items()})
    table.index = pd.DatetimeIndex(frame.index)
    _check_time(table.index, path)
    ds = _to_dataset(table, {name: u for name, u in present.values()}, path)
    ds.attrs.update({"source_file": path.name, "source_format": "diive parquet"})
    return ds


# ---------------------------------------------------------------------------
# Many files -> one site dataset
# ---------------------------------------------------------------------------

_READERS: dict[str, Callable[..., xr.Dataset]] = {
    "fluxnet": read_fluxnet,
    "ameriflux-base": read_ameriflux_base,
    "reddyproc": read_reddyproc,
    "diive": read_diive_parquet,
}


def detect_format(path: str | Path) -> str:
    """Guess a tower file's format from its suffix and first line."""
    path = Path(path)
    if path.suffix == ".parquet":
        return "diive"
    with open(path, encoding="latin-1") as fh:
        first = fh.readline()
    if first.startswith("#"):
        return "ameriflux-base"
    if first.startswith(("TIMESTAMP_START", "TIMESTAMP,")) or first.startswith("TIMESTAMP\n"):
        header = first.strip().split(",")
        # FLUXNET products name processed variables (..._F, ..._VUT_REF); BASE files do not.
        if any(h.endswith(("_F", "_VUT_REF", "_F_MDS", "_CUT_REF")) for h in header) or "TIMESTAMP" in header:
            return "fluxnet"
        return "ameriflux-base"
    fields = first.split()
    if fields[:2] == ["Day", "Hour"] or fields[:3] == ["Year", "DoY", "Hour"]:
        return "reddyproc"
    raise TowerFileError(
        f"{path}: unknown tower file format (first line {first[:60]!r}); name it with format= "
        f"(command line: --format), one of {', '.join(_READERS)}"
    )


#: Column names seen in site tables (FLUXNET/ICOS/AmeriFlux BADM exports, spreadsheets) -> ours.
METADATA_ALIASES = {
    "site": ("site", "site_id", "SITE_ID", "Site", "SITE"),
    "lat": ("lat", "latitude", "LAT", "Latitude", "LOCATION_LAT"),
    "lon": ("lon", "longitude", "long", "LON", "Longitude", "LOCATION_LONG"),
    "igbp": ("igbp", "IGBP", "landcover", "IGBP_CLASS"),
    "elevation": ("elevation", "elev", "ELEVATION", "Elevation", "LOCATION_ELEV", "altitude"),
    "utc_offset": ("utc_offset", "UTC_OFFSET", "utc", "timezone", "TIMEZONE", "time_zone"),
}


def _metadata_table(metadata) -> pd.DataFrame:
    """Site metadata as a table with our column names, coordinates checked."""
    if isinstance(metadata, str | Path):
        source = str(metadata)
        metadata = pd.read_csv(metadata)
    elif isinstance(metadata, pd.DataFrame):
        source = "site metadata table"
    else:
        source = "site metadata dict"
        metadata = pd.DataFrame([{"site": k, **dict(v)} for k, v in metadata.items()])
    renames = {}
    for ours, spellings in METADATA_ALIASES.items():
        found = [c for c in spellings if c in metadata.columns]
        if len(found) > 1:
            raise TowerFileError(f"{source}: columns {found} all mean {ours!r}; keep one")
        if found:
            renames[found[0]] = ours
    table = metadata.rename(columns=renames)
    for required in ("site", "lat", "lon"):
        if required not in table:
            raise TowerFileError(
                f"{source}: no {required!r} column (accepted: {', '.join(METADATA_ALIASES[required])}); "
                f"columns are {list(metadata.columns)}"
            )
    for coord, limit in (("lat", 90.0), ("lon", 180.0)):
        values = pd.to_numeric(table[coord], errors="coerce")
        bad = table["site"][~(values.abs() <= limit)]
        if len(bad):
            raise TowerFileError(
                f"{source}: {coord} of site(s) {list(bad)[:5]} missing or outside [-{limit:g}, {limit:g}] degrees"
            )
        table[coord] = values
    if "utc_offset" in table:
        values = pd.to_numeric(table["utc_offset"], errors="coerce")
        bad = table["site"][values.notna() & ~values.between(-12, 14)]
        if len(bad):
            raise TowerFileError(f"{source}: utc_offset of site(s) {list(bad)[:5]} outside [-12, 14] h")
        table["utc_offset"] = values
    return table


def _site_metadata(metadata: pd.DataFrame | None, site: str) -> dict:
    if metadata is None:
        return {}
    rows = metadata[metadata["site"] == site]
    if not len(rows):
        raise TowerFileError(f"site {site!r} is not in the site metadata (sites there: {list(metadata['site'])[:10]})")
    return rows.iloc[0].to_dict()


def read_sites(
    paths,
    format: str = "auto",
    metadata=None,
    site: str | None = None,
    year: int | None = None,
    *,
    position_check: str = "raise",
) -> xr.Dataset:
    """Read tower files into one site dataset (site, time).

    Parameters
    ----------
    paths : path or list of paths
        Files of one or many sites; several files of one site are joined in time.
    format : {"auto", "fluxnet", "ameriflux-base", "reddyproc", "diive"}
        File format (``auto`` detects it per file).
    metadata : path, pandas.DataFrame or dict, optional
        Site metadata with ``site``, ``lat``, ``lon`` [degrees], ``igbp``,
        ``elevation`` [m] and ``utc_offset`` (hours local standard time is
        ahead of UTC [h], BADM ``UTC_OFFSET``): a CSV path, a table, or
        ``{site: {...}}``.
    site : str, optional
        Site id for files whose name does not follow a known pattern
        (``FLX_CC-XXX_...``, ``AMF_``, ``ICOSETC_``, ``eddypro_``, or a name that
        starts with ``CC-XXX``).
    year : int, optional
        Year of REddyProc / hesseflux ``Day Hour`` files without a ``Year`` column.
    position_check : {"raise", "warn", "off"}
        A sub-daily record with SW_IN whose metadata give lat, lon and utc_offset is compared with the
        sun there (:func:`uflux_xr.core.sun_check.check_sun_timing`): a lag of 45 min or more (swapped
        coordinates, UTC for local time) raises :class:`~uflux_xr.core.sun_check.PositionError`;
        ``warn`` logs it, ``off`` skips the check.

    Returns
    -------
    xarray.Dataset
        Dims (site, time); coords ``site``, ``lat``, ``lon``, ``igbp``,
        ``elevation``, ``utc_offset`` (NaN / "unknown" where metadata are missing).
    """
    # a URL becomes a fresh local copy; every name below is then a local path
    paths = [Path(local_copy(p)) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    if not paths:
        raise TowerFileError("no tower files given")
    table = None if metadata is None else _metadata_table(metadata)
    per_site: dict[str, list[xr.Dataset]] = {}
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: tower file not found")
        fmt = detect_format(path) if format == "auto" else format
        if fmt not in _READERS:
            raise ValueError(f"format must be one of {['auto', *_READERS]}, got {format!r}")
        sid = site or _site_from_name(path)
        if sid is None:
            raise TowerFileError(
                f"{path}: no site id in a known file-name pattern (FLX_CC-XXX_..., AMF_, ICOSETC_, eddypro_, "
                "or CC-XXX as a word of the name); pass site= (command line: --site)"
            )
        if year is not None and fmt != "reddyproc":
            raise TowerFileError(f"{path}: year= applies to REddyProc Day/Hour text files only, not {fmt!r}")
        reader = _READERS[fmt]
        per_site.setdefault(sid, []).append(reader(path, year=year) if fmt == "reddyproc" else reader(path))
    datasets = []
    for sid, parts in per_site.items():
        ds = xr.concat(parts, dim="time", data_vars="all", join="outer") if len(parts) > 1 else parts[0]
        _check_time(ds.indexes["time"], Path(", ".join(p.attrs.get("source_file", "?") for p in parts)))
        meta = _site_metadata(table, sid)
        if "SW_IN" in ds:
            check_sun_timing(
                ds.indexes["time"],
                ds["SW_IN"].values,
                *(float(meta.get(k, np.nan)) for k in ("lat", "lon", "utc_offset")),
                site=sid,
                policy=position_check,
            )
        ds = ds.expand_dims(site=[sid]).assign_coords(
            lat=("site", [float(meta.get("lat", np.nan))], {"units": "degrees_north"}),
            lon=("site", [float(meta.get("lon", np.nan))], {"units": "degrees_east"}),
            igbp=("site", [igbp_name(meta.get("igbp", "unknown"))]),
            elevation=("site", [float(meta.get("elevation", np.nan))], {"units": "m"}),
            utc_offset=("site", [float(meta.get("utc_offset", np.nan))], {"units": "h"}),
        )
        datasets.append(ds)
    out = (
        xr.concat(datasets, dim="site", join="outer", combine_attrs="drop_conflicts")
        if len(datasets) > 1
        else datasets[0]
    )
    flags = [name for name in out.data_vars if str(name).endswith(RANGE_FLAG_SUFFIX)]
    if flags:  # a file or site without removed values has no flag: 0 there
        out = out.assign({name: out[name].fillna(0).astype(np.int8) for name in flags})
        out.attrs["physical_range_removed"] = "; ".join(
            f"{str(name).removesuffix(RANGE_FLAG_SUFFIX)} {int(out[name].sum()):,}" for name in flags
        )
    log.info(
        "read %d site(s), %d time steps, variables %s",
        out.sizes["site"],
        out.sizes["time"],
        sorted(map(str, out.data_vars)),
    )
    return out
