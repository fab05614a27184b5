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
        _explain_times(xr, path, option)
        raise InputError(f"{option} {path}: cannot read as NetCDF ({exc})") from None
    stack.callback(ds.close)
    return ds


def _explain_times(xr: Any, path: Path, option: str) -> None:
    """A time in months or years (no fixed length, so not decodable) gets its own line."""
    try:
        with xr.open_dataset(path, engine="netcdf4", decode_times=False) as raw:
            for name, var in raw.variables.items():
                units = str(var.attrs.get("units", ""))
                if units.split(" ")[0].lower() in ("months", "month", "years", "year") and \
                        "since" in units:
                    raise InputError(f"{option} {path}: time '{name}' is in {units!r}: months "
                                     f"and years have no fixed length, so these are not dates; "
                                     f"re-encode the time as 'hours since ...' or 'days since "
                                     f"...' (e.g. cdo settunits,days)")
    except (OSError, ValueError, RuntimeError):
        return
