"""Training an evaluation network on images, as NCFM's evaluation does: per-sample DSA
(``augmentation.dsa_strategy``) and, with probability ``mix_p`` per batch, CutMix.

Only the final network is scored (no per-epoch evaluation on the test part), so the loop is
the batches and nothing else. Orders, augmentation and CutMix draw from one generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mdcli.condense.config import AugmentationConfig
from mdcli.condense.dsa import DiffAugment, cutmix
from mdcli.training.optim import OptimConfig, build_optimizer


def fit_image(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
              batch_size: int, optim: OptimConfig, gen: torch.Generator,
              augmentation: AugmentationConfig | None) -> nn.Module:
    """Train ``model`` (on ``x``'s device) with cross-entropy; ``augmentation`` None: none."""
    optimizer = build_optimizer(optim, model)
    aug = augmentation
    augment = DiffAugment(aug.dsa_strategy if aug is not None and aug.dsa else "none",
                          "augmentation.dsa_strategy")
    mix = aug is not None and aug.mixup == "cut" and aug.mix_p > 0
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=gen).split(batch_size):
            batch = batch.to(x.device)
            xb, yb = augment(x[batch], gen), y[batch]
            if mix and float(torch.rand((), generator=gen)) < aug.mix_p:
                xb, ya, yp, lam = cutmix(xb, yb, aug.beta, gen)
                logits = model(xb)
                loss = lam * F.cross_entropy(logits, ya) + (1 - lam) * F.cross_entropy(logits, yp)
            else:
                loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def score_image(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024
                ) -> float:
    """Accuracy of ``model`` (eval mode) on ``x``, ``y``."""
    model.eval()
    hits = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
               for i in range(0, len(x), batch_size))
    return hits / len(x)
