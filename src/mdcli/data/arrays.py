"""Classification arrays: scikit-learn's bundled digits, or a user's ``.npz`` / HDF5 file.

A user file holds ``x`` (N, ...) features or images and ``y`` (N,) integer labels 0..C-1
(the key names are configurable). :func:`load_split` splits them into train and validation
parts with a seeded permutation and normalises with statistics of the training part only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mdcli.config import param
from mdcli.errors import InputError

NPZ_SUFFIXES = (".npz",)
HDF5_SUFFIXES = (".h5", ".hdf5")


@dataclass
class DataConfig:
    """The ``data`` section of a classifier config."""

    source: str = param("digits", help="'digits' or a .npz / .h5 / .hdf5 file with x and y")
    x_key: str = param("x", help="name of the feature array in the file")
    y_key: str = param("y", help="name of the label array in the file")
    val_fraction: float = param(0.2, ge=0.0, lt=1.0, help="share of samples held out")
    split_seed: int = param(0, help="seed of the train/validation permutation")
    normalize: Literal["none", "max", "standard"] = param(
        "max", help="max: divide by max |x| of the train part; standard: per-feature z-score")
    max_samples: int = param(0, ge=0, help="use only the first N samples of the file (0: all)")


@dataclass
class ArraySplit:
    """Train and validation tensors: ``x_*`` float32 (N, ...), ``y_*`` int64 (N,)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits as images (1797, 1, 8, 8) in [0, 16] and labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images[:, None].astype(np.float32), bunch.target.astype(np.int64)


def _read_file(path: Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    suffix = path.suffix.lower()
    if suffix in NPZ_SUFFIXES:
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [k for k in (x_key, y_key) if k not in archive.files]
                if missing:
                    raise InputError(f"data file {path}: no array '{missing[0]}' "
                                     f"(found: {', '.join(archive.files) or 'none'})")
                return archive[x_key], archive[y_key]
        except (OSError, ValueError) as exc:
            raise InputError(f"data file {path}: cannot read as .npz ({exc})") from None
    if suffix in HDF5_SUFFIXES:
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                missing = [k for k in (x_key, y_key) if k not in handle]
                if missing:
                    raise InputError(f"data file {path}: no dataset '{missing[0]}' "
                                     f"(found: {', '.join(handle.keys()) or 'none'})")
                return handle[x_key][()], handle[y_key][()]
        except OSError as exc:
            raise InputError(f"data file {path}: cannot read as HDF5 ({exc})") from None
    raise InputError(f"config key 'data.source': {path} has suffix {suffix!r}, expected 'digits', "
                     f"a .npz file or an HDF5 file (.h5, .hdf5)")


def load_arrays(source: str, x_key: str = "x", y_key: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Features (N, ...) float32 and labels (N,) int64 from ``'digits'`` or a file, checked."""
    if source == "digits":
        return load_digits_arrays()
    path = Path(source)
    if not path.is_file():
        raise InputError(f"config key 'data.source': file not found: {source} "
                         f"(expected 'digits' or a .npz / HDF5 file)")
    x, y = _read_file(path, x_key, y_key)
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise InputError(f"data file {path}: '{x_key}' must be a numeric array (N, features...), "
                         f"got dtype {x.dtype} shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise InputError(f"data file {path}: '{y_key}' must be a 1-D array of {len(x)} labels, "
                         f"got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.number) or np.any(y != np.round(y)) or np.any(y < 0):
        raise InputError(f"data file {path}: '{y_key}' must hold integer class labels 0..C-1")
    if len(x) < 2:
        raise InputError(f"data file {path}: needs at least 2 samples, got {len(x)}")
    return x.astype(np.float32), y.astype(np.int64)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) index arrays from a permutation of ``range(n)`` seeded by ``seed``."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(val_fraction * n))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _normalise(x_train: np.ndarray, x_val: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    if how == "max":
        scale = float(np.abs(x_train).max()) or 1.0
        return x_train / scale, x_val / scale
    if how == "standard":
        mean = x_train.mean(axis=0, keepdims=True)
        std = x_train.std(axis=0, keepdims=True)
        std[std == 0] = 1.0
        return (x_train - mean) / std, (x_val - mean) / std
    return x_train, x_val


def load_split(cfg: DataConfig) -> ArraySplit:
    """Load ``cfg.source``, split it with ``cfg.split_seed`` and normalise it."""
    x, y = load_arrays(cfg.source, cfg.x_key, cfg.y_key)
    if cfg.max_samples:
        x, y = x[: cfg.max_samples], y[: cfg.max_samples]
    train, val = split_indices(len(x), cfg.val_fraction, cfg.split_seed)
    x_train, x_val = _normalise(x[train], x[val], cfg.normalize)
    return ArraySplit(torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32)),
                      torch.from_numpy(y[train]),
                      torch.from_numpy(np.ascontiguousarray(x_val, dtype=np.float32)),
                      torch.from_numpy(y[val]), int(y.max()) + 1)
