"""Constants and small helpers of ``mdcli data import``: times, levels, NaN filling."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from mdcli.errors import InputError

GRAVITY = 9.80665  # m s^-2, ERA5's geopotential -> geopotential height
KM_PER_DEGREE = 111.195  # km per degree of latitude
DEFAULT_LEVELS = {"z": 500.0, "r": 700.0}  # hPa

PRESSURE_VARIABLES = ("z", "r")
NORMALISE_MODES = ("layout", "data")
EPOCH = datetime(1970, 1, 1)


def parse_time(text: str) -> float:
    """Hours since 1970-01-01 UTC of an ISO time such as ``2005-08-23T18:00`` or ``...Z``."""
    s = text.strip()
    if s[-1:] in ("Z", "z"):
        s = s[:-1] + "+00:00"
    stamp = datetime.fromisoformat(s)
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(timezone.utc).replace(tzinfo=None)
    return (stamp - EPOCH).total_seconds() / 3600.0


def format_time(hours: float) -> str:
    """ISO text (UTC, minutes) of hours since 1970-01-01."""
    return (EPOCH + timedelta(hours=float(hours))).strftime("%Y-%m-%dT%H:%M")


def hours_of(var: Any, where: str) -> np.ndarray:
    """Hours since 1970-01-01 of a decoded time coordinate (a DataArray)."""
    values = np.atleast_1d(np.asarray(var.values))
    if values.dtype.kind != "M":
        units = var.attrs.get("units", var.encoding.get("units"))
        raise InputError(f"{where}: time '{var.name}' (units {units!r}) is not decoded as "
                         f"dates; expected CF units such as 'hours since 1970-01-01'")
    return values.astype("datetime64[s]").astype(np.int64) / 3600.0


def parse_levels(levels: str | Mapping[str, float] | None) -> dict[str, float]:
    """``"z=500,r=700"`` (or a mapping) -> ``{"z": 500.0, "r": 700.0}``; missing keys default."""
    out = dict(DEFAULT_LEVELS)
    if levels is None:
        return out
    if isinstance(levels, str):
        items = {}
        for part in filter(None, (p.strip() for p in levels.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise InputError(f"--levels {levels!r}: {part!r} is not VARIABLE=HPA "
                                 f"(e.g. z=500,r=700)")
            items[key.strip()] = value.strip()
        levels = items
    for key, value in levels.items():
        if key not in PRESSURE_VARIABLES:
            raise InputError(f"--levels: unknown variable {key!r}, expected z or r "
                             f"(sst and msl are single-level)")
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"--levels: {key}={value!r} is not a pressure in hPa") from None
        if not 0 < out[key] <= 1100:
            raise InputError(f"--levels: {key}={value} hPa, expected a pressure in (0, 1100]")
    return out


def fill_nan(frame: np.ndarray, fill: float) -> int:
    """Replace non-finite pixels of ``frame`` in place by the nearest finite pixel (``fill``
    when none is finite); returns how many were replaced."""
    bad = ~np.isfinite(frame)
    n = int(bad.sum())
    if n == 0:
        return 0
    if n == frame.size:
        frame[:] = fill
        return n
    from scipy.ndimage import distance_transform_edt

    index = distance_transform_edt(bad, return_distances=False, return_indices=True)
    frame[bad] = frame[tuple(index)][bad]
    return n


def parse_names(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"msl=slp,sst=SST"`` (or a mapping) -> ``{"msl": "slp", "sst": "SST"}``: the files'
    names of layout variables."""
    from mdcli.data.layout import VARIABLES

    if text is None:
        return {}
    items = text.items() if isinstance(text, Mapping) else [
        p.strip().partition("=")[::2] for p in text.split(",") if p.strip()]
    out = {}
    for key, value in items:
        key, value = key.strip(), value.strip()
        if key not in VARIABLES or not value:
            raise InputError(f"--var {text!r}: expected VARIABLE=NAME with VARIABLE one of "
                             f"{', '.join(VARIABLES)} (e.g. msl=slp)")
        out[key] = value
    return out


def parse_single_level(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """``--level``: ``"500"`` (z and r) or ``"z=500,r=700"``: the level of one-level files."""
    if text is None:
        return {}
    if isinstance(text, str) and "=" not in text:
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"--level {text!r}: expected hPa (e.g. 500) or z=500,r=700"
                             ) from None
        text = {v: value for v in PRESSURE_VARIABLES}
    given = parse_levels(text)
    keys = text.keys() if isinstance(text, Mapping) else [
        p.partition("=")[0].strip() for p in text.split(",") if p.strip()]
    return {k: given[k] for k in keys}
