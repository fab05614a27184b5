"""Rectilinear latitude/longitude grids and bilinear sampling of storm-centred windows."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mdcli.errors import InputError

Reader = Callable[[slice, Any], np.ndarray]  # (rows, cols) -> raw 2-D block


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
