"""Differentiable siamese augmentation (DSA) and CutMix, as NCFM uses them, vectorised.

A strategy such as ``color_crop_cutout_flip_scale_rotate`` names the transforms. As in the
reference's ``DiffAug``: ``flip`` (probability 0.5) and ``color`` (brightness, saturation,
contrast) come first, then *one* of the geometric transforms named (``crop``, ``scale``,
``rotate``), drawn per call, then ``cutout`` (half the height and width zeroed). Every
transform takes its parameters per sample as tensors, so a whole batch is augmented in a
few kernels and gradients flow to the images. ``shared=True`` draws one parameter set for
the batch: NCFM matches ``cat([real, syn])`` augmented that way (the siamese part: real and
synthetic images see the same transformation); evaluation training draws them per sample.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mdcli.errors import InputError

KNOWN = ("color", "crop", "cutout", "flip", "scale", "rotate")
GEOMETRIC = ("crop", "scale", "rotate")
PROB_FLIP, RATIO_SCALE, RATIO_ROTATE, RATIO_CROP, RATIO_CUTOUT = 0.5, 1.2, 15.0, 0.125, 0.5
BRIGHTNESS, SATURATION, CONTRAST = 1.0, 2.0, 0.5


def parse_strategy(strategy: str, key: str) -> list[str]:
    """The transform names of ``strategy`` (``''``/``none``: none); ``key`` names it in errors."""
    if strategy.strip().lower() in ("", "none"):
        return []
    names = strategy.lower().split("_")
    bad = [n for n in names if n not in KNOWN]
    if bad:
        raise InputError(f"config key '{key}': unknown transform(s) {bad} in {strategy!r}, "
                         f"expected '_'-joined names from {', '.join(KNOWN)}")
    return names


def _per_sample(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return value.to(x.device, x.dtype).view(-1, *([1] * (x.ndim - 1)))


def flip(x: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Mirror the width of the samples where ``chosen`` (n,) is true."""
    return torch.where(_per_sample(x, chosen.float()) > 0.5, x.flip(3), x)


def brightness(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``x + (u - 0.5) * 1.0`` per sample, ``u`` in [0, 1)."""
    return x + (_per_sample(x, u) - 0.5) * BRIGHTNESS


def saturation(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's deviation from its channel mean by ``2 u``."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_per_sample(x, u) * SATURATION) + mean


def contrast(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Scale each sample's deviation from its overall mean by ``u + 0.5``."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_sample(x, u) + CONTRAST) + mean


def crop(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Translate: ``out[.., i, j] = x[.., i + dy, j + dx]``, zero where that is outside."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy.to(x.device).view(n, 1, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx.to(x.device).view(n, 1, 1)
    inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)
    flat = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(n, 1, h * w)
    picked = x.flatten(2).gather(2, flat.expand(n, x.shape[1], h * w)).view_as(x)
    return picked * inside.to(x.dtype)


def cutout_size(x: torch.Tensor) -> tuple[int, int]:
    return int(x.shape[2] * RATIO_CUTOUT + 0.5), int(x.shape[3] * RATIO_CUTOUT + 0.5)


def cutout(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
    """Zero rows ``[cy - sh//2, cy - sh//2 + sh)`` x columns likewise (clipped), ``(sh, sw)``
    = half the height and width, rounded."""
    n, _, h, w = x.shape
    sh, sw = cutout_size(x)
    top = (cy.to(x.device) - sh // 2).view(n, 1, 1)
    left = (cx.to(x.device) - sw // 2).view(n, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (rows >= top) & (rows < top + sh) & (cols >= left) & (cols < left + sw)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def scale(x: torch.Tensor, sy: torch.Tensor, sx: torch.Tensor) -> torch.Tensor:
    """Sample at ``(sx * u, sy * v)`` in normalised coordinates (``s < 1`` zooms in)."""
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    return _affine(x, theta)


def rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate by ``angle`` radians (per sample) about the image centre."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    return _affine(x, theta)


class DiffAugment:
    """Apply a DSA strategy with parameters from a generator (see the module doc)."""

    def __init__(self, strategy: str, key: str = "augmentation") -> None:
        self.names = parse_strategy(strategy, key)
        self.geometric = [n for n in self.names if n in GEOMETRIC]

    def __bool__(self) -> bool:
        return bool(self.names)

    def __call__(self, x: torch.Tensor, gen: torch.Generator, shared: bool = False
                 ) -> torch.Tensor:
        if not self.names:
            return x
        n, h, w = len(x), x.shape[2], x.shape[3]
        draws = 1 if shared else n

        def uniform() -> torch.Tensor:
            return torch.rand(draws, generator=gen).expand(n)

        def integers(low: int, high: int) -> torch.Tensor:
            return torch.randint(low, high, (draws,), generator=gen).expand(n)

        if "flip" in self.names:
            x = flip(x, uniform() < PROB_FLIP)
        if "color" in self.names:
            x = contrast(saturation(brightness(x, uniform()), uniform()), uniform())
        if self.geometric:
            pick = self.geometric[int(torch.randint(len(self.geometric), (1,), generator=gen))]
            if pick == "crop":
                sy, sx = int(h * RATIO_CROP + 0.5), int(w * RATIO_CROP + 0.5)
                x = crop(x, integers(-sy, sy + 1), integers(-sx, sx + 1))
            elif pick == "scale":
                low = 1.0 / RATIO_SCALE
                x = scale(x, low + uniform() * (RATIO_SCALE - low),
                          low + uniform() * (RATIO_SCALE - low))
            else:
                x = rotate(x, (uniform() - 0.5) * 2 * RATIO_ROTATE / 180 * math.pi)
        if "cutout" in self.names:
            sh, sw = cutout_size(x)
            x = cutout(x, integers(0, h + (1 - sh % 2)), integers(0, w + (1 - sw % 2)))
        return x.contiguous()


def cutmix_box(h: int, w: int, lam: float, gen: torch.Generator) -> tuple[int, int, int, int]:
    """The reference's ``rand_bbox``: a box of side ``sqrt(1 - lam)`` of the image, centred at
    a uniform pixel and clipped; returns ``(top, bottom, left, right)``."""
    ratio = math.sqrt(1.0 - lam)
    ch, cw = int(h * ratio), int(w * ratio)
    cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
    return (max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0),
            min(cx + cw // 2, w))


def cutmix(x: torch.Tensor, y: torch.Tensor, beta: float, gen: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """CutMix a batch with a permutation of itself: returns ``(x_mixed, y, y_partner, lam)``,
    ``lam`` the share of the image that kept its own sample (loss
    ``lam CE(y) + (1 - lam) CE(y_partner)``)."""
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=gen)))
    lam = float(rng.beta(beta, beta))
    perm = torch.randperm(len(x), generator=gen).to(x.device)
    top, bottom, left, right = cutmix_box(x.shape[2], x.shape[3], lam, gen)
    mixed = x.clone()
    mixed[:, :, top:bottom, left:right] = x[perm, :, top:bottom, left:right]
    kept = 1.0 - (bottom - top) * (right - left) / (x.shape[2] * x.shape[3])
    return mixed, y, y[perm], kept
