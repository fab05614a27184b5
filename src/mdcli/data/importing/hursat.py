"""HURSAT-B1 as NCEI ships it: one ``<SID>.<NAME>.<YYYY>.tar.gz`` (any name starting with the
SID) per storm holding one NetCDF file per frame, named
``<SID>.<NAME>.<YYYY>.<MM>.<DD>.<HHMM>.<angle>.<sat>.<wmo>.hursat-b1.v06.nc``."""

from __future__ import annotations

import re
import tarfile
import tempfile
from contextlib import ExitStack
from pathlib import Path

from mdcli.errors import InputError

NAME = re.compile(r"^(?P<sid>[^.]+)\.(?P<name>[^.]+)\.(?P<y>\d{4})\.(?P<m>\d\d)\.(?P<d>\d\d)\."
                  r"(?P<hhmm>\d{4})\.(?P<angle>-?\d+(?:\.\d+)?)\.(?P<sat>[^.]+)\.(?P<wmo>[^.]+)\."
                  r"hursat-b1(?:\.v\d+)?\.nc$", re.IGNORECASE)


def frame_info(path: Path) -> tuple[str, float]:
    """``(satellite, angle)`` from a HURSAT-B1 file name; ``("", nan)`` for other names."""
    match = NAME.match(path.name)
    return (match["sat"], float(match["angle"])) if match else ("", float("nan"))


def flat_frames(folder: Path, storm: str) -> list[Path]:
    """HURSAT-B1 frame files of ``storm`` lying directly in ``folder``."""
    return sorted(p for p in folder.glob(f"{storm}.*") if NAME.match(p.name)
                  and NAME.match(p.name)["sid"] == storm)


def storm_archive(folder: Path, storm: str) -> Path | None:
    """The per-storm ``<SID>*.tar.gz`` (or ``.tgz``/``.tar``) in ``folder``, if any."""
    found = sorted(p for p in folder.glob(f"{storm}.*") if p.name.endswith(
        (".tar.gz", ".tgz", ".tar")))
    return found[0] if found else None


def unpack(archive: Path, stack: ExitStack) -> list[Path]:
    """The NetCDF frames of a HURSAT-B1 archive, extracted to a folder ``stack`` removes."""
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mdcli-hursat-")))
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".nc")]
            for m in members:
                m.name = Path(m.name).name  # flatten: frames are identified by their names
            tar.extractall(folder, members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:  # EOFError: a truncated gzip
        raise InputError(f"--ir {archive}: cannot read as a tar archive "
                         f"({exc or type(exc).__name__})") from None
    if not members:
        raise InputError(f"--ir {archive}: the archive holds no .nc frames")
    return sorted(folder / m.name for m in members)
