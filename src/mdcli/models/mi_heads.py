"""Projection heads of the student's causal (InfoNCE) loss.

The loss itself is :func:`mdcli.losses.causal_mi.info_nce`; these heads map its two inputs
into one ``proj_dim``-wide space:

* ``anchor(site, causal)``: the causal features ``[B, V, C, h, w]`` of one fusion site
  average-pooled to ``4 x 4``, ``Linear(C*16, D) -> ReLU -> Linear(D, D)`` -> ``[B, V, D]``
  (one head per site, shared by the variables, as the seed shares its ``causal_proj``);
* ``target(target)``: the clean target frames ``[B, P, H, W]`` average-pooled to ``8 x 8``,
  ``Linear(P*64, D) -> ReLU -> Linear(D, D)`` -> ``[B, D]``.

Both keep a coarse map of where things are, which the seed's heads (``1x1``/``3x3`` conv,
then global average pooling) lose: what tells one window's target from another's in a batch
is mostly where the storm is and how its cloud is laid out. With global pooling on the
anchor side the InfoNCE loss of the tiny student stayed at ``log B`` for ~250 steps; with the
``4 x 4`` map it fell to about half of it within 60.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TARGET_POOL = 8
ANCHOR_POOL = 4


class MIProjection(nn.Module):
    """The anchor heads (one per fusion site) and the target head."""

    def __init__(self, feat_channels: int, target_frames: int, proj_dim: int,
                 sites: tuple[str, ...] = ("low", "high")) -> None:
        super().__init__()
        self.anchors = nn.ModuleDict({
            site: nn.Sequential(nn.Linear(feat_channels * ANCHOR_POOL**2, proj_dim), nn.ReLU(),
                                nn.Linear(proj_dim, proj_dim)) for site in sites})
        self.target_head = nn.Sequential(nn.Linear(target_frames * TARGET_POOL**2, proj_dim),
                                         nn.ReLU(), nn.Linear(proj_dim, proj_dim))

    def anchor(self, site: str, causal: torch.Tensor) -> torch.Tensor:
        """``[B, V, C, h, w] -> [B, V, D]``."""
        b, v = causal.shape[:2]
        pooled = F.adaptive_avg_pool2d(causal.flatten(0, 1), ANCHOR_POOL).view(b, v, -1)
        return self.anchors[site](pooled)

    def target(self, target: torch.Tensor) -> torch.Tensor:
        """``[B, P, H, W] -> [B, D]``."""
        return self.target_head(F.adaptive_avg_pool2d(target, TARGET_POOL).flatten(1))
