"""Describe what an mdcli HDF5 file or checkpoint holds (``mdcli data info``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import torch

from mdcli.errors import InputError
from mdcli.storage.checkpoint import load_checkpoint

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def describe(path: str | Path) -> list[str]:
    """Lines naming every dataset/tensor with shape and dtype, and every attribute."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head == HDF5_SIGNATURE:
        return _describe_hdf5(path)
    return _describe_checkpoint(path)


def _describe_hdf5(path: Path) -> list[str]:
    lines = [f"{path}: HDF5 file"]
    try:
        with h5py.File(path, "r") as handle:
            lines += [f"  @{k} = {_short(v)}" for k, v in handle.attrs.items()]

            def visit(name: str, obj: Any) -> None:
                depth = "  " * (name.count("/") + 1)
                if isinstance(obj, h5py.Dataset):
                    lines.append(f"{depth}{name}: {obj.dtype} {tuple(obj.shape)}")
                else:
                    lines.append(f"{depth}{name}/")
                lines.extend(f"{depth}  @{k} = {_short(v)}" for k, v in obj.attrs.items())

            handle.visititems(visit)
    except OSError as exc:
        raise InputError(f"{path}: corrupt or truncated HDF5 file ({exc})") from None
    return lines


def _describe_checkpoint(path: Path) -> list[str]:
    record = load_checkpoint(path)
    lines = [f"{path}: mdcli checkpoint (format version {record['format_version']})"]
    lines += _describe_value(record, "  ")
    return lines


def _describe_value(value: Any, indent: str) -> list[str]:
    lines = []
    for key, item in value.items():
        if isinstance(item, torch.Tensor):
            lines.append(
                f"{indent}{key}: tensor {str(item.dtype).replace('torch.', '')} "
                f"{tuple(item.shape)}")
        elif isinstance(item, dict) and len(item) > 0:
            tensors = [v for v in item.values() if isinstance(v, torch.Tensor)]
            if len(tensors) > 8:
                count = sum(t.numel() for t in tensors)
                lines.append(
                    f"{indent}{key}: {len(item)} entries, {len(tensors)} tensors, "
                    f"{count:,} values")
            else:
                lines.append(f"{indent}{key}:")
                lines += _describe_value(item, indent + "  ")
        else:
            lines.append(f"{indent}{key}: {_short(item)}")
    return lines


def _short(value: Any, limit: int = 100) -> str:
    text = repr(value.tolist() if hasattr(value, "tolist") else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
