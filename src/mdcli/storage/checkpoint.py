"""Checkpoints: one dict of tensors and primitive values, written atomically, loaded safely.

A checkpoint carries ``format`` and ``format_version`` tags. It is loaded with
``torch.load(weights_only=True)``, so a file crafted to run code when unpickled is refused
without running anything.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from mdcli.errors import InputError
from mdcli.storage.atomic import atomic_path

FORMAT = "mdcli-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    path = Path(path)
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(record, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an mdcli checkpoint with ``weights_only=True``; bad files are :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # a class or function the file wants to call
            raise InputError(
                f"checkpoint {path}: refused, it holds objects that would run code when "
                f"loaded (expected a weights-only mdcli checkpoint)"
            ) from None
        raise InputError(f"checkpoint {path}: corrupt or truncated, expected an mdcli "
                         f"checkpoint written by torch.save") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise InputError(
            f"checkpoint {path}: corrupt or truncated ({type(exc).__name__}), "
            f"expected an mdcli checkpoint written by torch.save"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(f"checkpoint {path}: not an mdcli checkpoint (no '{FORMAT}' format tag)")
    version = record.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(
            f"checkpoint {path}: format version {version!r} is newer than this mdcli "
            f"reads ({FORMAT_VERSION}); upgrade mdcli"
        )
    return record
