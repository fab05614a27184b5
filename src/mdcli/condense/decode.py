"""Multi-formation: one stored image holds ``factor x factor`` smaller images.

A stored image (C, H, W) is cut into ``factor**2`` tiles (C, H/factor, W/factor), each
upsampled back to (H, W) when the synthetic set is used; labels repeat ``factor**2`` times.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mdcli.errors import InputError


def check_factor(shape: tuple[int, ...], factor: int) -> None:
    """``factor`` must divide the image's height and width."""
    if factor == 1:
        return
    if len(shape) != 3 or shape[1] % factor or shape[2] % factor:
        raise InputError(f"config key 'condense.factor': {factor} must divide the height and "
                         f"width of image samples, got sample shape {list(shape)}")


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
