"""Track points as read (:class:`RawStorm`) and checked (:class:`StormTrack`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mdcli.data.importing.common import format_time
from mdcli.data.layout import category

MAX_WIND_MS = 100.0  # no best track on record exceeds about 95 m/s (185 kt)
PRESSURE_HPA = (800.0, 1100.0)


@dataclass
class RawStorm:
    """One storm's points as read: ``(hours, lat, lon, wind m/s, pressure hPa, category,
    where)`` with NaN / -1 where unknown; ``where`` locates the point for messages."""

    sid: str
    name: str = ""
    season: int | None = None
    wind_column: str = "intensity"
    pressure_column: str = "pressure"
    points: list[tuple[float, float, float, float, float, int, str]] = field(
        default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.sid} ({self.name} {self.season})" if self.name else self.sid


@dataclass
class StormTrack:
    """One storm of the track, sorted by time."""

    name: str               # the storm's id (SID) as in the file
    hours: np.ndarray       # float64, hours since 1970-01-01 UTC
    lat: np.ndarray
    lon: np.ndarray
    intensity: np.ndarray   # m/s, NaN where unknown
    pressure: np.ndarray    # hPa, NaN where unknown
    category: np.ndarray    # int64, -1 where unknown

    def __len__(self) -> int:
        return len(self.hours)


def check_point(path: Path, storm: RawStorm, point: tuple) -> None:
    """Range checks of one point; an intensity above 100 m/s names the unit mix-up."""
    from mdcli.errors import InputError

    _, lat, lon, wind, pres, _, where = point
    head = f"--track {path} {where}"
    if not -90 <= lat <= 90:
        raise InputError(f"{head}: latitude {lat:g}, expected degrees in [-90, 90]")
    if not -360 <= lon <= 360:
        raise InputError(f"{head}: longitude {lon:g}, expected degrees in [-360, 360]")
    if math.isfinite(wind) and not 0 <= wind <= MAX_WIND_MS:
        raise InputError(f"{head}: column '{storm.wind_column}' is {wind:.1f} m/s, above "
                         f"{MAX_WIND_MS:g} m/s (no storm on record is faster): are these "
                         f"knots or km/h given as m/s? (1 kt = 0.5144 m/s)")
    lo, hi = PRESSURE_HPA
    if math.isfinite(pres) and not lo <= pres <= hi:
        raise InputError(f"{head}: column '{storm.pressure_column}' is {pres:g} hPa, expected "
                         f"{lo:g}..{hi:g} hPa (Pa given as hPa?)")


def finish(path: Path, raw: list[RawStorm]) -> list[StormTrack]:
    """Check, sort and stack the points; categories from the wind where not given."""
    from mdcli.errors import InputError

    storms = []
    for storm in raw:
        if not storm.points:
            continue
        for point in storm.points:
            check_point(path, storm, point)
        points = sorted(storm.points, key=lambda p: p[0])
        arr = np.array([p[:5] for p in points], dtype=np.float64)
        dup = np.flatnonzero(np.diff(arr[:, 0]) == 0)
        if dup.size:
            raise InputError(f"--track {path}: storm '{storm.sid}' has two points at "
                             f"{format_time(arr[dup[0], 0])} ({points[dup[0] + 1][6]})")
        cat = np.array([p[5] for p in points], dtype=np.int64)
        known = (cat < 0) & np.isfinite(arr[:, 3])
        cat[known] = category(arr[known, 3])
        storms.append(StormTrack(storm.sid, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3],
                                 arr[:, 4], cat))
    if not storms:
        raise InputError(f"--track {path}: no track points")
    return storms
