"""ERA5 fields: each variable across the given files, converted to the layout's units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdcli.data.importing.common import (
    LAT_NAMES,
    LEVEL_NAMES,
    LON_NAMES,
    PRESSURE_VARIABLES,
    TIME_NAMES,
    hours_of,
)
from mdcli.data.importing.grid import Axis, Grid, Reader
from mdcli.data.importing.netcdf import expand, find, open_netcdf, require_netcdf, with_time_dim
from mdcli.data.importing.units import conversion
from mdcli.data.layout import VARIABLES
from mdcli.errors import InputError


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


def _era5_piece(path: Path, ds: Any, name: str, level: float | None) -> tuple[_Piece, str]:
    da = ds[name]
    where = f"--era5 {path}: variable '{name}'"
    da, time_dim = with_time_dim(da, da.coords)
    lat_dim, lon_dim = find(LAT_NAMES, da.dims), find(LON_NAMES, da.dims)
    if time_dim is None or lat_dim is None or lon_dim is None:
        raise InputError(f"{where} has dimensions {tuple(da.dims)}, expected a time "
                         f"({'/'.join(TIME_NAMES)}), latitude and longitude dimension")
    level_dim = find(LEVEL_NAMES, da.dims) or find(LEVEL_NAMES, da.coords)
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
    factor, shift = conversion(name, units, where)
    grid = Grid(Axis("latitude", da[lat_dim].values, f"--era5 {path}"),
                Axis("longitude", da[lon_dim].values, f"--era5 {path}"))
    return (_Piece(path, da, time_dim, lat_dim, lon_dim, hours_of(da[time_dim].values, where),
                   grid, factor, shift), str(units) if units is not None else "ERA5 default")


def open_era5(paths: Sequence[str | Path], levels: Mapping[str, float],
              stack: ExitStack) -> dict[str, Era5Field]:
    """Open the ERA5 files (or folders of ``*.nc``) and return the four variables, each
    with its pressure level selected. Files close when ``stack`` does."""
    xr = require_netcdf()
    files = expand(paths, "--era5", ".nc")
    if not files:
        raise InputError("--era5: give at least one ERA5 NetCDF file")
    pieces: dict[str, list[_Piece]] = {v: [] for v in VARIABLES}
    units: dict[str, str] = {}
    holds = []
    for path in files:
        ds = open_netcdf(xr, path, "--era5", stack)
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
