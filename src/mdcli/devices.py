"""Device selection from ``--device auto|cpu|cuda[:N]``."""

from __future__ import annotations

import re

import torch

from mdcli.errors import InputError


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks CUDA when available; an unavailable CUDA device is an InputError."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not match:
        raise InputError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise InputError(
            f"--device {spec}: CUDA is not available on this machine (use cpu or auto)")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise InputError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
    return torch.device("cuda", index)
