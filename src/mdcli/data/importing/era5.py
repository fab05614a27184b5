"""ERA5 fields: each variable across the given files, converted to the layout's units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdcli.data.importing.common import PRESSURE_VARIABLES, hours_of
from mdcli.data.importing.coords import dim_of, find_coord, levels_hpa, require_values
from mdcli.data.importing.grid import Axis, Grid, Reader
from mdcli.data.importing.sources import open_sources
from mdcli.data.importing.units import ERA5_UNITS, check_plausible, conversion
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
    expver: np.ndarray | None  # per time, the expver index to read (ERA5, else ERA5T)
    source_units: str

    def reader(self, k: int) -> Reader:
        def read(rows: slice, cols: Any) -> np.ndarray:
            try:
                pick = {self.time_dim: k, self.lat_dim: rows, self.lon_dim: cols}
                if self.expver is not None:
                    pick["expver"] = int(self.expver[k])
                raw = self.data.isel(pick).transpose(self.lat_dim, self.lon_dim).values
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


def _era5_piece(path: Path, ds: Any, name: str, var: str, level: float | None,
                single: Mapping[str, float]) -> _Piece:
    """``var`` (a layout variable) read from ``ds[name]``: dims, level, expver, units."""
    da = ds[name]
    where = f"--era5 {path}: variable '{name}'"
    time_dim = find_coord(da, "time")
    if time_dim is not None and time_dim not in da.dims:
        da = da.expand_dims(time_dim)
    for kind in ("latitude", "longitude"):
        require_values(da, kind, where)
    lat_name, lon_name = find_coord(da, "latitude"), find_coord(da, "longitude")
    lat_dim = dim_of(da, lat_name, where) if lat_name else None
    lon_dim = dim_of(da, lon_name, where) if lon_name else None
    if time_dim is None or lat_dim not in da.dims or lon_dim not in da.dims:
        raise InputError(f"{where} has dimensions {tuple(da.dims)}, expected a time, latitude "
                         f"and longitude dimension with coordinate values")
    hours = hours_of(da[time_dim], where)
    if var in PRESSURE_VARIABLES:
        da = _select_level(da, var, level, single, where)
    expver = None
    if "expver" in da.dims and da.sizes["expver"] > 1:
        expver = _expver_index(da, time_dim, lat_dim, lon_dim)
    for dim in [d for d in da.dims if d not in (time_dim, lat_dim, lon_dim, "expver")]:
        if da.sizes[dim] != 1:
            raise InputError(f"{where} has an extra dimension '{dim}' of size {da.sizes[dim]}; "
                             f"expected time, latitude, longitude (and a pressure level)")
        da = da.isel({dim: 0})
    units = da.attrs.get("units")
    factor, shift = conversion(var, units, where)
    grid = Grid(Axis("latitude", da[lat_name].values, f"--era5 {path}"),
                Axis("longitude", da[lon_name].values, f"--era5 {path}"))
    piece = _Piece(path, da, time_dim, lat_dim, lon_dim, hours, grid, factor, shift,
                   expver, str(units) if units is not None else f"none (read as ERA5's "
                                                                  f"{ERA5_UNITS[var]})")
    sample = piece.reader(0)(slice(None, None, max(1, grid.lat.n // 64)),
                             slice(None, None, max(1, grid.lon.n // 64)))
    check_plausible(var, sample, units, where, level if var in PRESSURE_VARIABLES else None)
    return piece


def _select_level(da: Any, var: str, level: float | None, single: Mapping[str, float],
                  where: str) -> Any:
    level_name = find_coord(da, "vertical")
    if level_name is None:
        if var not in single:
            raise InputError(f"{where} has no pressure-level coordinate; expected {var} on "
                             f"pressure levels including {level:g} hPa, or give the level of "
                             f"a one-level file with --level {var}={level:g}")
        if not np.isclose(single[var], level):
            raise InputError(f"{where}: --level {var}={single[var]:g} hPa, but --levels asks "
                             f"for {var} at {level:g} hPa")
        return da
    have = levels_hpa(da[level_name], where)
    match = np.flatnonzero(np.isclose(have, level))
    if match.size == 0:
        raise InputError(f"{where} has no {level:g} hPa level (it has "
                         f"{', '.join(f'{x:g}' for x in have)} hPa); pick one with --levels")
    return da.isel({level_name: int(match[0])}) if level_name in da.dims else da


def _expver_index(da: Any, time_dim: str, lat_dim: str, lon_dim: str) -> np.ndarray:
    """Per time, the ``expver`` index holding data: the lowest expver (ERA5, 1) where it has
    values, else the next (ERA5T, 5), whatever the dimension's order (checked on a strided
    sample of the grid)."""
    step = {d: slice(None, None, max(1, da.sizes[d] // 32)) for d in (lat_dim, lon_dim)}
    sample = np.asarray(da.isel(step).transpose(time_dim, "expver", ...).values)
    has = np.isfinite(sample.reshape(sample.shape[0], sample.shape[1], -1)).any(axis=2)
    try:
        order = np.argsort([int(str(v).strip()) for v in np.asarray(da["expver"].values)],
                           kind="stable")
    except (KeyError, ValueError):  # no expver values, or not numbers: keep the file's order
        order = np.arange(has.shape[1])
    first = order[has[:, order].argmax(axis=1)]
    return np.where(has.any(axis=1), first, order[0])


def open_era5(paths: Sequence[str | Path], levels: Mapping[str, float], stack: ExitStack,
              names: Mapping[str, str] | None = None,
              single: Mapping[str, float] | None = None) -> dict[str, Era5Field]:
    """Open the ERA5 files (NetCDF, GRIB or zip downloads of them; folders of those) and
    return the four variables, each with its pressure level selected. ``names`` maps a layout
    variable to the file's name (``--var msl=slp``); ``single`` gives the level of one-level
    files without a level coordinate (``--level z=500``). Files close when ``stack`` does."""
    names, single = dict(names or {}), dict(single or {})
    sources = open_sources(paths, "--era5", stack)
    pieces: dict[str, list[_Piece]] = {v: [] for v in VARIABLES}
    holds = []
    for path, ds in sources:
        holds.append(f"{path.name} has {', '.join(map(str, ds.data_vars)) or 'no variables'}")
        for v in VARIABLES:
            name = names.get(v, v)
            if name in ds.data_vars:
                pieces[v].append(_era5_piece(path, ds, name, v, levels.get(v), single))
    for v in VARIABLES:
        if not pieces[v]:
            mapped = f" (as '{names[v]}')" if v in names else ""
            raise InputError(f"--era5: variable '{v}'{mapped} not found in "
                             f"{', '.join(sorted({str(p) for p, _ in sources}))} "
                             f"({'; '.join(holds)}); map another name with --var {v}=NAME")
    return {v: Era5Field(v, levels.get(v), pieces[v][0].source_units, pieces[v])
            for v in VARIABLES}
