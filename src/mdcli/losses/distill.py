"""Distillation terms and their composition (the seed's total loss).

``total = w_score * loss_score + w_distill * loss_distill + w_feat * loss_feat
+ w_causal * lambda_adaptive * causal_loss`` with ``lambda_adaptive`` the clipped ratio
``loss_score / causal_loss`` computed without gradient (:func:`adaptive_lambda`).

``loss.reduction`` says how each term reduces its elements:

* ``mean``: per-element means. ``loss_score`` as the objective gives it (DDPM: MSE over
  pixels), ``loss_distill = MSE(student output, teacher output)``, ``loss_feat`` = the mean
  over the feature sites of each site's MSE over ``[B, V, C, h, w]``,
  ``lambda = clip(loss_score / (|causal| + eps))``.
* ``seed``: the reductions of the seed's code (``losses/dsm.py``), so weights mean what the
  seed's mean (``loss.feat: 10`` is its ``10 * loss_feat_encoder``): ``loss_score`` and
  ``loss_distill`` are ``0.5 * sum over pixels`` per sample, averaged over the batch (its
  ``pow_ = x^2 / 2``); ``loss_feat`` is the *sum* over sites and variables of the
  per-variable MSEs (16 terms for all four sites); ``lambda = clip(loss_score / (4 (|causal| +
  eps)))``. The seed's code writes ``loss_score / 4 * (|causal| + eps)``, which by operator
  precedence is a product, not the ratio its documentation describes; mdcli computes the
  ratio. The seed's score is in noise (eps) space; with ``diffusion.prediction: v`` the same
  reduction applies to the v-loss. The seed's causal loss is a sum over its four variables
  (one site) where mdcli's is a mean over sites and variables: this changes
  ``lambda * causal`` only where the clip binds, since unclipped
  ``lambda * causal = loss_score / 4`` in value and ``(loss_score / 4) * grad log causal``
  in gradient.

At research size (5 x 128 x 128 targets) the seed's weights are far from mdcli's per-element
ones: ``10 * loss_feat_encoder`` relative to a pixel-summed score equals ``loss.feat`` ~0.004
in means (~0.3 at the tiny 1 x 32 x 32).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F

from mdcli.config import param
from mdcli.losses.causal_mi import info_nce
from mdcli.models.sites import FEATURE_KEYS

Reduction = Literal["mean", "seed"]
SEED_LAMBDA_DIVISOR = 4.0  # the "/4" of the seed's lambda (see the module docstring)


@dataclass
class DistillLossConfig:
    reduction: Reduction = param(
        "mean", help="mean: per-element means; seed: the seed code's sums (score and distill "
                     "0.5 x summed over pixels, feature MSEs summed over sites and variables)")
    score: float = param(1.0, ge=0, help="weight of the denoising loss")
    distill: float = param(1.0, ge=0, help="weight of the error student output vs teacher's")
    feat: float = param(10.0, ge=0, help="weight of the feature MSE at attn16/32, enc16/32")
    causal: float = param(1.0, ge=0, help="multiplier of lambda_adaptive * causal_loss")
    lambda_min: float = param(0.01, gt=0)
    lambda_max: float = param(100.0, gt=0)
    eps: float = param(1e-8, gt=0)
    temperature: float = param(0.1, gt=0, help="InfoNCE temperature of the causal loss")
    feat_keys: list[str] = param(list(FEATURE_KEYS))


def causal_loss_fn(cfg: DistillLossConfig):
    """The student's causal loss (``Student(cfg, causal_loss=...)``): InfoNCE at
    ``cfg.temperature``, averaged over sites and variables."""
    return partial(info_nce, temperature=cfg.temperature)


def squared_error(a: torch.Tensor, b: torch.Tensor, reduction: Reduction = "mean"
                  ) -> torch.Tensor:
    """``mean``: MSE; ``seed``: ``0.5 * sum over non-batch axes``, averaged over the batch."""
    if reduction == "mean":
        return F.mse_loss(a, b)
    return 0.5 * (a - b).pow(2).flatten(1).sum(dim=1).mean()


def feature_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor],
                 keys: list[str] | tuple[str, ...] = FEATURE_KEYS, reduction: Reduction = "mean"
                 ) -> torch.Tensor:
    """Feature MSE of ``[B, V, C, h, w]`` features against the (detached) teacher's.

    ``mean``: the mean over ``keys`` of each site's MSE; ``seed``: the sum over ``keys`` and
    variables of the per-variable MSEs.
    """
    if not keys:
        return torch.zeros(())
    if reduction == "mean":
        return torch.stack([F.mse_loss(student[k], teacher[k].detach()) for k in keys]).mean()
    per_var = [(student[k] - teacher[k].detach()).pow(2).transpose(0, 1).flatten(1).mean(1)
               for k in keys]
    return torch.cat(per_var).sum()


def adaptive_lambda(loss_score: torch.Tensor, causal: torch.Tensor, lo: float = 0.01,
                    hi: float = 100.0, eps: float = 1e-8, divisor: float = 1.0) -> torch.Tensor:
    """``clip(loss_score / (divisor * (|causal| + eps)), lo, hi)``, without gradient."""
    with torch.no_grad():
        return (loss_score.detach() / (divisor * (causal.detach().abs() + eps))).clamp(lo, hi)


def distill_loss(loss_score: torch.Tensor, student_out: torch.Tensor, teacher_out: torch.Tensor,
                 student_feats: dict[str, torch.Tensor], teacher_feats: dict[str, torch.Tensor],
                 causal: torch.Tensor, cfg: DistillLossConfig, score_summed: bool = False
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The total loss and its terms (``score``, ``distill``, ``feat``, ``causal``, ``lambda``).

    ``loss_score`` is the batch mean of the objective's loss: a per-element mean (DDPM's
    prediction loss) or, with ``score_summed``, already ``0.5 * sum over pixels`` (NCSN's
    annealed DSM loss); it is rescaled to ``cfg.reduction`` by ``0.5 * pixels per sample``.
    """
    half_pixels = 0.5 * student_out[0].numel()
    if cfg.reduction == "seed" and not score_summed:
        loss_score = loss_score * half_pixels
    elif cfg.reduction == "mean" and score_summed:
        loss_score = loss_score / half_pixels
    loss_distill = squared_error(student_out, teacher_out.detach(), cfg.reduction)
    loss_feat = feature_loss(student_feats, teacher_feats, cfg.feat_keys, cfg.reduction)
    divisor = SEED_LAMBDA_DIVISOR if cfg.reduction == "seed" else 1.0
    lam = adaptive_lambda(loss_score, causal, cfg.lambda_min, cfg.lambda_max, cfg.eps, divisor)
    total = (cfg.score * loss_score + cfg.distill * loss_distill + cfg.feat * loss_feat
             + cfg.causal * lam * causal)
    terms = {"score": loss_score, "distill": loss_distill, "feat": loss_feat, "causal": causal,
             "lambda": lam}
    return total, {k: v.detach() for k, v in terms.items()}
