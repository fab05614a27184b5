"""Import real ERA5 fields, satellite IR frames and a best track into the ``mdcli-tc`` layout.

``mdcli data import`` (and :func:`import_tc` from a notebook) reads

- ERA5 NetCDF files (one or several): ``sst`` and ``msl`` on single levels, ``z`` and ``r`` on
  pressure levels, with dimensions ``valid_time``/``time``, ``pressure_level``/``level``,
  ``latitude``, ``longitude`` (any latitude order, longitudes 0..360 or -180..180, global grids
  wrap around);
- satellite IR brightness temperature per storm: a HURSAT-style NetCDF file (a variable such
  as ``IRWIN`` on ``lat``/``lon`` and ``time``) or a folder of ``<YYYYmmddHHMM>.npy`` frames
  with a ``grid.json``;
- a track CSV with columns ``storm_id,time,lat,lon`` (ISO times) and optionally
  ``intensity`` (m/s), ``pressure`` (hPa), ``category``.

For every track point it crops a ``window_deg`` x ``window_deg`` degree window centred on the
storm from the nearest IR frame and from the ERA5 fields, linearly interpolated in time to that
frame's time, regrids both bilinearly to ``size`` x ``size`` pixels and normalises them with the
layout's conventions (or with statistics of the data). Policies and the file layout are
documented in ``docs/data.md`` (section ``mdcli data import``).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mdcli import __version__
from mdcli.data.synth_tc import (
    IR_REFERENCE_K,
    IR_SCALE_K,
    NORMALISATION,
    VARIABLES,
    category,
    check_output,
    era5_attrs,
    ir_attrs,
    layout_root_attrs,
    write_meta_datasets,
)
from mdcli.errors import InputError
from mdcli.logs import log
from mdcli.progress import progress
from mdcli.storage.atomic import atomic_path

GRAVITY = 9.80665  # m s^-2, ERA5's geopotential -> geopotential height
KM_PER_DEGREE = 111.195  # km per degree of latitude
DEFAULT_LEVELS = {"z": 500.0, "r": 700.0}  # hPa
PRESSURE_VARIABLES = ("z", "r")
NORMALISE_MODES = ("layout", "data")
TIME_NAMES = ("valid_time", "time")
LEVEL_NAMES = ("pressure_level", "level", "isobaricInhPa", "plev")
LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon")
IR_NAMES = ("IRWIN", "irwin_cdr", "irwin", "IR", "ir", "Tb", "tb")
TRACK_COLUMNS = ("storm_id", "time", "lat", "lon")
OPTIONAL_COLUMNS = ("intensity", "pressure", "category")
FRAME_NAME = re.compile(r"^(\d{12})\.npy$")
NETCDF_HINT = "pip install mdcli[netcdf]"
EPOCH = datetime(1970, 1, 1)

# physical = raw * factor + shift, keyed by the file's units (lower case, no spaces, * or ^);
# None (no units attribute) means ERA5's own units
_UNITS: dict[str, dict[str | None, tuple[float, float]]] = {
    "sst": {None: (1.0, -273.15), "k": (1.0, -273.15), "kelvin": (1.0, -273.15),
            "degc": (1.0, 0.0), "c": (1.0, 0.0), "celsius": (1.0, 0.0),
            "degreesc": (1.0, 0.0), "degree_celsius": (1.0, 0.0)},
    "msl": {None: (0.01, 0.0), "pa": (0.01, 0.0), "hpa": (1.0, 0.0), "mb": (1.0, 0.0),
            "mbar": (1.0, 0.0), "millibars": (1.0, 0.0)},
    "z": {None: (1 / GRAVITY, 0.0), "m2s-2": (1 / GRAVITY, 0.0), "m2/s2": (1 / GRAVITY, 0.0),
          "m": (1.0, 0.0), "gpm": (1.0, 0.0)},
    "r": {None: (1.0, 0.0), "%": (1.0, 0.0), "percent": (1.0, 0.0)},
    "ir": {None: (1.0, 0.0), "k": (1.0, 0.0), "kelvin": (1.0, 0.0), "degc": (1.0, 273.15),
           "c": (1.0, 273.15), "celsius": (1.0, 273.15)},
}
_EXPECTED_UNITS = {"sst": "K or degC", "msl": "Pa or hPa", "z": "m**2 s**-2 or m",
                   "r": "%", "ir": "K or degC"}

Reader = Callable[[slice, Any], np.ndarray]  # (rows, cols) -> raw 2-D block


# ----------------------------------------------------------------------------- small helpers
def require_netcdf() -> Any:
    """Import xarray (and check netCDF4) lazily; ``InputError`` with the install hint if absent."""
    try:
        import netCDF4  # noqa: F401
        import xarray
    except ImportError as exc:
        raise InputError(f"`mdcli data import` needs xarray and netCDF4 ({exc.name} is not "
                         f"installed): {NETCDF_HINT}") from None
    return xarray


def parse_time(text: str) -> float:
    """Hours since 1970-01-01 UTC of an ISO time such as ``2005-08-23T18:00`` or ``...Z``."""
    s = text.strip()
    if s[-1:] in ("Z", "z"):
        s = s[:-1] + "+00:00"
    stamp = datetime.fromisoformat(s)
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(timezone.utc).replace(tzinfo=None)
    return (stamp - EPOCH).total_seconds() / 3600.0


def format_time(hours: float) -> str:
    """ISO text (UTC, minutes) of hours since 1970-01-01."""
    return (EPOCH + timedelta(hours=float(hours))).strftime("%Y-%m-%dT%H:%M")


def _hours(values: Any, where: str) -> np.ndarray:
    values = np.atleast_1d(np.asarray(values))
    if values.dtype.kind != "M":
        raise InputError(f"{where}: the time coordinate is not decoded as dates (dtype "
                         f"{values.dtype}); expected CF units such as 'hours since 1970-01-01'")
    return values.astype("datetime64[s]").astype(np.int64) / 3600.0


def _units_key(units: Any) -> str | None:
    if units is None:
        return None
    return re.sub(r"[\s*^.]", "", str(units)).lower()


def _conversion(var: str, units: Any, where: str) -> tuple[float, float]:
    table = _UNITS[var]
    key = _units_key(units)
    if key not in table:
        raise InputError(f"{where}: units {units!r}, expected {_EXPECTED_UNITS[var]}")
    if key is None:
        log.debug("%s: no units attribute, assuming ERA5's", where)
    return table[key]


def parse_levels(levels: str | Mapping[str, float] | None) -> dict[str, float]:
    """``"z=500,r=700"`` (or a mapping) -> ``{"z": 500.0, "r": 700.0}``; missing keys default."""
    out = dict(DEFAULT_LEVELS)
    if levels is None:
        return out
    if isinstance(levels, str):
        items = {}
        for part in filter(None, (p.strip() for p in levels.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise InputError(f"--levels {levels!r}: {part!r} is not VARIABLE=HPA "
                                 f"(e.g. z=500,r=700)")
            items[key.strip()] = value.strip()
        levels = items
    for key, value in levels.items():
        if key not in PRESSURE_VARIABLES:
            raise InputError(f"--levels: unknown variable {key!r}, expected z or r "
                             f"(sst and msl are single-level)")
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"--levels: {key}={value!r} is not a pressure in hPa") from None
        if not 0 < out[key] <= 1100:
            raise InputError(f"--levels: {key}={value} hPa, expected a pressure in (0, 1100]")
    return out


def _fill_nan(frame: np.ndarray, fill: float) -> int:
    """Replace non-finite pixels of ``frame`` in place by the nearest finite pixel (``fill``
    when none is finite); returns how many were replaced."""
    bad = ~np.isfinite(frame)
    n = int(bad.sum())
    if n == 0:
        return 0
    if n == frame.size:
        frame[:] = fill
        return n
    from scipy.ndimage import distance_transform_edt

    index = distance_transform_edt(bad, return_distances=False, return_indices=True)
    frame[bad] = frame[tuple(index)][bad]
    return n


# ----------------------------------------------------------------------------- grids
class Axis:
    """A monotonic 1-D coordinate (latitude or longitude, degrees) and fractional indices on it.

    A longitude axis that spans 360 degrees is periodic: windows wrap across its seam.
    """

    def __init__(self, name: str, values: Any, where: str) -> None:
        v = np.asarray(values, dtype=np.float64).ravel()
        self.name, self.where, self.n = name, where, v.size
        step = np.diff(v)
        if v.size < 2 or not np.all(np.isfinite(v)) or not (np.all(step > 0)
                                                              or np.all(step < 0)):
            raise InputError(f"{where}: {name} must hold at least 2 finite, strictly "
                             f"increasing or decreasing values")
        self.lo, self.hi = float(v.min()), float(v.max())
        d = float(np.median(np.abs(step)))
        self.periodic = (name == "longitude" and step[0] > 0
                         and abs(self.hi - self.lo + d - 360.0) <= 0.01 * d)
        self.tol = 1e-6 * d
        if self.periodic:
            self._x = np.concatenate([v - 360.0, v, v + 360.0])
            self._i = np.arange(-self.n, 2 * self.n, dtype=np.float64)
        elif step[0] > 0:
            self._x, self._i = v, np.arange(self.n, dtype=np.float64)
        else:
            self._x, self._i = v[::-1], np.arange(self.n, dtype=np.float64)[::-1]

    def locate(self, centre: float, offsets: np.ndarray) -> np.ndarray | None:
        """Fractional indices of ``centre + offsets`` degrees, ``None`` if any lies outside.

        Longitudes are first moved by whole turns into the axis's range."""
        if self.name == "longitude":
            centre = self.lo + (centre - self.lo) % 360.0
        pos = centre + offsets
        if not self.periodic and (pos.min() < self.lo - self.tol or pos.max() > self.hi + self.tol):
            return None
        frac = np.interp(pos, self._x, self._i)
        return frac if self.periodic else np.clip(frac, 0.0, self.n - 1.0)

    def block(self, frac: np.ndarray) -> tuple[Any, int]:
        """The index range (slice, or index array across a periodic seam) holding ``frac``
        and its first index (in the unwrapped index space)."""
        first = int(math.floor(frac.min()))
        last = int(math.floor(frac.max())) + 1
        if not self.periodic:
            first, last = max(first, 0), min(last, self.n - 1)
            return slice(first, last + 1), first
        index = np.arange(first, last + 1) % self.n
        if np.all(np.diff(index) == 1):
            return slice(int(index[0]), int(index[-1]) + 1), first
        return index, first

    def describe(self) -> str:
        return f"{self.name} {self.lo:g}..{self.hi:g}" + (" (global)" if self.periodic else "")


