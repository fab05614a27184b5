"""Causal feature decomposition and the causal effect matrix.

:class:`CausalDecomposition` keeps the top ``mask_ratio`` of channels (ranked by a learnable
score) as *causal* features, through which gradients flow, and detaches the rest
(*non-causal*). The hard top-k mask is made learnable with a straight-through estimator: its
forward value is the 0/1 mask, its gradient that of ``sigmoid(score)``.

The causal effect matrix ``[V, 5]`` holds, for each ERA5 variable, its direct effect on five
targets: the variable-fused encoder features at 16 and 32 (``enc16``, ``enc32``), the fused
attention features (``attn16``, ``attn32``) and the network output. An effect is measured by
counterfactual intervention: the variable is replaced by a neutral value (zero, the
normalised climatological mean) and the relative L2 change of each target,
``||f(do(v = 0)) - f|| / ||f||``, is averaged over the batch. :class:`CausalEffectMatrix`
keeps an exponential moving average of these measurements.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from mdcli.models.era5_encoder import fuse_variables

EFFECT_TARGETS = ("enc16", "enc32", "attn16", "attn32", "output")


class CausalDecomposition(nn.Module):
    """Split ``[..., C, h, w]`` features into causal (top-k channels) and non-causal parts."""

    def __init__(self, channels: int, mask_ratio: float = 0.7) -> None:
        super().__init__()
        self.keep = max(1, min(channels, int(round(mask_ratio * channels))))
        self.score = nn.Parameter(0.01 * torch.randn(channels))

    def hard_mask(self) -> torch.Tensor:
        """``[C]`` with ones on the ``keep`` highest-scoring channels."""
        mask = torch.zeros_like(self.score)
        mask[torch.topk(self.score.detach(), self.keep).indices] = 1.0
        return mask

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(causal + non_causal, causal, non_causal)``, each shaped like ``x``."""
        hard = self.hard_mask()
        soft = torch.sigmoid(self.score)
        mask = (hard + soft - soft.detach()).view(-1, 1, 1)
        causal = x * mask
        non_causal = (x * (1.0 - hard).view(-1, 1, 1)).detach()
        return causal + non_causal, causal, non_causal


class CausalEffectMatrix(nn.Module):
    """EMA of counterfactual effects ``[V, len(EFFECT_TARGETS)]``, saved with the model."""

    def __init__(self, num_vars: int) -> None:
        super().__init__()
        self.register_buffer("effects", torch.zeros(num_vars, len(EFFECT_TARGETS)))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, measured: torch.Tensor, decay: float) -> None:
        """Blend a new measurement in (the first one is taken as is)."""
        measured = measured.to(self.effects)
        if int(self.updates) == 0:
            self.effects.copy_(measured)
        else:
            self.effects.mul_(decay).add_(measured, alpha=1.0 - decay)
        self.updates += 1

    def as_dict(self, variables: tuple[str, ...]) -> dict[str, dict[str, float]]:
        return effects_dict(self.effects, variables)


def effects_dict(matrix: torch.Tensor, variables: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``{variable: {target: effect}}`` from a ``[V, 5]`` matrix."""
    return {var: dict(zip(EFFECT_TARGETS, map(float, row), strict=True))
            for var, row in zip(variables, matrix.detach().cpu(), strict=True)}


def effect_targets(output: torch.Tensor, feats: dict[str, torch.Tensor],
                   weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """The five targets: variable-fused features and the output, each ``[B, ...]``."""
    targets = {key: fuse_variables(feats[key], weights) for key in EFFECT_TARGETS[:4]}
    targets["output"] = output
    return targets


@torch.no_grad()
def counterfactual_effects(run: Callable[[int | None], tuple[torch.Tensor, dict]],
                           weights: torch.Tensor, num_vars: int) -> torch.Tensor:
    """Measure the ``[V, 5]`` matrix.

    ``run(v)`` runs the network with variable ``v`` replaced by its neutral value
    (``run(None)``: no intervention) and returns ``(output, feats)``.
    """
    base = effect_targets(*run(None), weights)
    rows = []
    for var in range(num_vars):
        changed = effect_targets(*run(var), weights)
        row = []
        for key in EFFECT_TARGETS:
            delta = (changed[key] - base[key]).flatten(1).norm(dim=1)
            size = base[key].flatten(1).norm(dim=1).clamp_min(1e-12)
            row.append((delta / size).mean())
        rows.append(torch.stack(row))
    return torch.stack(rows)


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks from 0, ties sharing their mean rank."""
    x = x.detach().double().flatten().cpu()
    ranks = torch.empty_like(x)
    ranks[torch.argsort(x, stable=True)] = torch.arange(len(x), dtype=torch.float64)
    for value in torch.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def effect_consistency(learned: torch.Tensor, truth: torch.Tensor) -> float:
    """Spearman rank correlation of two effect vectors (NaN when either is constant)."""
    a, b = _ranks(learned), _ranks(truth)
    a, b = a - a.mean(), b - b.mean()
    denom = float(a.norm() * b.norm())
    return float((a * b).sum()) / denom if denom > 0 else math.nan
