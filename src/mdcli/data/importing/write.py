"""Writing the planned frames and their metadata in the ``mdcli-tc`` layout."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mdcli import __version__
from mdcli.data.importing.common import KM_PER_DEGREE, PRESSURE_VARIABLES, fill_nan
from mdcli.data.importing.era5 import Era5Field
from mdcli.data.importing.plan import Frame, where_point
from mdcli.data.importing.tracks import StormTrack
from mdcli.data.layout import (
    IR_REFERENCE_K,
    IR_SCALE_K,
    NORMALISATION,
    VARIABLES,
    era5_attrs,
    ir_attrs,
    layout_root_attrs,
    write_meta_datasets,
)
from mdcli.errors import InputError
from mdcli.logs import log
from mdcli.progress import progress
from mdcli.storage.atomic import atomic_path


def write_import(out: Path, plan: list[list[Frame]], storms: list[StormTrack],
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
                        raise InputError(f"{where_point(frame.storm, frame.index)}: the IR "
                                         f"frame has no valid pixels in the window")
                    filled["ir"] += fill_nan(tb, IR_REFERENCE_K)
                    ir_ds[r, f] = np.clip((IR_REFERENCE_K - tb) / IR_SCALE_K, -1.0, 1.0)
                    for v in VARIABLES:
                        x = sum(sample.value() for sample in frame.era5[v])
                        count = fill_nan(x, NORMALISATION[v]["offset"])
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


def _write_meta(h5: h5py.File, plan: list[list[Frame]], storms: list[StormTrack],
                size: int) -> None:
    index = {st.name: i for i, st in enumerate(storms)}

    def grid(get: Callable[[Frame], float], dtype: Any) -> np.ndarray:
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
        "ir_satellite": (grid(lambda fr: fr.satellite, h5py.string_dtype()), "",
                         "satellite of the IR frame (HURSAT-B1 file name); empty if unknown"),
        "ir_angle": (grid(lambda fr: fr.angle, np.float32), "degrees",
                     "angle field of the IR frame's HURSAT-B1 file name; NaN if unknown"),
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