@dataclass
class Grid:
    """A rectilinear latitude/longitude grid."""

    lat: Axis
    lon: Axis

    def locate(self, lat: float, lon: float, lat_off: np.ndarray,
               lon_off: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Fractional (row, col) indices of the window's pixel centres, or ``None`` if outside."""
        rows = self.lat.locate(lat, lat_off)
        cols = self.lon.locate(lon, lon_off)
        return None if rows is None or cols is None else (rows, cols)

    def sample(self, read: Reader, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Bilinear ``[len(rows), len(cols)]`` samples: reads only the block that is needed."""
        from scipy.ndimage import map_coordinates

        rsel, r0 = self.lat.block(rows)
        csel, c0 = self.lon.block(cols)
        block = np.asarray(read(rsel, csel), dtype=np.float64)
        rr, cc = np.meshgrid(rows - r0, cols - c0, indexing="ij")
        return map_coordinates(block, [rr, cc], order=1, mode="nearest")

    def describe(self) -> str:
        return f"{self.lat.describe()}, {self.lon.describe()}"


def window_offsets(size: int, window_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Degrees from the centre of the pixel centres: rows (north to south), columns (west to
    east). Pixel ``i`` covers ``[i - 0.5, i + 0.5]``; the storm sits at ``size / 2 - 0.5``."""
    edge = (np.arange(size) + 0.5) * window_deg / size - window_deg / 2.0
    return -edge, edge


# ----------------------------------------------------------------------------- track
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


# ----------------------------------------------------------------------------- ERA5
@dataclass
class _Piece:
    """One variable in one ERA5 file: ``[time, lat, lon]`` (lazy), converted on reading."""

    path: Path
    data: Any
    time_dim: str
    lat_dim: str
    lon_dim: str
    hours: np.ndarray
    grid: Grid
    factor: float
    shift: float

    def reader(self, k: int) -> Reader:
        def read(rows: slice, cols: Any) -> np.ndarray:
            try:
                raw = self.data.isel({self.time_dim: k, self.lat_dim: rows,
                                      self.lon_dim: cols}).values
            except (OSError, RuntimeError, ValueError) as exc:
                raise InputError(f"--era5 {self.path}: cannot read '{self.data.name}' "
                                 f"({exc})") from None
            return np.asarray(raw, dtype=np.float64) * self.factor + self.shift
        return read


@dataclass
class Era5Field:
    """One ERA5 variable across the given files, in the layout's units."""

    name: str
    level: float | None
    source_units: str
    pieces: list[_Piece]

    def __post_init__(self) -> None:
        hours = np.concatenate([p.hours for p in self.pieces])
        owner = np.concatenate([np.full(len(p.hours), i) for i, p in enumerate(self.pieces)])
        local = np.concatenate([np.arange(len(p.hours)) for p in self.pieces])
        order = np.argsort(hours, kind="stable")
        hours, owner, local = hours[order], owner[order], local[order]
        keep = np.concatenate([[True], np.diff(hours) > 0])  # duplicate times: first file wins
        self.hours, self.owner, self.local = hours[keep], owner[keep], local[keep]

    @property
    def files(self) -> str:
        return ", ".join(str(p.path) for p in self.pieces)

    def weights(self, t: float) -> tuple[list[tuple[int, float]], float]:
        """Linear-in-time weights ``[(time index, weight)]`` at ``t`` (nearest outside the
        covered range) and the distance (hours) to the nearest ERA5 time."""
        h = self.hours
        j = int(np.searchsorted(h, t))
        gap = float(np.min(np.abs(h[max(j - 1, 0):j + 1] - t)))
        if j < len(h) and abs(h[j] - t) < 1e-6:
            return [(j, 1.0)], 0.0
        if j == 0 or j == len(h):
            return [(min(j, len(h) - 1), 1.0)], gap
        w = (t - h[j - 1]) / (h[j] - h[j - 1])
        return [(j - 1, 1.0 - w), (j, w)], gap

    def piece(self, index: int) -> tuple[_Piece, int]:
        return self.pieces[int(self.owner[index])], int(self.local[index])


def _find(names: Sequence[str], have: Any) -> str | None:
    return next((n for n in names if n in have), None)


def _with_time_dim(da: Any, coords: Any) -> tuple[Any, str | None]:
    """``da`` and its time dimension; a single time that is only a coordinate (one of
    ``coords``) becomes a length-1 dimension. None when there is no time at all."""
    time_dim = _find(TIME_NAMES, da.dims)
    if time_dim is None and _find(TIME_NAMES, coords):
        time_dim = _find(TIME_NAMES, coords)
        da = da.expand_dims(time_dim)
    return da, time_dim


def _era5_piece(path: Path, ds: Any, name: str, level: float | None) -> tuple[_Piece, str]:
    da = ds[name]
    where = f"--era5 {path}: variable '{name}'"
    da, time_dim = _with_time_dim(da, da.coords)
    lat_dim, lon_dim = _find(LAT_NAMES, da.dims), _find(LON_NAMES, da.dims)
    if time_dim is None or lat_dim is None or lon_dim is None:
        raise InputError(f"{where} has dimensions {tuple(da.dims)}, expected a time "
                         f"({'/'.join(TIME_NAMES)}), latitude and longitude dimension")
    level_dim = _find(LEVEL_NAMES, da.dims) or _find(LEVEL_NAMES, da.coords)
    if name in PRESSURE_VARIABLES:
        if level_dim is None:
            raise InputError(f"{where} has no pressure-level coordinate ({'/'.join(LEVEL_NAMES)})"
                             f"; expected {name} on pressure levels including {level:g} hPa")
        have = np.atleast_1d(np.asarray(da[level_dim].values, dtype=np.float64))
        match = np.flatnonzero(np.isclose(have, level))
        if match.size == 0:
            raise InputError(f"{where} has no {level:g} hPa level (it has "
                             f"{', '.join(f'{x:g}' for x in have)} hPa); pick one with --levels")
        if level_dim in da.dims:
            da = da.isel({level_dim: int(match[0])})
    for dim in [d for d in da.dims if d not in (time_dim, lat_dim, lon_dim)]:
        if da.sizes[dim] != 1:
            raise InputError(f"{where} has an extra dimension '{dim}' of size {da.sizes[dim]}; "
                             f"expected time, latitude, longitude (and a pressure level)")
        da = da.isel({dim: 0})
    da = da.transpose(time_dim, lat_dim, lon_dim)
    units = da.attrs.get("units")
    factor, shift = _conversion(name, units, where)
    grid = Grid(Axis("latitude", da[lat_dim].values, f"--era5 {path}"),
                Axis("longitude", da[lon_dim].values, f"--era5 {path}"))
    return (_Piece(path, da, time_dim, lat_dim, lon_dim, _hours(da[time_dim].values, where),
                   grid, factor, shift), str(units) if units is not None else "ERA5 default")


def _expand(paths: Sequence[str | Path], option: str, suffix: str) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob(f"*{suffix}"))
            if not found:
                raise InputError(f"{option} {p}: folder holds no {suffix} files")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{option} {p}: file not found")
    return out


def _open_netcdf(xr: Any, path: Path, option: str, stack: ExitStack) -> Any:
    try:
        ds = xr.open_dataset(path, engine="netcdf4", cache=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"{option} {path}: cannot read as NetCDF ({exc})") from None
    stack.callback(ds.close)
    return ds


def open_era5(paths: Sequence[str | Path], levels: Mapping[str, float],
              stack: ExitStack) -> dict[str, Era5Field]:
    """Open the ERA5 files (or folders of ``*.nc``) and return the four variables, each
    with its pressure level selected. Files close when ``stack`` does."""
    xr = require_netcdf()
    files = _expand(paths, "--era5", ".nc")
    if not files:
        raise InputError("--era5: give at least one ERA5 NetCDF file")
    pieces: dict[str, list[_Piece]] = {v: [] for v in VARIABLES}
    units: dict[str, str] = {}
    holds = []
    for path in files:
        ds = _open_netcdf(xr, path, "--era5", stack)
        holds.append(f"{path.name} has {', '.join(map(str, ds.data_vars)) or 'no variables'}")
        for v in VARIABLES:
            if v in ds.data_vars:
                piece, units[v] = _era5_piece(path, ds, v, levels.get(v))
                pieces[v].append(piece)
    for v in VARIABLES:
        if not pieces[v]:
            raise InputError(f"--era5: variable '{v}' not found in "
                             f"{', '.join(map(str, files))} ({'; '.join(holds)})")
    return {v: Era5Field(v, levels.get(v), units[v], pieces[v]) for v in VARIABLES}


# ----------------------------------------------------------------------------- IR
@dataclass
class IRFrame:
    """One IR frame: its time (hours since 1970), grid and a reader of brightness temperature
    in K."""

    hours: float
    grid: Grid
    read: Reader
    source: str


def _nc_ir_frames(xr: Any, path: Path, stack: ExitStack) -> list[IRFrame]:
    ds = _open_netcdf(xr, path, "--ir", stack)
    name = _find(IR_NAMES, ds.data_vars)
    if name is None:
        raise InputError(f"--ir {path}: no IR variable (looked for {', '.join(IR_NAMES)}); the "
                         f"file has {', '.join(map(str, ds.data_vars)) or 'no variables'}")
    da = ds[name]
    where = f"--ir {path}: variable '{name}'"
    da, time_dim = _with_time_dim(da, ds.variables)
    lat_name, lon_name = _find(LAT_NAMES, ds.variables), _find(LON_NAMES, ds.variables)
    ydim = ds[lat_name].dims[-1] if lat_name else None  # lat may be [lat] or [time, lat]
    xdim = ds[lon_name].dims[-1] if lon_name else None
    if time_dim is None or da.ndim != 3 or ydim not in da.dims or xdim not in da.dims:
        raise InputError(f"{where} has dimensions {tuple(da.dims)}; expected (time, lat, lon) "
                         f"with lat/latitude, lon/longitude and time coordinates")
    da = da.transpose(time_dim, ydim, xdim)
    factor, shift = _conversion("ir", da.attrs.get("units"), where)
    hours = _hours(ds[time_dim].values, where)
    lats, lons = np.asarray(ds[lat_name].values), np.asarray(ds[lon_name].values)
    frames = []
    for k, t in enumerate(hours):
        grid = Grid(Axis("latitude", lats[k] if lats.ndim == 2 else lats, f"--ir {path}"),
                    Axis("longitude", lons[k] if lons.ndim == 2 else lons, f"--ir {path}"))

        def read(rows: slice, cols: Any, k: int = k) -> np.ndarray:
            try:
                raw = da.isel({time_dim: k, ydim: rows, xdim: cols}).values
            except (OSError, RuntimeError, ValueError) as exc:
                raise InputError(f"--ir {path}: cannot read '{name}' ({exc})") from None
            return np.asarray(raw, dtype=np.float64) * factor + shift
        frames.append(IRFrame(float(t), grid, read, f"{path} (time {format_time(t)})"))
    return frames


def _npy_ir_frames(folder: Path, files: list[Path]) -> list[IRFrame]:
    grid_file = folder / "grid.json"
    if not grid_file.is_file():
        raise InputError(f"--ir {folder}: missing grid.json (expected {{\"lat\": [first row, "
                         f"last row], \"lon\": [first column, last column]}} in degrees)")
    default = _grid_json(grid_file)
    frames = []
    for f in files:
        match = FRAME_NAME.match(f.name)
        if not match:
            raise InputError(f"--ir {f}: frame names must be <YYYYmmddHHMM>.npy")
        try:
            hours = (datetime.strptime(match.group(1), "%Y%m%d%H%M") - EPOCH
                     ).total_seconds() / 3600.0
        except ValueError:
            raise InputError(f"--ir {f}: {match.group(1)} is not a YYYYmmddHHMM time") from None
        try:
            array = np.load(f, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"--ir {f}: cannot read as a .npy array ({exc})") from None
        if array.ndim != 2:
            raise InputError(f"--ir {f}: shape {array.shape}, expected a 2-D frame [lat, lon]")
        own = f.with_suffix(".json")
        lat, lon = _grid_json(own) if own.is_file() else default
        grid = Grid(Axis("latitude", np.linspace(*lat, array.shape[0]), f"--ir {f}"),
                    Axis("longitude", np.linspace(*lon, array.shape[1]), f"--ir {f}"))

        def read(rows: slice, cols: Any, array: np.ndarray = array) -> np.ndarray:
            return np.asarray(array[rows][:, cols], dtype=np.float64)
        frames.append(IRFrame(hours, grid, read, str(f)))
    return frames


def _grid_json(path: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        spec = json.loads(path.read_text())
        lat, lon = (tuple(float(x) for x in spec[k]) for k in ("lat", "lon"))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--ir {path}: expected {{\"lat\": [first row, last row], \"lon\": "
                         f"[first column, last column]}} in degrees ({exc})") from None
    if len(lat) != 2 or len(lon) != 2:
        raise InputError(f"--ir {path}: 'lat' and 'lon' must be [first, last] pairs")
    return lat, lon  # type: ignore[return-value]


def open_ir(path: str | Path, storm: str, n_storms: int, stack: ExitStack) -> list[IRFrame]:
    """The IR frames of ``storm``, sorted by time. ``path`` is a folder holding
    ``<storm>.nc`` or ``<storm>/`` (``*.nc`` files or ``<YYYYmmddHHMM>.npy`` frames plus
    ``grid.json``), or one NetCDF file when the track has a single storm."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"--ir {path}: not found")
    if path.is_file():
        if n_storms != 1:
            raise InputError(f"--ir {path}: a single file serves a one-storm track; the track "
                             f"has {n_storms} storms: give a folder with <storm_id>.nc files")
        frames = _nc_ir_frames(require_netcdf(), path, stack)
    elif (path / f"{storm}.nc").is_file():
        frames = _nc_ir_frames(require_netcdf(), path / f"{storm}.nc", stack)
    elif (path / storm).is_dir():
        folder = path / storm
        ncs, npys = sorted(folder.glob("*.nc")), sorted(folder.glob("*.npy"))
        if ncs:
            xr = require_netcdf()
            frames = [f for nc in ncs for f in _nc_ir_frames(xr, nc, stack)]
        elif npys:
            frames = _npy_ir_frames(folder, npys)
        else:
            raise InputError(f"--ir {folder}: no *.nc or <YYYYmmddHHMM>.npy frames for storm "
                             f"'{storm}'")
    else:
        raise InputError(f"--ir {path}: no IR frames for storm '{storm}' (looked for "
                         f"{storm}.nc and a folder {storm}/)")
    frames.sort(key=lambda f: f.hours)
    return frames


# ----------------------------------------------------------------------------- import
@dataclass
class _Sample:
    read: Reader
    grid: Grid
    rows: np.ndarray
    cols: np.ndarray
    weight: float

    def value(self) -> np.ndarray:
        return self.weight * self.grid.sample(self.read, self.rows, self.cols)


@dataclass
class _Frame:
    storm: StormTrack
    index: int            # track point
    ir_offset: float      # IR frame time - track time, hours
    ir: _Sample
    era5: dict[str, list[_Sample]]


def _where(storm: StormTrack, i: int) -> str:
    return (f"storm '{storm.name}' at {format_time(storm.hours[i])} (lat {storm.lat[i]:.2f}, "
            f"lon {storm.lon[i]:.2f})")


def _plan_frame(storm: StormTrack, i: int, ir: list[IRFrame], fields: dict[str, Era5Field],
                offsets: tuple[np.ndarray, np.ndarray], window_deg: float,
                max_gap_hours: float) -> _Frame:
    """Choose the IR frame and ERA5 times of one track point and check the window is covered."""
    t, lat, lon = storm.hours[i], storm.lat[i], storm.lon[i]
    ir_hours = np.array([f.hours for f in ir])
    k = int(np.argmin(np.abs(ir_hours - t)))
    frame = ir[k]
    if abs(frame.hours - t) > max_gap_hours:
        raise InputError(f"{_where(storm, i)}: the nearest IR frame ({frame.source}) is "
                         f"{abs(frame.hours - t):.2f} h away, more than --max-gap-hours "
                         f"{max_gap_hours:g}")
    idx = frame.grid.locate(lat, lon, *offsets)
    if idx is None:
        raise InputError(f"{_where(storm, i)}: the {window_deg:g}-degree window runs outside "
                         f"the IR grid of {frame.source} ({frame.grid.describe()})")
    ir_sample = _Sample(frame.read, frame.grid, *idx, 1.0)
    era5 = {}
    for v, field in fields.items():
        weights, gap = field.weights(frame.hours)
        if gap > max_gap_hours:
            near = field.hours[np.argmin(np.abs(field.hours - frame.hours))]
            raise InputError(f"{_where(storm, i)}: the nearest ERA5 '{v}' time "
                             f"({format_time(near)}) is {gap:.2f} h from the IR frame at "
                             f"{format_time(frame.hours)}, more than --max-gap-hours "
                             f"{max_gap_hours:g} ({field.files})")
        samples = []
        for index, w in weights:
            piece, local = field.piece(index)
            idx = piece.grid.locate(lat, lon, *offsets)
            if idx is None:
                raise InputError(f"{_where(storm, i)}: the {window_deg:g}-degree window runs "
                                 f"outside the ERA5 grid of {piece.path} ('{v}': "
                                 f"{piece.grid.describe()})")
            samples.append(_Sample(piece.reader(local), piece.grid, *idx, w))
        era5[v] = samples
    return _Frame(storm, i, frame.hours - t, ir_sample, era5)


def segments(lengths: Sequence[int], frames: int) -> list[tuple[int, int]]:
    """``(storm, first point)`` of every row: each storm is cut into consecutive, non-overlapping
    segments of ``frames`` points; the rest of a storm (fewer than ``frames`` points) is dropped."""
    return [(s, start) for s, n in enumerate(lengths) for start in range(0, n - frames + 1,
                                                                          frames)]


def import_tc(era5: Sequence[str | Path], ir: str | Path, track: str | Path, out: str | Path,
              *, size: int = 64, window_deg: float = 10.0,
              levels: str | Mapping[str, float] | None = None, max_gap_hours: float = 3.0,
              frames: int | None = None, normalise: str = "layout") -> Path:
    """Import ERA5 + IR + track into the ``mdcli-tc`` HDF5 file ``out`` (written atomically).

    Parameters
    ----------
    era5: ERA5 NetCDF files or folders of ``*.nc`` (sst, msl, z, r; several files may split
        the variables or the times).
    ir: folder of per-storm IR (``<storm_id>.nc`` or ``<storm_id>/``), or one NetCDF file for a
        one-storm track.
    track: CSV ``storm_id,time,lat,lon[,intensity,pressure,category]``.
    size: output pixels per side (a multiple of 16 >= 32).
    window_deg: window width and height in degrees of latitude and longitude.
    levels: pressure levels of z and r, e.g. ``"z=500,r=700"`` (the default).
    max_gap_hours: the largest allowed time between a track point and its IR frame, and
        between an IR frame and the nearest ERA5 time.
    frames: points per row; storms are cut into segments of this length (default: the
        shortest storm's length).
    normalise: ``"layout"`` (the layout's fixed offsets and scales) or ``"data"`` (each ERA5
        variable's mean and standard deviation over the file).

    Returns
    -------
    The path written.
    """
    out = Path(out)
    if size < 32 or size % 16:
        raise InputError(f"--size: got {size}, expected a multiple of 16 >= 32")
    if not 0 < window_deg < 180:
        raise InputError(f"--window-deg: got {window_deg:g}, expected degrees in (0, 180)")
    if not max_gap_hours >= 0:
        raise InputError(f"--max-gap-hours: got {max_gap_hours:g}, expected hours >= 0")
    if normalise not in NORMALISE_MODES:
        raise InputError(f"--normalise: got {normalise!r}, expected one of "
                         f"{', '.join(NORMALISE_MODES)}")
    if frames is not None and frames < 2:
        raise InputError(f"--frames: got {frames}, expected an integer >= 2")
    check_output(out)
    lv = parse_levels(levels)
    storms = read_track(track)
    with ExitStack() as stack:
        fields = open_era5(list(era5), lv, stack)
        ir_frames = {s.name: open_ir(ir, s.name, len(storms), stack) for s in storms}
        length = frames or min(len(s) for s in storms)
        rows = segments([len(s) for s in storms], length)
        short = [s.name for s in storms if len(s) < length]
        if short:
            log.warning("skipping %d storm(s) with fewer than %d track points: %s",
                        len(short), length, ", ".join(short))
        if not rows:
            raise InputError(f"--frames {length}: no storm has that many track points "
                             f"(longest: {max(len(s) for s in storms)})")
        dropped = sum(len(s) for s in storms) - len(rows) * length
        offsets = window_offsets(size, window_deg)
        plan = [[_plan_frame(storms[s], start + f, ir_frames[storms[s].name], fields, offsets,
                             window_deg, max_gap_hours) for f in range(length)]
                for s, start in rows]
        log.info("importing %d storms as %d rows x %d frames of %dx%d px (%g-degree windows; "
                 "%d track points left over)", len(storms), len(rows), length, size, size,
                 window_deg, dropped)
        if lv != DEFAULT_LEVELS and normalise == "layout":
            log.warning("levels %s differ from the layout's z=500,r=700: the fixed offsets and "
                        "scales may not suit them (consider --normalise data)", lv)
        try:
            _write(out, plan, storms, fields, lv, size, window_deg, normalise,
                   {"era5": [str(p) for p in _expand(list(era5), "--era5", ".nc")],
                    "ir": str(ir), "track": str(track), "max_gap_hours": max_gap_hours,
                    "frame_policy": f"segments of {length} consecutive track points; the rest "
                                    f"of each storm dropped"})
        except OSError as exc:
            raise InputError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    return out


def _write(out: Path, plan: list[list[_Frame]], storms: list[StormTrack],
           fields: dict[str, Era5Field], levels: dict[str, float], size: int, window_deg: float,
           normalise: str, sources: dict) -> None:
    s, t, n = len(plan), len(plan[0]), size
    stats = {v: np.zeros(3) for v in VARIABLES}  # count, sum, sum of squares (physical)
    filled = dict.fromkeys(("ir", *VARIABLES), 0)
    empty = dict.fromkeys(VARIABLES, 0)  # frames without one valid value in the window
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        ir_ds = h5.create_dataset("ir", (s, t, n, n), np.float32, chunks=(1, 1, n, n))
        era5 = {v: h5.create_dataset(f"era5/{v}", (s, t, n, n), np.float32, chunks=(1, 1, n, n))
                for v in VARIABLES}
        with progress(s * t, "import frames") as bar:
            for r, row in enumerate(plan):
                for f, frame in enumerate(row):
                    tb = frame.ir.value()
                    if not np.isfinite(tb).any():
                        raise InputError(f"{_where(frame.storm, frame.index)}: the IR frame has "
                                         f"no valid pixels in the window")
                    filled["ir"] += _fill_nan(tb, IR_REFERENCE_K)
                    ir_ds[r, f] = np.clip((IR_REFERENCE_K - tb) / IR_SCALE_K, -1.0, 1.0)
                    for v in VARIABLES:
                        x = sum(sample.value() for sample in frame.era5[v])
                        count = _fill_nan(x, NORMALISATION[v]["offset"])
                        filled[v] += count
                        empty[v] += count == x.size
                        if normalise == "layout":
                            norm = NORMALISATION[v]
                            x = (x - norm["offset"]) / norm["scale"]
                        else:
                            stats[v] += (x.size, x.sum(), np.square(x).sum())
                        era5[v][r, f] = x
                    bar.advance(1)
        h5["ir"].attrs.update({**ir_attrs(), "filled_fraction": filled["ir"] / (s * t * n * n)})
        for v in VARIABLES:
            norm = NORMALISATION[v]
            level = f"{levels[v]:g} hPa" if v in PRESSURE_VARIABLES else norm["level"]
            if normalise == "layout":
                offset, scale = norm["offset"], norm["scale"]
            else:
                count, total, squares = stats[v]
                offset = total / count
                std = math.sqrt(max(squares / count - offset ** 2, 0.0))
                scale = std if std > 1e-9 * max(abs(offset), 1.0) else 1.0
                for r in range(s):
                    era5[v][r] = (era5[v][r] - offset) / scale
            era5[v].attrs.update({**era5_attrs(float(offset), float(scale), norm["units"], level),
                                  "statistics": "layout" if normalise == "layout" else
                                  "mean and standard deviation of this file",
                                  "source_units": fields[v].source_units,
                                  "filled_fraction": filled[v] / (s * t * n * n)})
        _write_meta(h5, plan, storms, size)
        hours = np.array([[fr.storm.hours[fr.index] for fr in row] for row in plan])
        steps = np.diff(hours, axis=1)
        if np.ptp(steps) > 1e-6:
            log.warning("track steps vary from %.2f to %.2f h: /meta/time holds the true times",
                        steps.min(), steps.max())
        h5.attrs.update({
            **layout_root_attrs(), "seed": -1, "n_storms": s, "frames": t, "size": n,
            "dt_hours": float(np.median(steps)), "domain_km": window_deg * KM_PER_DEGREE,
            "window_deg": window_deg, "levels": json.dumps(levels), "normalise": normalise,
            "n_source_storms": len({fr.storm.name for row in plan for fr in row}),
            "generator": f"mdcli {__version__} data import", "sources": json.dumps(sources)})
    for name, count in filled.items():
        if count:
            log.info("%s: filled %d missing pixels (%.2f%%) from their nearest valid pixel",
                     name, count, 100.0 * count / (s * t * n * n))
    for v, count in empty.items():
        if count:
            norm = NORMALISATION[v]
            log.warning("%s: %d frame(s) had no valid value in the window (e.g. SST over land) "
                        "and hold %g %s throughout", v, count, norm["offset"], norm["units"])


def _write_meta(h5: h5py.File, plan: list[list[_Frame]], storms: list[StormTrack],
                size: int) -> None:
    index = {st.name: i for i, st in enumerate(storms)}

    def grid(get: Callable[[_Frame], float], dtype: Any) -> np.ndarray:
        return np.array([[get(fr) for fr in row] for row in plan], dtype=dtype)

    hours = grid(lambda fr: fr.storm.hours[fr.index], np.float64)
    seen: dict[str, int] = {}
    segment = []
    for row in plan:
        name = row[0].storm.name
        segment.append(seen.setdefault(name, 0))
        seen[name] += 1
    centre = np.full((len(plan), len(plan[0]), 2), size / 2.0 - 0.5, np.float32)
    write_meta_datasets(h5.create_group("meta"), {
        "storm_id": (np.array([index[row[0].storm.name] for row in plan], np.int64), "",
                     "storm number (order of first appearance in the track CSV); the segments "
                     "of one storm share it"),
        "storm_name": (np.array([row[0].storm.name for row in plan], dtype=h5py.string_dtype()),
                       "", "storm_id as written in the track CSV"),
        "segment": (np.array(segment, np.int64), "", "segment number within the storm"),
        "time": ((hours - hours[:, :1]).astype(np.float32), "hours",
                 "time since the row's first frame"),
        "epoch_hours": (hours, "hours", "track time, hours since 1970-01-01T00:00 UTC"),
        "ir_time_offset": (grid(lambda fr: fr.ir_offset, np.float32), "hours",
                           "time of the IR frame used minus the track time"),
        "center": (centre, "pixels", "storm centre (row, col); pixel i spans [i-0.5, i+0.5]; "
                                     "windows are centred on the track point"),
        "lat": (grid(lambda fr: fr.storm.lat[fr.index], np.float32), "degrees_north",
                "track latitude (window centre)"),
        "lon": (grid(lambda fr: fr.storm.lon[fr.index], np.float32), "degrees_east",
                "track longitude (window centre), as in the track CSV"),
        "intensity": (grid(lambda fr: fr.storm.intensity[fr.index], np.float32), "m/s",
                      "maximum sustained wind from the track CSV; NaN where not given"),
        "pressure": (grid(lambda fr: fr.storm.pressure[fr.index], np.float32), "hPa",
                     "central pressure from the track CSV; NaN where not given"),
        "category": (grid(lambda fr: fr.storm.category[fr.index], np.int64), "",
                     "Saffir-Simpson-like 0..5 from the CSV, else from the intensity; -1 where "
                     "unknown"),
    })
