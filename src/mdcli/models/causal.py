"""The student's per-sample causal mask, and the internal-sensitivity diagnostic.

:class:`CausalMaskNet` is the seed's ``CausalMaskNet``: a small network scores the channels
of each sample's features (average over positions -> ``1x1`` conv -> ReLU -> ``1x1`` conv,
one set of weights per ERA5 variable), the top ``mask_ratio`` share of channels *of that
sample* is kept as *causal* and the rest is *non-causal* (detached). Differences from the
seed's code:

* the seed's top-k mask is built by ``scatter_`` of constant ones, so its mask network never
  receives a gradient; here the hard mask has a straight-through gradient: forward value
  the 0/1 mask, gradient that of ``sigmoid(score)``;
* the mask network reads the features detached: its gradient trains the scores only;
* the seed masks only at its "32" site (in its student and, without the loss, its teacher);
  mdcli masks the student at both fusion sites and never the teacher;
* the seed adds its ``CausalEffectMatrix`` "enhancement" to the causal part before fusing;
  mdcli fuses ``causal + non_causal`` (forward value: the features themselves).

:func:`internal_sensitivity` measures a diagnostic ``[V, 5]`` matrix: for each ERA5
variable, how much the network's internal features (the variable-fused encoder features
``enc16``/``enc32`` and attention features ``attn16``/``attn32``) and its output change when
that variable's features (the student: its *predicted* encoder features; the teacher: its
ERA5 input) are zeroed, ``||f(v = 0) - f|| / ||f||`` averaged over the batch. It is a
sensitivity of the network to an off-distribution edit, not a causal effect of the variable
on the storm (zero deletes the storm's own imprint; the output column is the sensitivity of
the network output, e.g. the noise estimate). :class:`InternalSensitivity` keeps an
exponential moving average of it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mdcli.models.era5_encoder import fuse_variables

SENSITIVITY_TARGETS = ("enc16", "enc32", "attn16", "attn32", "output")


class CausalMaskNet(nn.Module):
    """Per-sample top-k channel mask of ``[B, V, C, h, w]`` features.

    Parameters
    ----------
    num_vars, channels : V and C.
    mask_ratio : share of channels kept as causal in every sample (``keep`` of C).
    hidden : width of the scoring MLP (default C, as the seed's 384 -> 384).
    """

    def __init__(self, num_vars: int, channels: int, mask_ratio: float = 0.7,
                 hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or channels
        self.num_vars, self.channels = num_vars, channels
        self.keep = max(1, min(channels, int(round(mask_ratio * channels))))
        self.net = nn.Sequential(
            nn.Conv1d(num_vars * channels, num_vars * hidden, 1, groups=num_vars), nn.ReLU(),
            nn.Conv1d(num_vars * hidden, num_vars * channels, 1, groups=num_vars))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Channel scores (logits) ``[B, V, C]`` of each sample, from its pooled features."""
        pooled = x.detach().mean(dim=(-2, -1)).flatten(1).unsqueeze(-1)  # [B, V*C, 1]
        return self.net(pooled).view(x.shape[0], self.num_vars, self.channels)

    def mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hard, straight_through)`` masks ``[B, V, C]``: ``hard`` is 1 on the ``keep``
        highest-scoring channels of each sample and variable; ``straight_through`` has the
        same value and the gradient of ``sigmoid(score)``."""
        score = self.scores(x)
        hard = torch.zeros_like(score).scatter_(-1, score.topk(self.keep, dim=-1).indices, 1.0)
        soft = torch.sigmoid(score)
        return hard, hard + soft - soft.detach()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(causal + non_causal, causal, non_causal)``, each shaped like ``x``.

        ``causal = x * mask`` carries gradient to ``x`` (kept channels) and to the scores;
        ``non_causal = x * (1 - mask)`` is detached. Their sum equals ``x``.
        """
        hard, st = self.mask(x)
        causal = x * st[..., None, None]
        non_causal = (x * (1.0 - hard)[..., None, None]).detach()
        return causal + non_causal, causal, non_causal


class InternalSensitivity(nn.Module):
    """EMA of :func:`internal_sensitivity` ``[V, len(SENSITIVITY_TARGETS)]``, saved with the
    model."""

    def __init__(self, num_vars: int) -> None:
        super().__init__()
        self.register_buffer("effects", torch.zeros(num_vars, len(SENSITIVITY_TARGETS)))
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
        return sensitivity_dict(self.effects, variables)


def sensitivity_dict(matrix: torch.Tensor, variables: tuple[str, ...]
                     ) -> dict[str, dict[str, float]]:
    """``{variable: {target: sensitivity}}`` from a ``[V, 5]`` matrix."""
    return {var: dict(zip(SENSITIVITY_TARGETS, map(float, row), strict=True))
            for var, row in zip(variables, matrix.detach().cpu(), strict=True)}


def sensitivity_targets(output: torch.Tensor, feats: dict[str, torch.Tensor],
                        weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """The five targets: variable-fused features and the output, each ``[B, ...]``."""
    targets = {key: fuse_variables(feats[key], weights) for key in SENSITIVITY_TARGETS[:4]}
    targets["output"] = output
    return targets


@torch.no_grad()
def internal_sensitivity(run: Callable[[int | None], tuple[torch.Tensor, dict]],
                         weights: torch.Tensor, num_vars: int) -> torch.Tensor:
    """Measure the ``[V, 5]`` matrix.

    ``run(v)`` runs the network with variable ``v`` zeroed (``run(None)``: unchanged) and
    returns ``(output, feats)``.
    """
    base = sensitivity_targets(*run(None), weights)
    rows = []
    for var in range(num_vars):
        changed = sensitivity_targets(*run(var), weights)
        row = []
        for key in SENSITIVITY_TARGETS:
            delta = (changed[key] - base[key]).flatten(1).norm(dim=1)
            size = base[key].flatten(1).norm(dim=1).clamp_min(1e-12)
            row.append((delta / size).mean())
        rows.append(torch.stack(row))
    return torch.stack(rows)
