"""Best tracks: one :class:`StormTrack` per storm, in m/s and hPa, from the formats of
:data:`TRACK_FORMATS` (detected by content, or forced with ``--track-format``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mdcli.data.importing.tracks.model import RawStorm, StormTrack, finish
from mdcli.errors import InputError

TRACK_FORMATS = ("csv", "ibtracs-csv", "ibtracs-nc", "hurdat2", "climada-csv", "climada-nc")

__all__ = ["TRACK_FORMATS", "StormTrack", "decode_head", "detect_format", "read_track",
           "select_storms"]


def decode_head(head: bytes, complete: bool) -> str:
    """UTF-8 text of the first bytes of a file; when not ``complete`` (cut at an arbitrary
    byte) up to 3 trailing bytes may be a split character. Anything else undecodable raises
    UnicodeDecodeError."""
    for cut in (0, 1, 2) if not complete else ():
        try:
            return head[:len(head) - cut].decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
    return head[:len(head) - (0 if complete else 3)].decode("utf-8-sig")


def detect_format(path: Path) -> str:
    """The track format of ``path`` from its first bytes and first line."""
    head = path.read_bytes()[:4096]
    if head.startswith((b"\x89HDF", b"CDF\x01", b"CDF\x02", b"CDF\x05")):
        from mdcli.data.importing.tracks.netcdf import netcdf_format

        return netcdf_format(path)
    try:
        # the 4096-byte cut may split a character: only a complete head must decode strictly
        text = decode_head(head, complete=len(head) < 4096)
        first = text.splitlines()[0] if head.strip() else ""
    except UnicodeDecodeError:
        raise InputError(f"--track {path}: neither text nor NetCDF (expected one of "
                         f"{', '.join(TRACK_FORMATS)})") from None
    from mdcli.data.importing.tracks.text import text_format

    return text_format(first)


def read_track(path: str | Path, track_format: str | None = None,
               storms: Sequence[str] = ()) -> list[StormTrack]:
    """Read the storms of a track file (``storms``: SIDs or ``NAME:SEASON`` to keep; all when
    empty), in order of first appearance, with winds in m/s and pressures in hPa."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--track {path}: file not found")
    fmt = track_format or detect_format(path)
    if fmt not in TRACK_FORMATS:
        raise InputError(f"--track-format: got {fmt!r}, expected one of "
                         f"{', '.join(TRACK_FORMATS)}")
    if fmt.endswith("-nc"):
        from mdcli.data.importing.tracks.netcdf import read_netcdf_track

        raw = read_netcdf_track(path, fmt)
    else:
        from mdcli.data.importing.tracks.text import read_text_track

        raw = read_text_track(path, fmt)
    raw = select_storms(path, raw, storms)
    return finish(path, raw)


def select_storms(path: Path, raw: list[RawStorm], wanted: Sequence[str]) -> list[RawStorm]:
    """The storms named in ``wanted`` (an SID, or ``NAME:SEASON``), in the file's order."""
    if not wanted:
        return raw
    keep = []
    for key in wanted:
        name, _, season = key.partition(":")
        match = [s for s in raw if s.sid == key or (season and s.name.upper() == name.upper()
                                                    and str(s.season) == season.strip())]
        if not match:
            have = ", ".join(s.label for s in raw[:8]) + (" ..." if len(raw) > 8 else "")
            raise InputError(f"--storm {key}: no such storm in {path} (expected an SID or "
                             f"NAME:SEASON; the file has {have or 'no storms'})")
        keep.extend(m for m in match if m not in keep)
    return [s for s in raw if s in keep]
