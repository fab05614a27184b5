"""NetCDF best tracks: IBTrACS v04 (``storm`` x ``date_time``) and CLIMADA's per-storm files
(``time``, with ``max_sustained_wind_unit`` / ``central_pressure_unit`` attributes)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from mdcli.data.importing.netcdf import NETCDF_HINT
from mdcli.data.importing.tracks.model import RawStorm
from mdcli.data.importing.units import track_factor
from mdcli.errors import InputError

IBTRACS_VARIABLES = ("sid", "time", "lat", "lon")


def _open(path: Path) -> Any:
    try:
        import netCDF4
    except ImportError:
        raise InputError(f"--track {path}: a NetCDF track needs netCDF4: {NETCDF_HINT}") from None
    try:
        return netCDF4.Dataset(path)
    except OSError as exc:
        raise InputError(f"--track {path}: cannot read as NetCDF ({exc})") from None


def netcdf_format(path: Path) -> str:
    """``ibtracs-nc`` or ``climada-nc`` from the variables and attributes of ``path``."""
    with _open(path) as ds:
        if all(v in ds.variables for v in IBTRACS_VARIABLES) and "storm" in ds.dimensions:
            return "ibtracs-nc"
        if "max_sustained_wind" in ds.variables and "lat" in ds.variables:
            return "climada-nc"
        have = ", ".join(ds.variables) or "no variables"
    raise InputError(f"--track {path}: a NetCDF file that is not an IBTrACS (sid, time, lat, "
                     f"lon on storm x date_time) or CLIMADA (max_sustained_wind) track; it "
                     f"has {have}")


def read_netcdf_track(path: Path, fmt: str) -> list[RawStorm]:
    import netCDF4

    with _open(path) as ds:
        ds.set_auto_mask(True)
        if fmt == "ibtracs-nc":
            return _ibtracs(path, ds, netCDF4)
        return _climada(path, ds, netCDF4)


def _values(path: Path, ds: Any, name: str) -> np.ndarray:
    if name not in ds.variables:
        raise InputError(f"--track {path}: no variable '{name}'")
    return np.ma.filled(np.ma.asarray(ds[name][:], dtype=np.float64), np.nan)


def _hours(path: Path, ds: Any, netCDF4: Any, name: str = "time") -> np.ndarray:
    var = ds[name]
    raw = np.ma.asarray(var[:], dtype=np.float64)
    try:
        dates = netCDF4.num2date(np.ma.filled(raw, 0.0), var.units, getattr(var, "calendar",
                                                                         "standard"),
                                 only_use_cftime_datetimes=False,
                                 only_use_python_datetimes=True)
    except (AttributeError, ValueError) as exc:
        raise InputError(f"--track {path}: variable '{name}': cannot decode times "
                         f"({exc}); expected units such as 'days since 1858-11-17'") from None
    stamps = np.array(dates, dtype="datetime64[s]").reshape(raw.shape)
    hours = stamps.astype(np.int64) / 3600.0
    return np.where(np.ma.getmaskarray(raw), np.nan, hours)


def _factor(path: Path, ds: Any, name: str, target: str, attr: str | None = None) -> float:
    unit = getattr(ds, attr, None) if attr else getattr(ds[name], "units", None)
    if unit is None:
        raise InputError(f"--track {path}: variable '{name}' has no units (expected e.g. "
                         f"{'kts' if target == 'm/s' else 'mb'})")
    return track_factor(unit, target, f"--track {path}: variable '{name}'")


def _ibtracs(path: Path, ds: Any, netCDF4: Any) -> list[RawStorm]:
    sids = [str(s).strip() for s in netCDF4.chartostring(ds["sid"][:])]
    names = ([str(s).strip() for s in netCDF4.chartostring(ds["name"][:])]
             if "name" in ds.variables else [""] * len(sids))
    seasons = (_values(path, ds, "season") if "season" in ds.variables
               else np.full(len(sids), np.nan))
    hours, lat, lon = _hours(path, ds, netCDF4), _values(path, ds, "lat"), _values(path, ds,
                                                                                   "lon")
    picked = {}
    for kind, target, names_ in (("wind", "m/s", ("wmo_wind", "usa_wind")),
                                 ("pres", "hPa", ("wmo_pres", "usa_pres"))):
        have = [n for n in names_ if n in ds.variables]
        value = np.full(lat.shape, np.nan)
        for n in reversed(have):  # the first name wins where given
            x = _values(path, ds, n) * _factor(path, ds, n, target)
            value = np.where(np.isfinite(x), x, value)
        picked[kind] = value, have[0] if have else kind
    storms = []
    for s, sid in enumerate(sids):
        ok = np.isfinite(hours[s]) & np.isfinite(lat[s]) & np.isfinite(lon[s])
        storm = RawStorm(sid, names[s], None if math.isnan(seasons[s]) else int(seasons[s]),
                         picked["wind"][1], picked["pres"][1])
        storm.points = [(hours[s, k], lat[s, k], lon[s, k], picked["wind"][0][s, k],
                         picked["pres"][0][s, k], -1, f"storm {sid} point {k}")
                        for k in np.flatnonzero(ok)]
        storms.append(storm)
    return storms


def _climada(path: Path, ds: Any, netCDF4: Any) -> list[RawStorm]:
    hours = _hours(path, ds, netCDF4)
    lat, lon = _values(path, ds, "lat"), _values(path, ds, "lon")
    wind = _values(path, ds, "max_sustained_wind") * _factor(
        path, ds, "max_sustained_wind", "m/s", "max_sustained_wind_unit")
    pres = (_values(path, ds, "central_pressure") * _factor(
        path, ds, "central_pressure", "hPa", "central_pressure_unit")
        if "central_pressure" in ds.variables else np.full(lat.shape, np.nan))
    sid = str(getattr(ds, "sid", path.stem))
    season = int(np.datetime64(int(np.nanmin(hours) * 3600), "s").astype(object).year)
    storm = RawStorm(sid, str(getattr(ds, "name", "")), season, "max_sustained_wind",
                     "central_pressure")
    storm.points = [(hours[k], lat[k], lon[k], wind[k], pres[k], -1, f"point {k}")
                    for k in range(len(hours))
                    if np.isfinite(hours[k]) and np.isfinite(lat[k]) and np.isfinite(lon[k])]
    return [storm]
