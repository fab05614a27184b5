"""Opening NetCDF files with xarray and finding their time dimension."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from mdcli.data.importing.common import TIME_NAMES
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


def find(names: Sequence[str], have: Any) -> str | None:
    return next((n for n in names if n in have), None)


def with_time_dim(da: Any, coords: Any) -> tuple[Any, str | None]:
    """``da`` and its time dimension; a single time that is only a coordinate (one of
    ``coords``) becomes a length-1 dimension. None when there is no time at all."""
    time_dim = find(TIME_NAMES, da.dims)
    if time_dim is None and find(TIME_NAMES, coords):
        time_dim = find(TIME_NAMES, coords)
        da = da.expand_dims(time_dim)
    return da, time_dim


def expand(paths: Sequence[str | Path], option: str, suffix: str) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob(f"*{suffix}"))
            if not found:
                raise InputError(f"{option} {p}: folder holds no {suffix} files")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{option} {p}: file not found")
    return out


def open_netcdf(xr: Any, path: Path, option: str, stack: ExitStack) -> Any:
    try:
        ds = xr.open_dataset(path, engine="netcdf4", cache=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"{option} {path}: cannot read as NetCDF ({exc})") from None
    stack.callback(ds.close)
    return ds
