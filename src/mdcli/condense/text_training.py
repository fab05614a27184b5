"""Training and scoring text classifiers on input embeddings (real or synthetic).

Inputs ``x`` are token ids (N, L) int64, turned into embeddings by the model's word
embeddings, or input embeddings (N, L, hidden) float as NCFM learns them. Single-label data
trains with cross-entropy and scores accuracy; multi-label data (0/1 label vectors) trains
with per-class binary cross-entropy and scores micro-F1 (threshold 0.5 on the sigmoid).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from mdcli.models.text import TextClassifier


def as_embeddings(model: TextClassifier, x: torch.Tensor) -> torch.Tensor:
    """Token ids -> input embeddings; embeddings pass through."""
    return model.embed_tokens(x) if x.dtype == torch.long else x


def classification_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for class indices ``(N,)``; mean binary cross-entropy for ``(N, C)``."""
    if y.ndim == 2:
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))
    return F.cross_entropy(logits, y)


def micro_f1(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Micro-averaged F1 of 0/1 matrices (N, C): ``2 TP / (2 TP + FP + FN)`` over all cells."""
    pred, target = pred.bool(), target.bool()
    tp = (pred & target).sum().item()
    wrong = (pred ^ target).sum().item()
    return 2 * tp / (2 * tp + wrong) if tp + wrong else 1.0


@torch.no_grad()
def score_text(model: TextClassifier, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor,
               batch_size: int = 256) -> float:
    """Accuracy (labels (N,)) or micro-F1 (label vectors (N, C)) of ``model`` on ``x``."""
    model.eval()
    logits = torch.cat([model(as_embeddings(model, x[i:i + batch_size]), mask[i:i + batch_size])
                        for i in range(0, len(x), batch_size)])
    if y.ndim == 2:
        return micro_f1(logits > 0, y > 0.5)
    return (logits.argmax(1) == y).float().mean().item()


def fit_text(model: TextClassifier, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, *,
             epochs: int, batch_size: int, lr: float, seed: int, train_encoder: bool,
             on_epoch: Callable[[int, TextClassifier], None] | None = None) -> TextClassifier:
    """Train ``model`` with AdamW for ``epochs`` passes in orders (and dropout) drawn from ``seed``.

    ``train_encoder=False`` trains only the head (the encoder stays frozen, in eval mode).
    ``on_epoch(epoch, model)`` runs after each epoch (checkpoints).
    """
    for p in model.encoder.parameters():
        p.requires_grad_(train_encoder)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        _epochs(model, optimizer, x, mask, y, gen, epochs, batch_size, train_encoder, on_epoch)
    for p in model.encoder.parameters():
        p.requires_grad_(True)
    return model.eval()


def _epochs(model: TextClassifier, optimizer: torch.optim.Optimizer, x: torch.Tensor,
            mask: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epochs: int,
            batch_size: int, train_encoder: bool,
            on_epoch: Callable[[int, TextClassifier], None] | None) -> None:
    for epoch in range(1, epochs + 1):
        model.train()
        if not train_encoder:
            model.encoder.eval()
        for batch in torch.randperm(len(x), generator=gen).split(batch_size):
            batch = batch.to(x.device)
            loss = classification_loss(model(as_embeddings(model, x[batch]), mask[batch]),
                                       y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if on_epoch is not None:
            on_epoch(epoch, model)
