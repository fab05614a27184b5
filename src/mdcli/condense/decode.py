"""Multi-formation: one stored image holds ``factor x factor`` smaller images.

A stored image (C, H, W) is cut into ``factor**2`` tiles (C, H/factor, W/factor), each
upsampled back to (H, W) when the synthetic set is used; labels repeat ``factor**2`` times.
NCFM's ``decode_type`` chooses how a class's stored images are decoded: ``single`` (the
above), ``multi`` (with every factor 1..factor, concatenated) or ``bound`` (the first images
with the largest factor, then smaller ones, so at most ``bound`` decoded images per class).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mdcli.errors import InputError


def check_factor(shape: tuple[int, ...], factor: int, decode_type: str = "single") -> None:
    """``factor`` (with ``multi``/``bound`` every factor up to it) must divide the image's
    height and width."""
    for f in ([factor] if decode_type == "single" else range(2, factor + 1)):
        if f > 1 and (len(shape) != 3 or shape[1] % f or shape[2] % f):
            raise InputError(f"config key 'condense.factor': {f} must divide the height and "
                             f"width of image samples (decode_type {decode_type}), got sample "
                             f"shape {list(shape)}")


def decode(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(n, C, H, W) stored images -> (n * factor**2, C, H, W) training images (tile order: rows)."""
    if factor == 1:
        return x
    n, c, h, w = x.shape
    tiles = x.reshape(n, c, factor, h // factor, factor, w // factor)
    tiles = tiles.permute(0, 2, 4, 1, 3, 5).reshape(n * factor * factor, c, h // factor,
                                                    w // factor)
    return F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)


def encode(images: torch.Tensor, factor: int) -> torch.Tensor:
    """(n * factor**2, C, H, W) images -> (n, C, H, W): each downsampled into one tile."""
    if factor == 1:
        return images
    m, c, h, w = images.shape
    small = F.interpolate(images, size=(h // factor, w // factor), mode="area")
    n = m // (factor * factor)
    small = small.reshape(n, factor, factor, c, h // factor, w // factor)
    return small.permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def decode_labels(labels: torch.Tensor, factor: int) -> torch.Tensor:
    """Labels of the stored images repeated for their ``factor**2`` decoded images."""
    return labels.repeat_interleave(factor * factor, dim=0)


def decode_class(x: torch.Tensor, labels: torch.Tensor, factor: int, decode_type: str = "single",
                 bound: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """One class's stored images and labels -> decoded images and labels (``decode_type``)."""
    if factor == 1:
        return x, labels
    if decode_type == "single":
        return decode(x, factor), decode_labels(labels, factor)
    if decode_type == "multi":
        parts = [(decode(x, f), decode_labels(labels, f)) for f in range(1, factor + 1)]
    else:  # bound: the reference's decode_zoom_bound
        parts, start, budget, room = [], 0, len(x), bound - len(x)
        for f in range(factor, 0, -1):
            count = min(room // (f * f), budget) if f > 1 else budget
            parts.append((decode(x[start:start + count], f),
                          decode_labels(labels[start:start + count], f)))
            start, budget = start + count, budget - count
            room = bound - sum(len(p[0]) for p in parts) - budget
            if budget == 0:
                break
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def decode_set(x: torch.Tensor, labels: torch.Tensor, nclass: int, factor: int,
               decode_type: str = "single", bound: int = 128
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole stored set (``ipc`` images per class, class-major) decoded class by class."""
    ipc = len(x) // nclass
    parts = [decode_class(x[k * ipc:(k + 1) * ipc], labels[k * ipc:(k + 1) * ipc], factor,
                          decode_type, bound) for k in range(nclass)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
