"""Text best tracks: mdcli CSV, IBTrACS v04 CSV (with its units row), the legacy IBTrACS
extracts CLIMADA ships (``ibtracsID,isotime,...,vmax`` in knots) and HURDAT2."""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime
from pathlib import Path

from mdcli.data.importing.common import EPOCH, parse_time
from mdcli.data.importing.tracks.model import RawStorm
from mdcli.data.importing.units import track_factor
from mdcli.errors import InputError

TRACK_COLUMNS = ("storm_id", "time", "lat", "lon")
OPTIONAL_COLUMNS = ("intensity", "pressure", "category")
HURDAT2_HEADER = re.compile(r"^\s*([A-Z]{2}\d{6})\s*,\s*([^,]*),\s*(\d+)\s*,?\s*$")
MISSING = ("", "-999", "-999.0", "-9999", "-99")


def text_format(first_line: str) -> str:
    """The format of a text track from its first line."""
    cols = [c.strip().lower() for c in first_line.split(",")]
    if "sid" in cols and "iso_time" in cols:
        return "ibtracs-csv"
    if "ibtracsid" in cols and "isotime" in cols:
        return "climada-csv"
    if HURDAT2_HEADER.match(first_line):
        return "hurdat2"
    return "csv"


def read_text_track(path: Path, fmt: str) -> list[RawStorm]:
    with open(path, newline="", encoding="utf-8-sig", errors="strict") as handle:
        try:
            lines = handle.read().splitlines()
        except UnicodeDecodeError:
            raise InputError(f"--track {path}: not UTF-8 text (expected --track-format "
                             f"{fmt})") from None
    if fmt == "hurdat2":
        return _hurdat2(path, lines)
    rows = list(csv.reader(lines))
    return {"csv": _mdcli_csv, "ibtracs-csv": _ibtracs_csv, "climada-csv": _climada_csv}[fmt](
        path, rows)


def _number(path: Path, line: int, column: str, text: str, expected: str) -> float:
    text = text.strip()
    if text in MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--track {path} line {line}: column '{column}': {text!r} is not "
                         f"{expected}") from None


def _columns(path: Path, header: list[str], need: tuple[str, ...], fmt: str) -> dict[str, int]:
    index = {h.strip().lower(): i for i, h in enumerate(header)}
    for col in need:
        if col.lower() not in index:
            raise InputError(f"--track {path}: missing column '{col}' for --track-format {fmt} "
                             f"(header: {','.join(h.strip() for h in header) or 'empty'})")
    return index


def _storm(storms: dict[str, RawStorm], sid: str, **kw: object) -> RawStorm:
    if sid not in storms:
        storms[sid] = RawStorm(sid, **kw)  # type: ignore[arg-type]
    return storms[sid]


def _mdcli_csv(path: Path, rows: list[list[str]]) -> list[RawStorm]:
    header = [h.strip().lower() for h in (rows[0] if rows else [])]
    for col in TRACK_COLUMNS:
        if col not in header:
            raise InputError(f"--track {path}: missing column '{col}' (header: "
                             f"{','.join(header) or 'empty'}; expected "
                             f"{','.join(TRACK_COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}], or an "
                             f"IBTrACS/HURDAT2 file)")
    where = {c: header.index(c) for c in (*TRACK_COLUMNS, *OPTIONAL_COLUMNS) if c in header}
    storms: dict[str, RawStorm] = {}
    for line, values in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise InputError(f"--track {path} line {line}: {len(values)} fields, the header "
                             f"has {len(header)}")
        cell = {c: values[i].strip() for c, i in where.items()}
        if not cell["storm_id"]:
            raise InputError(f"--track {path} line {line}: column 'storm_id' is empty")
        try:
            hours = parse_time(cell["time"])
        except (ValueError, IndexError):
            raise InputError(f"--track {path} line {line}: column 'time': {cell['time']!r} is "
                             f"not an ISO time (e.g. 2005-08-23T18:00)") from None
        lat = _number(path, line, "lat", cell["lat"], "a latitude in [-90, 90]")
        lon = _number(path, line, "lon", cell["lon"], "a longitude in [-360, 360]")
        if math.isnan(lat) or math.isnan(lon):
            raise InputError(f"--track {path} line {line}: latitude and longitude are required")
        wind = _number(path, line, "intensity", cell.get("intensity", ""), "a wind in m/s")
        pres = _number(path, line, "pressure", cell.get("pressure", ""), "a pressure in hPa")
        cat = -1
        if cell.get("category", ""):
            try:
                cat = int(cell["category"])
            except ValueError:
                cat = -2
            if not 0 <= cat <= 5:
                raise InputError(f"--track {path} line {line}: column 'category': "
                                 f"{cell['category']!r} is not an integer 0..5 or empty")
        _storm(storms, cell["storm_id"]).points.append(
            (hours, lat, lon, wind, pres, cat, f"line {line}"))
    if not storms:
        raise InputError(f"--track {path}: no track points (expected rows of "
                         f"{','.join(TRACK_COLUMNS)})")
    return list(storms.values())


