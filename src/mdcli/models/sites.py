"""The feature sites of the teacher and the student: their names and their real resolutions.

The U-Net fuses ERA5 features at its two lowest resolutions, ``"low"`` and ``"high"``
(twice ``"low"``). The feature keys keep the seed's names, which are the resolutions of the
research model (128x128 frames: low = 16x16, high = 32x32): ``attn16``/``enc16`` at the low
site, ``attn32``/``enc32`` at the high one. At other sizes the names are labels, not sizes
(the tiny 32x32 model fuses at 8x8 and 16x16); :func:`site_resolutions` gives the real ones.
"""

from __future__ import annotations

from typing import Protocol

SITE_SUFFIX = {"low": "16", "high": "32"}  # U-Net site -> suffix of its feature keys
FEATURE_KEYS = ("attn16", "attn32", "enc16", "enc32")


class _Sized(Protocol):
    image_size: int
    ch_mult: list[int]


def low_resolution(cfg: _Sized) -> int:
    """Side of the low fusion site: ``image_size / 2^(len(ch_mult) - 1)``."""
    return cfg.image_size // 2 ** (len(cfg.ch_mult) - 1)


def site_resolutions(cfg: _Sized) -> dict[str, tuple[int, int]]:
    """``{feature key: (h, w)}`` of a model config, e.g. ``attn16: (8, 8)`` for the tiny one."""
    low = low_resolution(cfg)
    side = {"16": low, "32": 2 * low}
    return {key: (side[key[-2:]], side[key[-2:]]) for key in FEATURE_KEYS}


def resolution_label(cfg: _Sized, key: str) -> str:
    """``"8x8"``: the real resolution of feature ``key`` as tables and titles print it."""
    h, w = site_resolutions(cfg)[key]
    return f"{h}x{w}"
