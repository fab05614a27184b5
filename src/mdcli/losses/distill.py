"""Distillation terms and their composition (the seed's total loss).

``total = w_score * loss_score + w_distill * loss_distill + w_feat * loss_feat
+ w_causal * lambda_adaptive * causal_loss`` with
``lambda_adaptive = clip(loss_score / (|causal_loss| + eps), lambda_min, lambda_max)``
computed without gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mdcli.config import param
from mdcli.models.teacher_student import FEATURE_KEYS


@dataclass
class DistillLossConfig:
    score: float = param(1.0, ge=0, help="weight of the denoising loss")
    distill: float = param(1.0, ge=0, help="weight of MSE(student output, teacher output)")
    feat: float = param(10.0, ge=0, help="weight of the feature MSE at attn16/32, enc16/32")
    causal: float = param(1.0, ge=0, help="multiplier of lambda_adaptive * causal_loss")
    lambda_min: float = param(0.01, gt=0)
    lambda_max: float = param(100.0, gt=0)
    eps: float = param(1e-8, gt=0)
    feat_keys: list[str] = param(list(FEATURE_KEYS))


def feature_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor],
                 keys: list[str] | tuple[str, ...] = FEATURE_KEYS) -> torch.Tensor:
    """Mean over ``keys`` of the MSE between student and (detached) teacher features."""
    terms = [F.mse_loss(student[k], teacher[k].detach()) for k in keys]
    return torch.stack(terms).mean() if terms else torch.zeros(())


def adaptive_lambda(loss_score: torch.Tensor, causal: torch.Tensor, lo: float = 0.01,
                    hi: float = 100.0, eps: float = 1e-8) -> torch.Tensor:
    """``clip(loss_score / (|causal| + eps), lo, hi)``, without gradient."""
    with torch.no_grad():
        return (loss_score.detach() / (causal.detach().abs() + eps)).clamp(lo, hi)


def distill_loss(loss_score: torch.Tensor, student_out: torch.Tensor, teacher_out: torch.Tensor,
                 student_feats: dict[str, torch.Tensor], teacher_feats: dict[str, torch.Tensor],
                 causal: torch.Tensor, cfg: DistillLossConfig
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The total loss and its terms (``score``, ``distill``, ``feat``, ``causal``, ``lambda``)."""
    loss_distill = F.mse_loss(student_out, teacher_out.detach())
    loss_feat = feature_loss(student_feats, teacher_feats, cfg.feat_keys)
    lam = adaptive_lambda(loss_score, causal, cfg.lambda_min, cfg.lambda_max, cfg.eps)
    total = (cfg.score * loss_score + cfg.distill * loss_distill + cfg.feat * loss_feat
             + cfg.causal * lam * causal)
    terms = {"score": loss_score, "distill": loss_distill, "feat": loss_feat, "causal": causal,
             "lambda": lam}
    return total, {k: v.detach() for k, v in terms.items()}
