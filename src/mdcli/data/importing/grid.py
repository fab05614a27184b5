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


class CurvilinearGrid:
    """A grid with 2-D latitude/longitude (rotated, swath or geostationary): windows are
    sampled linearly on the Delaunay triangles of the source pixel centres (exact for fields
    linear in latitude and longitude), reading only the block of pixels around the window."""

    def __init__(self, lat: Any, lon: Any, where: str) -> None:
        self.lat = np.asarray(lat, dtype=np.float64)
        self.lon = np.asarray(lon, dtype=np.float64)
        self.where = where
        if self.lat.shape != self.lon.shape or self.lat.ndim != 2 or min(self.lat.shape) < 2:
            raise InputError(f"{where}: 2-D latitude and longitude must share one shape of at "
                             f"least 2 x 2 (got {self.lat.shape} and {self.lon.shape})")

    def locate(self, lat: float, lon: float, lat_off: np.ndarray,
               lon_off: np.ndarray) -> tuple[tuple[slice, slice], tuple] | None:
        """``((row block, column block), (vertices, weights))`` of the window's pixel centres,
        or ``None`` if any lies outside the grid."""
        from scipy.spatial import Delaunay

        src_lon = (self.lon - lon + 180.0) % 360.0 - 180.0  # degrees east of the centre
        src_lat = self.lat - lat
        margin = 2.0 * max(np.abs(np.diff(self.lat, axis=0)).max(initial=0.0),
                           np.abs(np.diff(src_lon, axis=1)).max(initial=0.0), 1e-6)
        near = ((src_lat >= lat_off.min() - margin) & (src_lat <= lat_off.max() + margin)
                & (src_lon >= lon_off.min() - margin) & (src_lon <= lon_off.max() + margin)
                & np.isfinite(src_lat) & np.isfinite(src_lon))
        rows, cols = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
        if rows.size < 2 or cols.size < 2:
            return None
        rsel, csel = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
        pts = np.column_stack([src_lat[rsel, csel].ravel(), src_lon[rsel, csel].ravel()])
        ok = np.all(np.isfinite(pts), axis=1)
        try:
            tri = Delaunay(pts[ok])
        except Exception:  # scipy's QhullError: degenerate (collinear) points
            return None
        target = np.column_stack([np.repeat(lat_off, lon_off.size),
                                  np.tile(lon_off, lat_off.size)])
        simplex = tri.find_simplex(target)
        if np.any(simplex < 0):
            return None
        transform = tri.transform[simplex]
        bary = np.einsum("ijk,ik->ij", transform[:, :2], target - transform[:, 2])
        weights = np.column_stack([bary, 1.0 - bary.sum(axis=1)])
        vertices = np.flatnonzero(ok)[tri.simplices[simplex]]
        return (rsel, csel), (vertices, weights, (lat_off.size, lon_off.size))

    def sample(self, read: Reader, block: tuple[slice, slice], stencil: tuple) -> np.ndarray:
        vertices, weights, shape = stencil
        values = np.asarray(read(*block), dtype=np.float64).ravel()
        return (values[vertices] * weights).sum(axis=1).reshape(shape)

    def describe(self) -> str:
        return (f"curvilinear, latitude {np.nanmin(self.lat):g}..{np.nanmax(self.lat):g}, "
                f"longitude {np.nanmin(self.lon):g}..{np.nanmax(self.lon):g}")
