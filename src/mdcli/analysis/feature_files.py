"""Features files (``.npz`` or HDF5): read and checked, rows subsampled, paired sets.

A file holds either ``features`` ``[N, D]`` (one set, optional ``labels``) or paired
``teacher`` and ``student`` ``[N, D]`` arrays (row n of each from the same input), with an
optional ``variable`` ``[N]`` saying which ERA5 variable or group a row belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from mdcli.analysis.alignment import FeatureSet
from mdcli.data.synth_tc import VARIABLES
from mdcli.errors import InputError

FEATURE_SUFFIXES = (".npz", ".h5", ".hdf5")


@dataclass
class FeatureFile:
    """A features file: one set (``features``) or a paired ``teacher``/``student`` set."""

    path: Path
    features: np.ndarray | None = None
    teacher: np.ndarray | None = None
    student: np.ndarray | None = None
    labels: np.ndarray | None = None
    variable: np.ndarray | None = None

    @property
    def paired(self) -> bool:
        return self.teacher is not None


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        if suffix in (".h5", ".hdf5"):
            with h5py.File(path, "r") as handle:
                return {name: handle[name][()] for name in handle
                        if isinstance(handle[name], h5py.Dataset)}
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"--features {path}: unreadable ({type(exc).__name__}: {exc})") from None
    raise InputError(f"--features {path}: unknown file type {suffix!r}, expected .npz, .h5 "
                     f"or .hdf5")


def _as_labels(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind in "SO":
        values = values.astype(str)
    return values


def load_feature_file(path: str | Path) -> FeatureFile:
    """Read and check a features file (``.npz`` or HDF5).

    It holds either ``features`` ``[N, D]`` or paired ``teacher`` and ``student`` ``[N, D]``
    (row n of each from the same input), plus optional ``labels`` ``[N]`` (classes) and
    ``variable`` ``[N]`` (which ERA5 variable or group a row belongs to).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--features {path}: file not found")
    arrays = _read_arrays(path)
    if "teacher" in arrays or "student" in arrays:
        if "teacher" not in arrays or "student" not in arrays:
            raise InputError(f"--features {path}: has only one of 'teacher'/'student', "
                             f"expected both (paired [N, D] arrays)")
        file = FeatureFile(path, teacher=np.asarray(arrays["teacher"], dtype=np.float32),
                           student=np.asarray(arrays["student"], dtype=np.float32))
        main = file.teacher
        if file.student.shape != main.shape:
            raise InputError(f"--features {path}: 'teacher' {main.shape} and 'student' "
                             f"{file.student.shape} differ, expected the same [N, D]")
    elif "features" in arrays:
        file = FeatureFile(path, features=np.asarray(arrays["features"], dtype=np.float32))
        main = file.features
    else:
        raise InputError(f"--features {path}: no 'features' or 'teacher'/'student' arrays "
                         f"(found: {', '.join(sorted(arrays)) or 'none'})")
    if main.ndim != 2 or main.shape[0] < 2:
        raise InputError(f"--features {path}: feature array has shape {main.shape}, expected "
                         f"[N, D] with N >= 2")
    for name in ("teacher", "student", "features"):
        values = getattr(file, name)
        if values is not None and not np.all(np.isfinite(values)):
            raise InputError(f"--features {path}: '{name}' holds NaN or infinite values")
    for name in ("labels", "variable"):
        if name in arrays:
            values = _as_labels(arrays[name]).reshape(-1)
            if values.shape[0] != main.shape[0]:
                raise InputError(f"--features {path}: '{name}' has {values.shape[0]} entries, "
                                 f"expected {main.shape[0]} (one per row)")
            setattr(file, name, values)
    return file


def subsample(n: int, max_samples: int | None, seed: int) -> np.ndarray:
    """Sorted row indices: all ``n`` rows (``max_samples`` None or at least ``n``), or
    ``max_samples`` of them drawn with ``seed``."""
    if max_samples is None or n <= max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))


def _variable_ids(values: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    unique, inverse = np.unique(values.astype(str), return_inverse=True)
    names = [str(v) for v in unique]
    lowered = [name.lower() for name in names]
    if set(lowered) <= set(VARIABLES):  # ERA5 names: keep the seed's order
        names = [names[lowered.index(v)] for v in VARIABLES if v in lowered]
    position = np.array([names.index(str(v)) for v in unique], dtype=np.int64)
    return position[inverse.reshape(-1)], tuple(names)


def file_set(file: FeatureFile, max_samples: int | None, seed: int, name: str = "features"
             ) -> FeatureSet:
    """The paired set of a ``teacher``/``student`` features file (up to ``max_samples`` rows)."""
    rows = subsample(file.teacher.shape[0], max_samples, seed)
    variable, names = (None, ())
    if file.variable is not None:
        variable, names = _variable_ids(file.variable[rows])
    return FeatureSet(name, file.teacher[rows], file.student[rows], variable, names,
                      available=file.teacher.shape[0])
