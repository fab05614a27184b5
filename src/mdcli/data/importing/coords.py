"""CF coordinate detection (cf_xarray: axis, standard_name, units, then names) for time,
latitude, longitude and the pressure level, with the level's units converted to hPa."""

from __future__ import annotations

from typing import Any

import numpy as np

from mdcli.data.importing.units import linear, registry
from mdcli.errors import InputError

AXES = {"time": "T", "latitude": "Y", "longitude": "X", "vertical": "Z"}
NAMES = {"time": ("valid_time", "time"), "latitude": ("latitude", "lat"),
         "longitude": ("longitude", "lon"),
         "vertical": ("pressure_level", "level", "isobaricInhPa", "plev", "lev")}


def _is_pressure(var: Any) -> bool:
    units = var.attrs.get("units")
    if units is None:
        return False
    try:
        unit = registry().Unit(str(units).replace("mb", "hPa"))
    except Exception:  # pint: unknown units are not a pressure
        return False
    return unit.dimensionality == registry().Unit("Pa").dimensionality


def find_coord(obj: Any, kind: str, dims: Any = None) -> str | None:
    """The coordinate of ``obj`` (DataArray or Dataset) that is its ``kind``; one that is a
    dimension of ``dims`` (default ``obj.dims``) first, then a scalar one. None if absent."""
    registry()  # cf_xarray installed (its accessor ``.cf`` registers on import)
    import cf_xarray  # noqa: F401

    dims = tuple(obj.dims if dims is None else dims)
    guessed = obj.cf.guess_coord_axis()
    have = obj.variables if hasattr(obj, "data_vars") else obj.coords
    names = [*guessed.cf.coordinates.get(kind, []), *guessed.cf.axes.get(AXES[kind], []),
             *(n for n in NAMES[kind] if n in have)]
    if kind == "vertical":
        names += [str(n) for n in have if n not in names and _is_pressure(have[n])]
    names = [n for n in dict.fromkeys(names) if n in have]
    on_dims = [n for n in names if set(have[n].dims) & set(dims)]
    scalar = [n for n in names if have[n].ndim == 0]
    return (on_dims or scalar or [None])[0]


def promote_coords(ds: Any) -> Any:
    """Data variables that are latitudes or longitudes (``degrees_north``/``degrees_east``
    units or the standard names), as older files store them, become coordinates."""
    units = {"degrees_north", "degree_north", "degrees_n", "degrees_east", "degree_east",
             "degrees_e"}
    found = [n for n, v in ds.data_vars.items() if v.ndim <= 2 and (
        str(v.attrs.get("units", "")).lower() in units
        or v.attrs.get("standard_name") in ("latitude", "longitude"))]
    return ds.set_coords(found) if found else ds


def dim_of(obj: Any, name: str, where: str) -> str:
    """The dimension a 1-D coordinate ``name`` runs along."""
    dims = obj[name].dims
    if len(dims) != 1:
        raise InputError(f"{where}: coordinate '{name}' has dimensions {dims}, expected one")
    return dims[0]


def require_values(obj: Any, kind: str, where: str) -> None:
    """A latitude/longitude dimension without coordinate values is an error, never 0..n-1."""
    if find_coord(obj, kind) is not None:
        return
    for dim in obj.dims:
        if dim in NAMES[kind] and dim not in obj.coords:
            raise InputError(f"{where}: dimension '{dim}' has no coordinate values (expected a "
                             f"'{dim}' variable in degrees); without them positions are unknown")


def levels_hpa(var: Any, where: str) -> np.ndarray:
    """Pressure-level values in hPa from the coordinate's units (hPa assumed when absent, and
    then values above 1100 are an error)."""
    values = np.atleast_1d(np.asarray(var.values, dtype=np.float64))
    units = var.attrs.get("units")
    if units is None:
        if values.max() > 1100:
            raise InputError(f"{where}: level '{var.name}' has values up to {values.max():g} "
                             f"and no units attribute; expected hPa or units 'Pa'")
        return values
    factor, _ = linear(units, "hPa", f"{where}: level '{var.name}'", "a pressure (Pa, hPa)")
    return values * factor
