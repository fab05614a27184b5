"""Time alignment: which IR frame and which ERA5 times (and weights) make each output frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mdcli.data.importing.common import format_time
from mdcli.data.importing.era5 import Era5Field
from mdcli.data.importing.grid import CurvilinearGrid, Grid, Reader
from mdcli.data.importing.ir import IRFrame
from mdcli.data.importing.tracks import StormTrack
from mdcli.errors import InputError


@dataclass
class Sample:
    read: Reader
    grid: Grid | CurvilinearGrid
    rows: np.ndarray
    cols: np.ndarray
    weight: float

    def value(self) -> np.ndarray:
        return self.weight * self.grid.sample(self.read, self.rows, self.cols)


@dataclass
class Frame:
    storm: StormTrack
    index: int            # track point
    ir_offset: float      # IR frame time - track time, hours
    ir: Sample
    era5: dict[str, list[Sample]]
    satellite: str = ""          # of the IR frame (HURSAT-B1 file name)
    angle: float = float("nan")


def where_point(storm: StormTrack, i: int) -> str:
    return (f"storm '{storm.name}' at {format_time(storm.hours[i])} (lat {storm.lat[i]:.2f}, "
            f"lon {storm.lon[i]:.2f})")


def plan_frame(storm: StormTrack, i: int, ir: list[IRFrame], fields: dict[str, Era5Field],
                offsets: tuple[np.ndarray, np.ndarray], window_deg: float,
                max_gap_hours: float) -> Frame:
    """Choose the IR frame and ERA5 times of one track point and check the window is covered."""
    t, lat, lon = storm.hours[i], storm.lat[i], storm.lon[i]
    ir_hours = np.array([f.hours for f in ir])
    k = int(np.argmin(np.abs(ir_hours - t)))
    frame = ir[k]
    if abs(frame.hours - t) > max_gap_hours:
        raise InputError(f"{where_point(storm, i)}: the nearest IR frame ({frame.source}) is "
                         f"{abs(frame.hours - t):.2f} h away, more than --max-gap-hours "
                         f"{max_gap_hours:g}")
    idx = frame.grid.locate(lat, lon, *offsets)
    if idx is None:
        raise InputError(f"{where_point(storm, i)}: the {window_deg:g}-degree window runs outside "
                         f"the IR grid of {frame.source} ({frame.grid.describe()})")
    ir_sample = Sample(frame.read, frame.grid, *idx, 1.0)
    era5 = {}
    for v, field in fields.items():
        weights, gap = field.weights(frame.hours)
        if gap > max_gap_hours:
            near = field.hours[np.argmin(np.abs(field.hours - frame.hours))]
            raise InputError(f"{where_point(storm, i)}: the nearest ERA5 '{v}' time "
                             f"({format_time(near)}) is {gap:.2f} h from the IR frame at "
                             f"{format_time(frame.hours)}, more than --max-gap-hours "
                             f"{max_gap_hours:g} ({field.files})")
        samples = []
        for index, w in weights:
            piece, local = field.piece(index)
            idx = piece.grid.locate(lat, lon, *offsets)
            if idx is None:
                raise InputError(f"{where_point(storm, i)}: the {window_deg:g}-degree window runs "
                                 f"outside the ERA5 grid of {piece.path} ('{v}': "
                                 f"{piece.grid.describe()})")
            samples.append(Sample(piece.reader(local), piece.grid, *idx, w))
        era5[v] = samples
    return Frame(storm, i, frame.hours - t, ir_sample, era5, frame.satellite, frame.angle)


def segments(lengths: Sequence[int], frames: int) -> list[tuple[int, int]]:
    """``(storm, first point)`` of every row: each storm is cut into consecutive, non-overlapping
    segments of ``frames`` points; the rest of a storm (fewer than ``frames`` points) is dropped."""
    return [(s, start) for s, n in enumerate(lengths) for start in range(0, n - frames + 1,
                                                                          frames)]