def _ibtracs_csv(path: Path, rows: list[list[str]]) -> list[RawStorm]:
    """IBTrACS v04 CSV: header, units row, one row per point; winds WMO_WIND (else USA_WIND)
    and pressures WMO_PRES (else USA_PRES) in the units the units row gives."""
    if len(rows) < 2:
        raise InputError(f"--track {path}: an IBTrACS CSV needs its header and units rows")
    header, units = rows[0], rows[1]
    col = _columns(path, header, ("SID", "SEASON", "NAME", "ISO_TIME", "LAT", "LON"),
                   "ibtracs-csv")
    pairs = {kind: [(c, col[c.lower()]) for c in names if c.lower() in col]
             for kind, names in (("wind", ("WMO_WIND", "USA_WIND")),
                                 ("pres", ("WMO_PRES", "USA_PRES")))}
    factor = {}
    for kind, target in (("wind", "m/s"), ("pres", "hPa")):
        for name, i in pairs[kind]:
            unit = units[i].strip() if i < len(units) else ""
            if not unit:
                raise InputError(f"--track {path} line 2: no units for column '{name}' (the "
                                 f"IBTrACS units row, e.g. kts and mb)")
            factor[name] = track_factor(unit, target, f"--track {path} line 2: column "
                                                      f"'{name}'")
    storms: dict[str, RawStorm] = {}
    for line, values in enumerate(rows[2:], start=3):
        if not any(v.strip() for v in values):
            continue
        if len(values) < len(header):
            raise InputError(f"--track {path} line {line}: {len(values)} fields, the header "
                             f"has {len(header)}")
        sid = values[col["sid"]].strip()
        try:
            stamp = datetime.strptime(values[col["iso_time"]].strip(), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise InputError(f"--track {path} line {line}: column 'ISO_TIME': "
                             f"{values[col['iso_time']]!r} is not YYYY-MM-DD HH:MM:SS") from None
        season = _number(path, line, "SEASON", values[col["season"]], "a year")
        picked = {}
        for kind, cols in pairs.items():
            picked[kind] = math.nan, cols[0][0] if cols else kind
            for name, i in cols:
                x = _number(path, line, name, values[i], "a number or blank")
                if math.isfinite(x):
                    picked[kind] = x * factor[name], name
                    break
        storm = _storm(storms, sid, name=values[col["name"]].strip(),
                       season=None if math.isnan(season) else int(season),
                       wind_column=picked["wind"][1], pressure_column=picked["pres"][1])
        storm.points.append(((stamp - EPOCH).total_seconds() / 3600.0,
                             _number(path, line, "LAT", values[col["lat"]], "a latitude"),
                             _number(path, line, "LON", values[col["lon"]], "a longitude"),
                             picked["wind"][0], picked["pres"][0], -1, f"line {line}"))
    return list(storms.values())


def _climada_csv(path: Path, rows: list[list[str]]) -> list[RawStorm]:
    """The legacy IBTrACS extracts of CLIMADA: ``isotime`` YYYYMMDDHH, ``cgps_lat/lon``,
    ``vmax`` in knots, ``pcen`` in mb (this format has no units row: its units are fixed)."""
    header = rows[0]
    col = _columns(path, header, ("ibtracsID", "isotime", "cgps_lat", "cgps_lon", "vmax",
                                  "pcen"), "climada-csv")
    kts = track_factor("kts", "m/s", "climada-csv")
    storms: dict[str, RawStorm] = {}
    for line, values in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        text = values[col["isotime"]].strip().split(".")[0]
        try:
            stamp = datetime.strptime(text, "%Y%m%d%H")
        except ValueError:
            raise InputError(f"--track {path} line {line}: column 'isotime': {text!r} is not "
                             f"YYYYMMDDHH") from None
        sid = values[col["ibtracsid"]].strip()
        storm = _storm(storms, sid, season=int(sid[:4]) if sid[:4].isdigit() else None,
                       wind_column="vmax", pressure_column="pcen")
        storm.points.append(((stamp - EPOCH).total_seconds() / 3600.0,
                             _number(path, line, "cgps_lat", values[col["cgps_lat"]], "a latitude"),
                             _number(path, line, "cgps_lon", values[col["cgps_lon"]],
                                     "a longitude"),
                             kts * _number(path, line, "vmax", values[col["vmax"]], "knots"),
                             _number(path, line, "pcen", values[col["pcen"]], "mb"), -1,
                             f"line {line}"))
    return list(storms.values())


def _hurdat2(path: Path, lines: list[str]) -> list[RawStorm]:
    """HURDAT2: a header ``AL041992, ANDREW, 43,`` then that many data lines
    ``YYYYMMDD, HHMM, record, status, 25.4N, 80.3W, wind kt, pressure mb, radii...``."""
    kts = track_factor("kts", "m/s", "hurdat2")
    storms: list[RawStorm] = []
    left = 0
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        head = HURDAT2_HEADER.match(text)
        if left == 0:
            if not head:
                raise InputError(f"--track {path} line {line}: expected a HURDAT2 header such "
                                 f"as 'AL041992, ANDREW, 43,', got {text[:40]!r}")
            sid = head.group(1)
            storms.append(RawStorm(sid, name=head.group(2).strip(), season=int(sid[4:]),
                                   wind_column="max wind (kt)",
                                   pressure_column="min pressure (mb)"))
            left = int(head.group(3))
            continue
        f = [x.strip() for x in text.split(",")]
        left -= 1
        try:
            stamp = datetime.strptime(f[0] + f[1].zfill(4), "%Y%m%d%H%M")
            lat = float(f[4][:-1]) * (1 if f[4][-1] in "Nn" else -1 if f[4][-1] in "Ss" else
                                      math.nan)
            lon = float(f[5][:-1]) * (-1 if f[5][-1] in "Ww" else 1 if f[5][-1] in "Ee" else
                                      math.nan)
            wind, pres = float(f[6]), float(f[7])
        except (ValueError, IndexError):
            raise InputError(f"--track {path} line {line}: expected a HURDAT2 data line "
                             f"'YYYYMMDD, HHMM, , TS, 25.4N, 80.3W, 145, 922, ...', got "
                             f"{text[:60]!r}") from None
        if not (math.isfinite(lat) and math.isfinite(lon)):
            raise InputError(f"--track {path} line {line}: latitude/longitude need N/S and "
                             f"E/W suffixes, got {f[4]!r}, {f[5]!r}")
        storms[-1].points.append(((stamp - EPOCH).total_seconds() / 3600.0, lat, lon,
                                  math.nan if wind < 0 else wind * kts,
                                  math.nan if pres < 0 else pres, -1, f"line {line}"))
    if left:
        raise InputError(f"--track {path}: storm {storms[-1].sid} ends after "
                         f"{len(storms[-1].points)} data lines, its header announced "
                         f"{len(storms[-1].points) + left}")
    return storms
