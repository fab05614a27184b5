"""``distilled_data/syn_data_<iter>.pth``: a synthetic set, readable with ``weights_only``.

Keys: ``kind`` (``ncfm-syn``), ``modality``, ``data`` (stored samples: images (n, C, H, W) or
input embeddings (n, L, hidden)), ``labels`` ((n,) class indices or (n, C) label vectors),
``mask`` (text: (n, L)), ``factor``, ``ipc``, ``nclass``, ``classes``, ``iteration`` and
``config`` (the resolved condense config, so ``--evaluate`` can rebuild everything).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mdcli.errors import InputError
from mdcli.storage.checkpoint import load_checkpoint, save_checkpoint

KIND = "ncfm-syn"


def save_syn(path: Path, syn: dict[str, torch.Tensor], **meta: Any) -> Path:
    """Write the synthetic set ``syn`` (``data``, ``labels``, optional ``mask``) and ``meta``."""
    return save_checkpoint(path, {"kind": KIND, **syn, **meta})


def load_syn(path: str | Path) -> dict[str, Any]:
    """Read a ``syn_data`` file, checking its kind and keys."""
    record = load_checkpoint(path)
    missing = [k for k in ("data", "labels", "config", "factor") if k not in record]
    if record.get("kind") != KIND or missing:
        raise InputError(f"{path}: not a condensed data file from 'mdcli condense' "
                         f"(kind {record.get('kind')!r}, expected {KIND!r})")
    return record
