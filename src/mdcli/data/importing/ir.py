"""Satellite IR frames of one storm (brightness temperature in K)."""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from mdcli.data.importing.common import EPOCH, format_time, hours_of
from mdcli.data.importing.coords import find_coord, require_values
from mdcli.data.importing.grid import Axis, CurvilinearGrid, Grid, Reader
from mdcli.data.importing.hursat import flat_frames, frame_info, storm_archive, unpack
from mdcli.data.importing.netcdf import open_netcdf, require_netcdf
from mdcli.data.importing.units import check_plausible, conversion
from mdcli.errors import InputError

IR_NAMES = ("IRWIN", "irwin_cdr", "irwin", "IR", "ir", "Tb", "tb")
FRAME_NAME = re.compile(r"^(\d{12})\.npy$")


@dataclass
class IRFrame:
    """One IR frame: its time (hours since 1970), grid and a reader of brightness temperature
    in K."""

    hours: float
    grid: Grid | CurvilinearGrid
    read: Reader
    source: str
    satellite: str = ""          # from a HURSAT-B1 file name
    angle: float = float("nan")  # the angle field of a HURSAT-B1 file name


def _nc_ir_frames(xr: Any, path: Path, stack: ExitStack, label: str = "") -> list[IRFrame]:
    """Frames of a NetCDF file: lat/lon as 1-D axes, per-frame axes ``[time, n]`` or 2-D
    (curvilinear) ``[y, x]`` / ``[time, y, x]``."""
    ds = open_netcdf(xr, path, "--ir", stack)
    name = next((n for n in IR_NAMES if n in ds.data_vars), None)
    if name is None:
        raise InputError(f"--ir {path}: no IR variable (looked for {', '.join(IR_NAMES)}); the "
                         f"file has {', '.join(map(str, ds.data_vars)) or 'no variables'}")
    da = ds[name]
    where = f"--ir {path}: variable '{name}'"
    for kind in ("latitude", "longitude"):
        require_values(da, kind, where)
    time_name = find_coord(ds, "time", da.dims)
    if time_name is not None and time_name not in da.dims:
        da = da.expand_dims(time_name)
    lat_name, lon_name = find_coord(ds, "latitude", da.dims), find_coord(ds, "longitude",
                                                                         da.dims)
    if time_name is None or da.ndim != 3 or lat_name is None or lon_name is None:
        raise InputError(f"{where} has dimensions {tuple(da.dims)}; expected (time, lat, lon) "
                         f"with latitude, longitude and time coordinates")
    lat, lon = ds[lat_name], ds[lon_name]
    space = [d for d in da.dims if d != time_name]
    curvilinear = lat.dims == lon.dims and set(space) <= set(lat.dims)
    if curvilinear:
        ydim, xdim = [d for d in lat.dims if d in space]
    else:
        ydim, xdim = lat.dims[-1], lon.dims[-1]  # lat may be [lat] or [time, lat]
    if {ydim, xdim} != set(space):
        raise InputError(f"{where} has dimensions {tuple(da.dims)}; its latitude "
                         f"'{lat_name}' {lat.dims} and longitude '{lon_name}' {lon.dims} do "
                         f"not span them")
    da = da.transpose(time_name, ydim, xdim)
    units = da.attrs.get("units")
    factor, shift = conversion("ir", units, where)
    hours = hours_of(ds[time_name], where)
    lats = np.asarray(lat.transpose(*[d for d in lat.dims if d not in (ydim, xdim)], *[
        d for d in (ydim, xdim) if d in lat.dims]).values)
    lons = np.asarray(lon.transpose(*[d for d in lon.dims if d not in (ydim, xdim)], *[
        d for d in (ydim, xdim) if d in lon.dims]).values)
    per_frame = time_name in lat.dims
    frames = []
    for k, t in enumerate(hours):
        la, lo = (lats[k], lons[k]) if per_frame else (lats, lons)
        grid: Grid | CurvilinearGrid = (
            CurvilinearGrid(la, lo, f"--ir {path}") if curvilinear else
            Grid(Axis("latitude", la, f"--ir {path}"), Axis("longitude", lo, f"--ir {path}")))

        def read(rows: Any, cols: Any, k: int = k) -> np.ndarray:
            try:
                raw = da.isel({time_name: k, ydim: rows, xdim: cols}).values
            except (OSError, RuntimeError, ValueError) as exc:
                raise InputError(f"--ir {path}: cannot read '{name}' ({exc})") from None
            return np.asarray(raw, dtype=np.float64) * factor + shift
        frames.append(IRFrame(float(t), grid, read, f"{label or path} (time "
                                                    f"{format_time(t)})", *frame_info(path)))
    first = frames[0].read(slice(None, None, 4), slice(None, None, 4)) if frames else None
    if first is not None:
        check_plausible("ir", first, units, where)
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
    """The IR frames of ``storm``, sorted by time (the smallest HURSAT angle first at equal
    times). ``path`` is a folder holding ``<storm>.nc``, ``<storm>/`` (``*.nc`` files or
    ``<YYYYmmddHHMM>.npy`` frames plus ``grid.json``), HURSAT-B1 ``<storm>*.tar.gz`` or
    HURSAT-B1 frame files lying flat; or one NetCDF file / archive for a one-storm track."""
    path = Path(path)
    xr = None
    if not path.exists():
        raise InputError(f"--ir {path}: not found")
    if path.is_file():
        if n_storms != 1:
            raise InputError(f"--ir {path}: a single file serves a one-storm track; the track "
                             f"has {n_storms} storms: give a folder with <storm_id>.nc files")
        ncs = (unpack(path, stack) if path.name.endswith((".tar.gz", ".tgz", ".tar"))
               else [path])
        archive = path if ncs != [path] else None
    elif (path / f"{storm}.nc").is_file():
        ncs, archive = [path / f"{storm}.nc"], None
    elif (path / storm).is_dir():
        folder = path / storm
        ncs, npys, archive = sorted(folder.glob("*.nc")), sorted(folder.glob("*.npy")), None
        if not ncs and npys:
            return sorted(_npy_ir_frames(folder, npys), key=lambda f: f.hours)
        if not ncs:
            raise InputError(f"--ir {folder}: no *.nc or <YYYYmmddHHMM>.npy frames for storm "
                             f"'{storm}'")
    elif (archive := storm_archive(path, storm)) is not None:
        ncs = unpack(archive, stack)
    elif flat := flat_frames(path, storm):
        ncs = flat
    else:
        raise InputError(f"--ir {path}: no IR frames for storm '{storm}' (looked for "
                         f"{storm}.nc, a folder {storm}/, a HURSAT-B1 {storm}*.tar.gz and "
                         f"{storm}.*.hursat-b1*.nc files)")
    xr = require_netcdf()
    frames = [f for nc in ncs for f in _nc_ir_frames(
        xr, nc, stack, f"{archive}:{nc.name}" if archive else "")]
    frames.sort(key=lambda f: (f.hours, f.angle if f.angle == f.angle else 0.0))
    return frames
