"""Opening NetCDF files with xarray (the `mdcli[netcdf]` extra)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from mdcli.errors import InputError

NETCDF_HINT = "pip install mdcli[netcdf]"


def require_netcdf() -> Any:
    """Import xarray (and check netCDF4) lazily; ``InputError`` with the install hint if absent."""
    try:
        import netCDF4  # noqa: F401
        import xarray
    except ImportError as exc:
        raise InputError(f"`mdcli data import` needs xarray and netCDF4 ({exc.name} is not "
                         f"installed): {NETCDF_HINT}") from None
    return xarray


def open_netcdf(xr: Any, path: Path, option: str, stack: ExitStack) -> Any:
    try:
        ds = xr.open_dataset(path, engine="netcdf4", cache=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"{option} {path}: cannot read as NetCDF ({exc})") from None
    stack.callback(ds.close)
    return ds
