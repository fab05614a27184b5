"""Units of the source files, parsed with pint's CF-aware registry (cf_xarray), converted to
the layout's units and checked against plausible ranges."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from mdcli.data.importing.common import GRAVITY
from mdcli.data.importing.netcdf import NETCDF_HINT
from mdcli.errors import InputError

# names used by best tracks and old files that pint reads otherwise (mb = millibarn, kn = kN)
ALIASES = {"mb": "hPa", "millibars": "hPa", "kn": "knot", "kt": "knot", "kts": "knot",
           "knots": "knot", "gpm": "m", "celsius": "degC", "c": "degC", "deg c": "degC",
           "kelvin": "K"}
TARGET = {"sst": "degC", "msl": "hPa", "z": "m", "r": "percent", "ir": "K"}
ERA5_UNITS = {"sst": "K", "msl": "Pa", "z": "m**2 s**-2", "r": "%", "ir": "K"}
# plausible physical values in the layout's units: a unit mix-up lands outside
PLAUSIBLE = {"sst": (-5.0, 45.0), "msl": (850.0, 1090.0), "z": (-1000.0, 36000.0),
             "r": (0.0, 110.0), "ir": (150.0, 345.0)}
EXPECTED = {"sst": "K, degC or deg_C", "msl": "Pa or hPa", "z": "m**2 s**-2 or m",
            "r": "% or 1 (a fraction)", "ir": "K or degC"}


@cache
def registry() -> Any:
    """pint's unit registry with CF unit strings (``deg_C``, ``m2 s-2``, ``degrees_north``)."""
    try:
        from cf_xarray.units import units
    except ImportError as exc:
        raise InputError(f"`mdcli data import` parses units with pint and cf_xarray "
                         f"({exc.name} is not installed): {NETCDF_HINT}") from None
    return units


def linear(units: str, target: str, where: str, expected: str) -> tuple[float, float]:
    """``(factor, shift)`` with ``target = source * factor + shift``; geopotential
    (m**2 s**-2) to geopotential height (m) divides by g."""
    ureg = registry()
    text = ALIASES.get(str(units).strip().lower(), str(units).strip())
    try:
        unit = ureg.Unit(text)
        if unit.dimensionality == ureg.Unit("m**2/s**2").dimensionality and target == "m":
            return float(ureg.Quantity(1.0, unit).to("m**2/s**2").magnitude) / GRAVITY, 0.0
        shift = float(ureg.Quantity(0.0, unit).to(target).magnitude)
        factor = float(ureg.Quantity(1.0, unit).to(target).magnitude) - shift
    except Exception:  # pint raises many types for unknown or incompatible units
        raise InputError(f"{where}: units {units!r}, expected {expected}") from None
    return factor, shift


def conversion(var: str, units: Any, where: str) -> tuple[float, float]:
    """``(factor, shift)`` from a variable's ``units`` attribute (ERA5's units when absent:
    the plausibility check then guards the guess) to the layout's units."""
    return linear(ERA5_UNITS[var] if units is None else units, TARGET[var], where,
                  EXPECTED[var])


def standard_height(level_hpa: float) -> float:
    """Geopotential height (m) of the pressure level in the ICAO standard atmosphere
    (troposphere formula; above 226 hPa it only has to be roughly right)."""
    return 44330.8 * (1.0 - (level_hpa / 1013.25) ** 0.190263)


def plausible_range(var: str, level_hpa: float | None = None) -> tuple[float, float]:
    """The plausible values of ``var`` in layout units; for ``z`` on a known pressure level,
    the standard atmosphere's height ± (25 % + 700 m), which tells metres from geopotential
    (a factor g) and decametres."""
    if var == "z" and level_hpa is not None:
        h = standard_height(level_hpa)
        return h - 0.25 * abs(h) - 700.0, h + 0.25 * abs(h) + 700.0
    return PLAUSIBLE[var]


def check_plausible(var: str, values: np.ndarray, units: Any, where: str,
                    level_hpa: float | None = None) -> None:
    """``values`` (layout units) must lie in the variable's plausible range (for ``z`` on the
    level ``level_hpa``); relative humidity that never exceeds 1.5 % is a fraction read as
    percent."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    lo, hi = plausible_range(var, level_hpa)
    seen_lo, seen_hi = float(finite.min()), float(finite.max())
    said = "no units attribute, read as ERA5's " + ERA5_UNITS[var] if units is None else \
        f"units {units!r}"
    if seen_lo < lo or seen_hi > hi or (var == "r" and seen_hi < 1.5):
        raise InputError(f"{where} ({said}): values {seen_lo:.4g}..{seen_hi:.4g} "
                         f"{TARGET[var]} after conversion, expected {lo:g}..{hi:g} "
                         f"{TARGET[var]}: a unit mix-up? set the units attribute "
                         f"({EXPECTED[var]})")


def track_factor(units: str, target: str, where: str) -> float:
    """The factor from a track column's units (kts, mb, m/s, hPa) to m/s or hPa."""
    factor, _ = linear(units, target, where, "a speed (kts, m/s)" if target == "m/s"
                       else "a pressure (mb, hPa)")
    return factor
