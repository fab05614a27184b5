"""Figures of a condensation: the loss curve and a grid of the synthetic images."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mdcli.storage.atomic import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def loss_curve(history: list[dict], path: Path) -> Path:
    """Matching (and calibration) loss per iteration."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    its = [h["iteration"] for h in history]
    ax.plot(its, [h["match_loss"] for h in history], label="matching loss (scaled)")
    if any(h["calib_loss"] for h in history):
        ax.plot(its, [h["calib_loss"] for h in history], label="calibration loss")
    ax.set_xlabel("iteration")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def image_grid(images: torch.Tensor, nclass: int, path: Path, classes: list[str]) -> Path:
    """Stored synthetic images (nclass * ipc, C, H, W), one row per class."""
    ipc = len(images) // nclass
    fig, axes = plt.subplots(nclass, ipc, figsize=(0.9 * ipc + 0.6, 0.9 * nclass),
                             squeeze=False)
    lo, hi = images.min().item(), images.max().item()
    for i, ax in enumerate(axes.flat):
        img = images[i].detach().float()
        shown = img[0] if img.shape[0] == 1 else ((img - lo) / (hi - lo + 1e-12)).permute(1, 2, 0)
        ax.imshow(shown.numpy(), cmap="gray_r" if img.shape[0] == 1 else None,
                  vmin=lo if img.shape[0] == 1 else None, vmax=hi if img.shape[0] == 1 else None)
        ax.set_xticks([])
        ax.set_yticks([])
        if i % ipc == 0:
            ax.set_ylabel(classes[i // ipc], rotation=0, labelpad=10)
    return _save(fig, path)
