"""Units of the source files and their conversion to the layout's units."""

from __future__ import annotations

import re
from typing import Any

from mdcli.data.importing.common import GRAVITY
from mdcli.errors import InputError
from mdcli.logs import log

# physical = raw * factor + shift, keyed by the file's units (lower case, no spaces, * or ^);
# None (no units attribute) means ERA5's own units
_UNITS: dict[str, dict[str | None, tuple[float, float]]] = {
    "sst": {None: (1.0, -273.15), "k": (1.0, -273.15), "kelvin": (1.0, -273.15),
            "degc": (1.0, 0.0), "c": (1.0, 0.0), "celsius": (1.0, 0.0),
            "degreesc": (1.0, 0.0), "degree_celsius": (1.0, 0.0)},
    "msl": {None: (0.01, 0.0), "pa": (0.01, 0.0), "hpa": (1.0, 0.0), "mb": (1.0, 0.0),
            "mbar": (1.0, 0.0), "millibars": (1.0, 0.0)},
    "z": {None: (1 / GRAVITY, 0.0), "m2s-2": (1 / GRAVITY, 0.0), "m2/s2": (1 / GRAVITY, 0.0),
          "m": (1.0, 0.0), "gpm": (1.0, 0.0)},
    "r": {None: (1.0, 0.0), "%": (1.0, 0.0), "percent": (1.0, 0.0)},
    "ir": {None: (1.0, 0.0), "k": (1.0, 0.0), "kelvin": (1.0, 0.0), "degc": (1.0, 273.15),
           "c": (1.0, 273.15), "celsius": (1.0, 273.15)},
}
_EXPECTED_UNITS = {"sst": "K or degC", "msl": "Pa or hPa", "z": "m**2 s**-2 or m",
                   "r": "%", "ir": "K or degC"}



def _units_key(units: Any) -> str | None:
    if units is None:
        return None
    return re.sub(r"[\s*^.]", "", str(units)).lower()


def conversion(var: str, units: Any, where: str) -> tuple[float, float]:
    table = _UNITS[var]
    key = _units_key(units)
    if key not in table:
        raise InputError(f"{where}: units {units!r}, expected {_EXPECTED_UNITS[var]}")
    if key is None:
        log.debug("%s: no units attribute, assuming ERA5's", where)
    return table[key]
