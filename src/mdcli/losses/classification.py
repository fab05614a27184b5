"""Per-sample classification losses: cross-entropy, and MSE to one-hot targets (the NFA papers')."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

LossName = Literal["cross_entropy", "mse"]


def per_sample_loss(name: LossName, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Loss of each sample, shape (N,), from ``logits`` (N, C) and integer ``targets`` (N,).

    ``cross_entropy`` is ``-log softmax(f)_y``; ``mse`` is ``mean_c (f_c - onehot(y)_c)^2``,
    so the batch mean equals ``F.mse_loss(logits, one_hot)``.
    """
    if name == "cross_entropy":
        return F.cross_entropy(logits, targets, reduction="none")
    one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
    return (logits - one_hot).square().mean(dim=1)
