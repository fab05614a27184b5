"""``mdcli data``: generate synthetic cyclone files, import real ones, describe mdcli files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from mdcli.cli.options import ConfigOpt, SeedOpt, SetOpt, resolve_config
from mdcli.logs import log

app = typer.Typer(name="data", no_args_is_help=True,
                  help="Tropical-cyclone data: synthetic (synth-tc), imported from ERA5 + "
                       "satellite IR + a track (import), and file inspection (info).")


TrackFormatOpt = Annotated[str | None, typer.Option(
    "--track-format", metavar="FORMAT", help="Force the track format: csv, ibtracs-csv, "
                                             "ibtracs-nc, hurdat2, climada-csv, climada-nc "
                                             "(default: detected from the content).")]
StormOpt = Annotated[list[str] | None, typer.Option(
    "--storm", metavar="SID|NAME:SEASON", help="Keep only this storm (repeatable), e.g. "
                                               "1992230N11325, AL041992 or ANDREW:1992.")]


@app.command("synth-tc")
def synth_tc(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE.h5",
                                      help="HDF5 file to write (replaced atomically).")],
    config: ConfigOpt = None,
    sets: SetOpt = None,
    n_storms: Annotated[int | None, typer.Option(
        "--n-storms", help="Number of storms (default: the config's, 48).")] = None,
    frames: Annotated[int | None, typer.Option(
        "--frames", help="Time steps per storm (default: the config's, 16).")] = None,
    size: Annotated[int | None, typer.Option(
        "--size", metavar="64|128", help="Frame size in pixels, a multiple of 16 >= 32 "
                                         "(default: the config's, 32).")] = None,
    seed: SeedOpt = None,
) -> None:
    """Write a synthetic tropical-cyclone dataset (IR frames, ERA5-like SST/MSL/Z/R, metadata).

    Options override the config (default: built-in values; data/tc_tiny differs only in
    physics.field_persistence, 0.9 against 0.7).
    """
    from mdcli.data.synth_tc import SynthTCConfig, check_config, check_output, write_synth_tc

    overrides = list(sets or [])
    for key, value in (("n_storms", n_storms), ("frames", frames), ("size", size)):
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = resolve_config(SynthTCConfig, config, overrides, seed)
    check_config(cfg)
    check_output(out)
    start = time.perf_counter()
    log.info("generating %d storms x %d frames of %dx%d pixels (seed %d)",
             cfg.n_storms, cfg.frames, cfg.size, cfg.size, cfg.seed)
    write_synth_tc(cfg, out)
    log.info("wrote %s (%.1f MB) in %.1f s", out, out.stat().st_size / 1e6,
             time.perf_counter() - start)


@app.command("import")
def import_(
    era5: Annotated[list[Path], typer.Option(
        "--era5", metavar="FILE", help="ERA5 download (repeatable): NetCDF, GRIB (mdcli[grib]) "
                                       "or a CDS zip of them, or a folder of those; sst, msl "
                                       "(single levels), z, r (pressure levels).")],
    ir: Annotated[Path, typer.Option(
        "--ir", metavar="PATH", help="Folder of per-storm IR: <storm_id>.nc (HURSAT-style, e.g. "
                                     "IRWIN) or <storm_id>/ with <YYYYmmddHHMM>.npy frames and "
                                     "grid.json; one .nc file for a one-storm track.")],
    track: Annotated[Path, typer.Option(
        "--track", metavar="FILE", help="Best track: IBTrACS CSV/NetCDF, HURDAT2, a CLIMADA "
                                        "extract, or CSV storm_id,time,lat,lon[,intensity,"
                                        "pressure,category] (ISO times, m/s, hPa).")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE.h5",
                                      help="HDF5 file to write (replaced atomically).")],
    size: Annotated[int, typer.Option(
        "--size", metavar="PIXELS", help="Frame size in pixels, a multiple of 16 >= 32.")] = 64,
    window_deg: Annotated[float, typer.Option(
        "--window-deg", metavar="DEG", help="Window width and height in degrees, centred on "
                                            "the track point.")] = 10.0,
    levels: Annotated[str, typer.Option(
        "--levels", metavar="z=HPA,r=HPA", help="Pressure levels of z and r.")] = "z=500,r=700",
    max_gap_hours: Annotated[float, typer.Option(
        "--max-gap-hours", metavar="H", help="Largest allowed time from a track point to its "
                                             "IR frame and from that frame to ERA5.")] = 3.0,
    frames: Annotated[int | None, typer.Option(
        "--frames", help="Track points per row: storms are cut into segments this long "
                         "(default: the shortest storm's length).")] = None,
    normalise: Annotated[str, typer.Option(
        "--normalise", metavar="layout|data", help="ERA5 offsets/scales: the layout's fixed "
                                                   "ones, or mean/std of the data.")] = "layout",
    track_format: TrackFormatOpt = None,
    storm: StormOpt = None,
    var: Annotated[str | None, typer.Option(
        "--var", metavar="VAR=NAME,...", help="The files' names of sst, msl, z, r, e.g. "
                                              "msl=slp.")] = None,
    level: Annotated[str | None, typer.Option(
        "--level", metavar="HPA|z=HPA,r=HPA", help="Pressure level of one-level files that "
                                                   "have no level coordinate.")] = None,
) -> None:
    """Import ERA5 fields, satellite IR frames and a track CSV into the mdcli-tc layout.

    Each track point gives one frame: a window centred on the storm, regridded bilinearly.

    IR: the nearest frame in time. ERA5: linear in time to that frame's time.

    Policies and file naming: docs/data.md, section `mdcli data import`.
    """
    from mdcli.data.importing import import_tc

    start = time.perf_counter()
    import_tc(era5, ir, track, out, size=size, window_deg=window_deg, levels=levels,
              max_gap_hours=max_gap_hours, frames=frames, normalise=normalise,
              track_format=track_format, storms=storm or (), variables=var, level=level)
    log.info("wrote %s (%.1f MB) in %.1f s", out, out.stat().st_size / 1e6,
             time.perf_counter() - start)


@app.command("info")
def info(
    path: Annotated[Path, typer.Argument(
        metavar="FILE", help="An mdcli HDF5 file or checkpoint, a NetCDF/GRIB/zip download or "
                             "a best track.")],
) -> None:
    """Describe a file: mdcli HDF5/checkpoint contents, a download's variables, dims, units
    and spans, or a track's storms, points, time span and peak intensity (checked as
    `mdcli data import` would read it)."""
    from mdcli.data.describe import describe_file

    for line in describe_file(path):
        typer.echo(line)
