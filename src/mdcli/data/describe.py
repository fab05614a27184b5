"""``mdcli data info``: describe what a file is: an mdcli HDF5 file or checkpoint, a NetCDF /
GRIB / zip download (variables, dims, units, time and lat/lon span) or a best track (storms,
points, time span, peak intensity), validated as ``mdcli data import`` would read it."""

from __future__ import annotations

import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from mdcli.errors import InputError

TRACK_SHOWN = 20  # storms listed one per line


def describe_file(path: str | Path) -> list[str]:
    """Lines describing ``path``; ``InputError`` (the import's own line) if it is a track or
    download that ``mdcli data import`` would refuse."""
    from mdcli.storage.inspect import describe

    path = Path(path)
    if not path.is_file():
        return describe(path)  # its "file not found" line
    kind = _kind(path)
    if kind == "track":
        return describe_track(path)
    if kind == "download":
        return describe_download(path)
    return describe(path)


def _kind(path: Path) -> str:
    from mdcli.data.importing.sources import kind_of
    from mdcli.data.importing.tracks import decode_head

    kind = kind_of(path)
    if kind == "grib":
        return "download"
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"{path}: cannot read as a zip archive ({exc})") from None
        return "mdcli" if any(n.endswith("data.pkl") for n in names) else "download"
    if kind == "netcdf":
        if _is_mdcli_hdf5(path):
            return "mdcli"
        from mdcli.data.importing.tracks.netcdf import netcdf_format

        try:
            netcdf_format(path)
        except InputError:
            return "download"
        return "track"
    with open(path, "rb") as handle:
        head = handle.read(4096)
    try:
        decode_head(head, complete=len(head) < 4096)
    except UnicodeDecodeError:
        return "mdcli"  # the checkpoint reader names what is wrong
    return "track"


def _is_mdcli_hdf5(path: Path) -> bool:
    """An HDF5 file that is not NetCDF-4 (no ``_NCProperties``, no dimension scales); a
    truncated HDF5 file counts as one, so that its description says it is corrupt."""
    import h5py

    with open(path, "rb") as handle:
        if not handle.read(4).startswith(b"\x89HDF"):
            return False  # netCDF-3

    try:
        with h5py.File(path, "r") as h5:
            if "_NCProperties" in h5.attrs:
                return False
            scales = []
            h5.visititems(lambda n, o: scales.append(n) if o.attrs.get("CLASS") ==
                          b"DIMENSION_SCALE" else None)
            return not scales
    except OSError:
        return True


def describe_track(path: Path) -> list[str]:
    from mdcli.data.importing.common import format_time
    from mdcli.data.importing.tracks import detect_format, read_track

    fmt = detect_format(path)
    storms = read_track(path, fmt)
    points = sum(len(s) for s in storms)
    start = min(s.hours[0] for s in storms)
    end = max(s.hours[-1] for s in storms)
    lines = [f"{path}: best track ({fmt}), {len(storms)} storm(s), {points} points, "
             f"{format_time(start)} .. {format_time(end)}"]
    peak = max(storms, key=lambda s: np.nanmax(s.intensity) if np.isfinite(
        s.intensity).any() else -1.0)
    if np.isfinite(peak.intensity).any():
        lines.append(f"  peak intensity {np.nanmax(peak.intensity):.1f} m/s ({peak.name})")
    for s in storms[:TRACK_SHOWN]:
        wind = (f", peak {np.nanmax(s.intensity):.1f} m/s, category {s.category.max()}"
                if np.isfinite(s.intensity).any() else "")
        pres = f", min {np.nanmin(s.pressure):.0f} hPa" if np.isfinite(s.pressure).any() else ""
        lines.append(f"  {s.name}: {len(s)} points, {format_time(s.hours[0])} .. "
                     f"{format_time(s.hours[-1])}, lat {s.lat.min():.1f}..{s.lat.max():.1f}, "
                     f"lon {s.lon.min():.1f}..{s.lon.max():.1f}{wind}{pres}")
    if len(storms) > TRACK_SHOWN:
        lines.append(f"  ... {len(storms) - TRACK_SHOWN} more storms")
    return lines


def describe_download(path: Path) -> list[str]:
    from mdcli.data.importing.sources import open_sources

    lines = []
    with ExitStack() as stack:
        for label, ds in open_sources([path], "data info", stack):
            lines.append(f"{label}: {_format_name(ds)}, dims "
                         f"{', '.join(f'{k}={v}' for k, v in ds.sizes.items())}")
            lines.extend(_spans(ds))
            for name, var in ds.data_vars.items():
                units = var.attrs.get("units", var.attrs.get("GRIB_units", "no units"))
                long = f" - {var.attrs['long_name']}" if "long_name" in var.attrs else ""
                lines.append(f"  {name}{tuple(var.dims)}: {var.dtype}, {units}{long}")
    return lines


def _format_name(ds: Any) -> str:
    if "GRIB_edition" in ds.attrs:
        return f"GRIB{ds.attrs['GRIB_edition']}"
    source = ds.encoding.get("source")
    if source and Path(source).is_file():
        with open(source, "rb") as handle:
            if handle.read(3) == b"CDF":
                return "netCDF-3"
    return "NetCDF-4"


def _spans(ds: Any) -> list[str]:
    from mdcli.data.importing.common import format_time, hours_of
    from mdcli.data.importing.coords import find_coord

    out = []
    t = find_coord(ds, "time")
    if t is not None:
        try:
            h = hours_of(ds[t], "data info")
            out.append(f"  time '{t}': {h.size} steps, {format_time(h.min())} .. "
                       f"{format_time(h.max())}")
        except InputError as exc:
            out.append(f"  time '{t}': {exc}")
    for kind in ("latitude", "longitude", "vertical"):
        c = find_coord(ds, kind)
        if c is not None:
            v = np.asarray(ds[c].values, dtype=np.float64)
            out.append(f"  {kind} '{c}': {v.size} values, {np.nanmin(v):g} .. {np.nanmax(v):g}"
                       f" {ds[c].attrs.get('units', '')}".rstrip())
    return out
