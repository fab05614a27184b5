"""Best tracks: one :class:`StormTrack` per storm, in m/s and hPa."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdcli.data.importing.common import format_time, parse_time
from mdcli.data.layout import category
from mdcli.errors import InputError

TRACK_COLUMNS = ("storm_id", "time", "lat", "lon")
OPTIONAL_COLUMNS = ("intensity", "pressure", "category")


@dataclass
class StormTrack:
    """One storm of the track CSV, sorted by time."""

    name: str
    hours: np.ndarray       # float64, hours since 1970-01-01 UTC
    lat: np.ndarray
    lon: np.ndarray
    intensity: np.ndarray   # m/s, NaN where unknown
    pressure: np.ndarray    # hPa, NaN where unknown
    category: np.ndarray    # int64, -1 where unknown

    def __len__(self) -> int:
        return len(self.hours)


def read_track(path: str | Path) -> list[StormTrack]:
    """Read a track CSV (``storm_id,time,lat,lon`` and optional ``intensity`` m/s,
    ``pressure`` hPa, ``category``); storms in order of first appearance."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--track {path}: file not found")
    rows: dict[str, list[tuple]] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        for col in TRACK_COLUMNS:
            if col not in header:
                raise InputError(f"--track {path}: missing column '{col}' (header: "
                                 f"{','.join(header) or 'empty'}; expected "
                                 f"{','.join(TRACK_COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}])")
        where = {c: header.index(c) for c in (*TRACK_COLUMNS, *OPTIONAL_COLUMNS) if c in header}
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            line = reader.line_num
            if len(values) != len(header):
                raise InputError(f"--track {path} line {line}: {len(values)} fields, the "
                                 f"header has {len(header)}")
            cell = {c: values[i].strip() for c, i in where.items()}
            rows.setdefault(_track_id(path, line, cell), []).append(_track_row(path, line, cell))
    if not rows:
        raise InputError(f"--track {path}: no track points (expected rows of "
                         f"{','.join(TRACK_COLUMNS)})")
    storms = []
    for name, points in rows.items():
        points.sort(key=lambda p: p[0])
        arr = np.array([p[:5] for p in points], dtype=np.float64)
        dup = np.flatnonzero(np.diff(arr[:, 0]) == 0)
        if dup.size:
            raise InputError(f"--track {path}: storm '{name}' has two points at "
                             f"{format_time(arr[dup[0], 0])}")
        storms.append(StormTrack(name, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4],
                                 np.array([p[5] for p in points], dtype=np.int64)))
    return storms


def _track_id(path: Path, line: int, cell: dict[str, str]) -> str:
    if not cell["storm_id"]:
        raise InputError(f"--track {path} line {line}: column 'storm_id' is empty")
    return cell["storm_id"]


def _track_row(path: Path, line: int, cell: dict[str, str]) -> tuple:
    def bad(col: str, expected: str) -> InputError:
        return InputError(f"--track {path} line {line}: column '{col}': {cell[col]!r} is not "
                          f"{expected}")

    try:
        hours = parse_time(cell["time"])
    except (ValueError, IndexError):
        raise bad("time", "an ISO time (e.g. 2005-08-23T18:00)") from None
    numbers = {}
    for col, lo, hi, expected in (("lat", -90, 90, "a latitude in [-90, 90]"),
                                  ("lon", -360, 360, "a longitude in [-360, 360]"),
                                  ("intensity", 0, 200, "a wind speed in m/s (0..200) or empty"),
                                  ("pressure", 800, 1100, "a pressure in hPa (800..1100) or "
                                                          "empty")):
        text = cell.get(col, "")
        if col in OPTIONAL_COLUMNS and not text:
            numbers[col] = math.nan
            continue
        try:
            numbers[col] = float(text)
        except ValueError:
            raise bad(col, expected) from None
        if not lo <= numbers[col] <= hi:
            raise bad(col, expected)
    cat = -1
    if cell.get("category", ""):
        try:
            cat = int(cell["category"])
        except ValueError:
            raise bad("category", "an integer 0..5 or empty") from None
        if not 0 <= cat <= 5:
            raise bad("category", "an integer 0..5 or empty")
    if cat < 0 and math.isfinite(numbers["intensity"]):
        cat = int(category(numbers["intensity"]))
    return (hours, numbers["lat"], numbers["lon"], numbers["intensity"], numbers["pressure"],
            cat)
