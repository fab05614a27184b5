"""HDF5 feature caches keyed by what produced them.

A cache file holds named arrays plus provenance attributes (checkpoint hash, data spec,
layer, sample count, seed, mdcli version). Its key is a hash of the provenance: a file whose
key differs, or that is truncated or corrupt (checked by per-dataset CRC32), is rebuilt,
never trusted. Writes are atomic, and concurrent writers are serialised by a lock file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mdcli import __version__
from mdcli.storage.atomic import atomic_path

CACHE_FORMAT = "mdcli-cache"
log = logging.getLogger("mdcli")


def cache_key(provenance: dict[str, Any]) -> str:
    """A stable SHA-256 of the provenance mapping (JSON with sorted keys)."""
    text = json.dumps(provenance, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (used to key caches on a checkpoint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).view(np.uint8).reshape(-1))


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path.lock`` (serialises writers across processes)."""
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_cache(path: str | Path, key: str) -> dict[str, np.ndarray] | None:
    """The cached arrays if ``path`` is a complete, intact cache for ``key``, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as handle:
            if handle.attrs.get("format") != CACHE_FORMAT or handle.attrs.get("key") != key:
                return None
            arrays = {}
            for name, dataset in handle.items():
                data = dataset[()]
                if _crc(data) != int(dataset.attrs["crc32"]):
                    log.warning("cache %s: dataset %s fails its checksum; rebuilding", path, name)
                    return None
                arrays[name] = data
            return arrays
    except (OSError, KeyError, ValueError) as exc:
        log.warning("cache %s is unreadable (%s); rebuilding", path, type(exc).__name__)
        return None


def write_cache(
    path: str | Path, arrays: dict[str, np.ndarray], provenance: dict[str, Any]
) -> None:
    """Write ``arrays`` with their provenance to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.attrs["format"] = CACHE_FORMAT
            handle.attrs["key"] = cache_key(provenance)
            handle.attrs["mdcli_version"] = __version__
            for name, value in provenance.items():
                handle.attrs[name] = (
                    value if isinstance(value, (int, float, str))
                    else json.dumps(value, default=str)
                )
            for name, array in arrays.items():
                array = np.asarray(array)
                dataset = handle.create_dataset(name, data=array)
                dataset.attrs["crc32"] = _crc(array)


def load_or_build(path: str | Path, provenance: dict[str, Any],
                  build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return the cached arrays for ``provenance``, building and caching them if needed."""
    key = cache_key(provenance)
    with file_lock(path):
        cached = read_cache(path, key)
        if cached is not None:
            log.info("reusing feature cache %s", path)
            return cached
        arrays = build()
        write_cache(path, arrays, provenance)
        return {name: np.asarray(a) for name, a in arrays.items()}
