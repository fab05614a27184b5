"""The ``mdcli-tc`` HDF5 layout: dataset names, shapes, normalisation and attributes.

One file holds ``/ir`` ``[S, T, H, W]`` (normalised brightness temperature),
``/era5/<variable>`` ``[S, T, H, W]`` for :data:`VARIABLES` (stored = (x - offset) / scale)
and ``/meta/<name>`` ``[S, T, ...]`` datasets with ``units`` and ``description`` attributes.
Both writers (:mod:`mdcli.data.synth_tc` and :mod:`mdcli.data.importing`) use these names;
the layout is documented in ``docs/data.md``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from mdcli.errors import InputError

FORMAT = "mdcli-tc"
FORMAT_VERSION = 1
VARIABLES = ("sst", "msl", "z", "r")
# stored value = (physical - offset) / scale
NORMALISATION = {
    "sst": {"offset": 28.0, "scale": 0.5, "units": "degC", "level": "surface"},
    "msl": {"offset": 1004.0, "scale": 6.0, "units": "hPa", "level": "mean sea level"},
    "z": {"offset": 5870.0, "scale": 20.0, "units": "m", "level": "500 hPa"},
    "r": {"offset": 62.0, "scale": 9.0, "units": "%", "level": "700 hPa"},
}
IR_REFERENCE_K, IR_SCALE_K = 240.0, 60.0  # ir = clip((240 K - Tb) / 60 K, -1, 1)
SAFFIR_SIMPSON_MS = (33.0, 43.0, 50.0, 58.0, 70.0)  # lower bounds of categories 1..5


def category(intensity: np.ndarray) -> np.ndarray:
    """Saffir-Simpson-like category 0..5 of max winds (m/s); 0 = tropical storm or weaker."""
    return np.searchsorted(np.asarray(SAFFIR_SIMPSON_MS), intensity, side="right")


def check_output(out: Path) -> None:
    """``out`` must be a file path whose existing ancestors are folders."""
    if out.is_dir():
        raise InputError(f"--out {out}: is a directory, expected an HDF5 file path")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"--out {out}: {parent} is a file, expected a folder")
            break


def write_meta_datasets(group: h5py.Group,
                        items: dict[str, tuple[np.ndarray, str, str]]) -> None:
    """Write ``/meta`` datasets ``name: (values, units, description)`` with their attributes."""
    for name, (values, units, text) in items.items():
        ds = group.create_dataset(name, data=values)
        ds.attrs["units"], ds.attrs["description"] = units, text


def ir_attrs() -> dict:
    """The attributes of ``/ir``: the layout's fixed brightness-temperature convention."""
    return {"units": "normalised brightness temperature",
            "normalisation": f"clip(({IR_REFERENCE_K:g} K - Tb) / {IR_SCALE_K:g} K, -1, 1): "
                             "cold cloud tops high",
            "offset": IR_REFERENCE_K, "scale": -IR_SCALE_K}


def era5_attrs(offset: float, scale: float, units: str, level: str) -> dict:
    """The attributes of one ``/era5/<variable>`` dataset: stored = (x - offset) / scale."""
    return {"units": units, "level": level, "offset": offset, "scale": scale,
            "normalisation": f"(x - {offset:g} {units}) / {scale:g} {units}"}


def layout_root_attrs() -> dict:
    """The root attributes that identify an ``mdcli-tc`` file."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "variables": list(VARIABLES)}
