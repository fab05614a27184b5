"""``import_tc``: track + IR + ERA5 -> one ``mdcli-tc`` HDF5 file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

from mdcli.data.importing.common import (
    DEFAULT_LEVELS,
    NORMALISE_MODES,
    parse_levels,
    parse_names,
    parse_single_level,
)
from mdcli.data.importing.era5 import open_era5
from mdcli.data.importing.grid import window_offsets
from mdcli.data.importing.ir import open_ir
from mdcli.data.importing.plan import plan_frame, segments
from mdcli.data.importing.sources import expand
from mdcli.data.importing.tracks import read_track
from mdcli.data.importing.write import write_import
from mdcli.data.layout import check_output
from mdcli.errors import InputError
from mdcli.logs import log


def _check_not_an_input(out: Path, inputs: dict[str, list]) -> None:
    """``--out`` must not name an input file or an existing file in an input folder (the
    import would replace what it reads)."""
    target = out.resolve()
    for option, paths in inputs.items():
        for given in paths:
            path = Path(given).resolve()
            if target == path or (path.is_dir() and target.exists() and path in target.parents):
                raise InputError(f"--out {out}: is an {option} input ({given}); expected a new "
                                 f"file path (the import would overwrite what it reads)")


def import_tc(era5: Sequence[str | Path], ir: str | Path, track: str | Path, out: str | Path,
              *, size: int = 64, window_deg: float = 10.0,
              levels: str | Mapping[str, float] | None = None, max_gap_hours: float = 3.0,
              frames: int | None = None, normalise: str = "layout",
              track_format: str | None = None, storms: Sequence[str] = (),
              variables: str | Mapping[str, str] | None = None,
              level: str | Mapping[str, float] | None = None) -> Path:
    """Import ERA5 + IR + track into the ``mdcli-tc`` HDF5 file ``out`` (written atomically).

    Parameters
    ----------
    era5: ERA5 NetCDF files or folders of ``*.nc`` (sst, msl, z, r; several files may split
        the variables or the times).
    ir: folder of per-storm IR (``<storm_id>.nc`` or ``<storm_id>/``), or one NetCDF file for a
        one-storm track.
    track: a best track: IBTrACS CSV or NetCDF, HURDAT2, a CLIMADA extract or the CSV
        ``storm_id,time,lat,lon[,intensity,pressure,category]`` (m/s, hPa).
    size: output pixels per side (a multiple of 16 >= 32).
    window_deg: window width and height in degrees of latitude and longitude.
    levels: pressure levels of z and r, e.g. ``"z=500,r=700"`` (the default).
    max_gap_hours: the largest allowed time between a track point and its IR frame, and
        between an IR frame and the nearest ERA5 time.
    frames: points per row; storms are cut into segments of this length (default: the
        shortest storm's length).
    normalise: ``"layout"`` (the layout's fixed offsets and scales) or ``"data"`` (each ERA5
        variable's mean and standard deviation over the file).
    track_format: force a track format (default: detected from the content).
    storms: keep only these storms (SIDs or ``NAME:SEASON``).
    variables: the files' names of layout variables, e.g. ``"msl=slp"``.
    level: the pressure level (hPa) of one-level files without a level coordinate, e.g.
        ``"500"`` (z and r) or ``"z=500,r=700"``.

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
    _check_not_an_input(out, {"--era5": list(era5), "--ir": [ir], "--track": [track]})
    lv = parse_levels(levels)
    names = parse_names(variables)
    single = parse_single_level(level)
    storms = read_track(track, track_format, storms)
    with ExitStack() as stack:
        fields = open_era5(list(era5), lv, stack, names, single)
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
        plan = [[plan_frame(storms[s], start + f, ir_frames[storms[s].name], fields, offsets,
                             window_deg, max_gap_hours) for f in range(length)]
                for s, start in rows]
        log.info("importing %d storms as %d rows x %d frames of %dx%d px (%g-degree windows; "
                 "%d track points left over)", len(storms), len(rows), length, size, size,
                 window_deg, dropped)
        if lv != DEFAULT_LEVELS and normalise == "layout":
            log.warning("levels %s differ from the layout's z=500,r=700: the fixed offsets and "
                        "scales may not suit them (consider --normalise data)", lv)
        try:
            write_import(out, plan, storms, fields, lv, size, window_deg, normalise,
                   {"era5": [str(p) for p in expand(list(era5), "--era5")],
                    "ir": str(ir), "track": str(track), "max_gap_hours": max_gap_hours,
                    "frame_policy": f"segments of {length} consecutive track points; the rest "
                                    f"of each storm dropped"})
        except OSError as exc:
            raise InputError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    return out
