"""ERA5 downloads as given: NetCDF, GRIB (cfgrib, ``mdcli[grib]``) and CDS zip archives of
them, or folders of those; the kind is read from the first bytes, not the name."""

from __future__ import annotations

import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from mdcli.data.importing.coords import promote_coords
from mdcli.data.importing.netcdf import open_netcdf, require_netcdf
from mdcli.errors import InputError

SUFFIXES = (".nc", ".nc4", ".grib", ".grib2", ".grb", ".grb2", ".zip")
GRIB_HINT = "pip install mdcli[grib]"


def kind_of(path: Path) -> str:
    """``netcdf``, ``grib``, ``zip`` or ``unknown`` from the file's first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith((b"\x89HDF", b"CDF\x01", b"CDF\x02", b"CDF\x05")):
        return "netcdf"
    if head.startswith(b"GRIB"):
        return "grib"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return "unknown"


def expand(paths: Sequence[str | Path], option: str) -> list[Path]:
    """Files, and the data files of folders, in order."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in SUFFIXES)
            if not found:
                raise InputError(f"{option} {p}: folder holds no {', '.join(SUFFIXES)} files")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{option} {p}: file not found")
    if not out:
        raise InputError(f"{option}: give at least one file")
    return out


def open_grib(path: Path, option: str, stack: ExitStack) -> list[Any]:
    """Every hypercube of a GRIB file (cfgrib splits levels types and steps)."""
    try:
        import cfgrib
    except (ImportError, RuntimeError) as exc:  # eccodes missing raises RuntimeError
        raise InputError(f"{option} {path}: a GRIB file needs cfgrib and ecCodes ({exc}): "
                         f"{GRIB_HINT}") from None
    try:
        with warnings.catch_warnings():  # cfgrib's own xr.merge call warns of xarray defaults
            warnings.simplefilter("ignore", FutureWarning)
            datasets = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""},
                                            cache=False)
    except Exception as exc:  # cfgrib/eccodes raise their own error types
        raise InputError(f"{option} {path}: cannot read as GRIB ({exc})") from None
    for ds in datasets:
        stack.callback(ds.close)
    return datasets


def open_sources(paths: Sequence[str | Path], option: str,
                 stack: ExitStack) -> list[tuple[Path, Any]]:
    """``(path, Dataset)`` of every file; zip members are extracted to a temporary folder
    that ``stack`` removes, and named ``archive.zip:member``."""
    out: list[tuple[Path, Any]] = []
    for path in expand(paths, option):
        out.extend(_open_one(path, path, option, stack))
    return out


def _open_one(path: Path, label: Path, option: str, stack: ExitStack) -> list[tuple[Path, Any]]:
    kind = kind_of(path)
    if kind == "netcdf":
        return [(label, promote_coords(open_netcdf(require_netcdf(), path, option, stack)))]
    if kind == "grib":
        require_netcdf()
        return [(label, ds) for ds in open_grib(path, option, stack)]
    if kind == "zip":
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mdcli-zip-")))
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                archive.extractall(folder, members)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"{option} {path}: cannot read as a zip archive ({exc})") from None
        out = []
        for m in members:
            if kind_of(folder / m) in ("netcdf", "grib"):
                out.extend(_open_one(folder / m, Path(f"{label}:{m}"), option, stack))
        if not out:
            raise InputError(f"{option} {path}: the zip archive holds no NetCDF or GRIB file "
                             f"({', '.join(members) or 'empty'})")
        return out
    raise InputError(f"{option} {path}: neither NetCDF, GRIB nor a zip of them (first bytes "
                     f"do not match)")
