"""``mdcli data``: generate synthetic cyclone files and describe mdcli files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from mdcli.cli.options import ConfigOpt, SeedOpt, SetOpt, resolve_config
from mdcli.logs import log

app = typer.Typer(name="data", no_args_is_help=True,
                  help="Synthetic tropical-cyclone data (synth-tc) and file inspection (info).")


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

    Options override the config (default: built-in values, the same as data/tc_tiny).
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


@app.command("info")
def info(
    path: Annotated[Path, typer.Argument(metavar="FILE",
                                         help="An mdcli HDF5 file or checkpoint.")],
) -> None:
    """Print what an mdcli HDF5 file or checkpoint holds: shapes, dtypes, attributes."""
    from mdcli.storage.inspect import describe

    for line in describe(path):
        typer.echo(line)
