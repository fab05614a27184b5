"""Conditional mutual-information loss between causal features and the target.

Causal and non-causal features (pooled over space, per variable) and the target frames are
projected to ``proj_dim`` (128) dimensions. With ``s_c`` and ``s_n`` the cosine similarities
of the causal and non-causal projections to the target projection, the loss is

``BCE(s_c / tau, 1) + w_nc * BCE(s_n / tau, 0) + mean(relu(margin - (s_c - s_n)))``

(BCE on logits): causal features are pushed towards the target, non-causal ones away from
it, and the margin term keeps the two apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TARGET_POOL = 8


class ConditionalMILoss(nn.Module):
    """Projection heads plus the loss above.

    Parameters
    ----------
    feat_channels : C of the ``[B, V, C, h, w]`` features.
    target_frames : P of the ``[B, P, H, W]`` target.
    """

    def __init__(self, feat_channels: int, target_frames: int, proj_dim: int = 128,
                 noncausal_weight: float = 0.5, margin: float = 0.2, temperature: float = 0.1
                 ) -> None:
        super().__init__()
        self.proj_causal = nn.Linear(feat_channels, proj_dim)
        self.proj_noncausal = nn.Linear(feat_channels, proj_dim)
        self.proj_target = nn.Linear(target_frames * TARGET_POOL**2, proj_dim)
        self.noncausal_weight, self.margin, self.temperature = noncausal_weight, margin, temperature

    def similarities(self, causal: torch.Tensor, non_causal: torch.Tensor, target: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine similarities ``[B, V]`` of causal and non-causal projections to the target."""
        t = F.adaptive_avg_pool2d(target, TARGET_POOL).flatten(1)
        t = self.proj_target(t).unsqueeze(1)
        c = self.proj_causal(causal.mean(dim=(-2, -1)))
        n = self.proj_noncausal(non_causal.mean(dim=(-2, -1)))
        return F.cosine_similarity(c, t, dim=-1), F.cosine_similarity(n, t, dim=-1)

    def forward(self, causal: torch.Tensor, non_causal: torch.Tensor, target: torch.Tensor
                ) -> torch.Tensor:
        s_c, s_n = self.similarities(causal, non_causal, target)
        tau = self.temperature
        pos = F.binary_cross_entropy_with_logits(s_c / tau, torch.ones_like(s_c))
        neg = F.binary_cross_entropy_with_logits(s_n / tau, torch.zeros_like(s_n))
        margin = F.relu(self.margin - (s_c - s_n)).mean()
        return pos + self.noncausal_weight * neg + margin
