"""Figures of the forecast evaluation: sampled next frames beside the truth, and the skill
per noise level."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mdcli.storage.atomic import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def plot_frames(columns: dict[str, torch.Tensor], path: Path) -> Path:
    """``path``: one column per entry of ``columns`` (each ``[n, H, W]`` normalised IR, cold
    = dark), one row per window."""
    n = next(iter(columns.values())).shape[0]
    fig, axes = plt.subplots(n, len(columns), figsize=(2.0 * len(columns), 2.0 * n),
                             squeeze=False)
    for j, (title, images) in enumerate(columns.items()):
        for i in range(n):
            ax = axes[i][j]
            ax.imshow(images[i].float().cpu().numpy(), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title.replace("_", " "), fontsize=8)
    return _save(fig, path)


def plot_per_level(per_level: dict[str, dict], path: Path,
                   keys: tuple[str, ...] = ("eps_mse", "clean_mse", "clean_mse_pooled"),
                   floor: dict[str, float] | None = None) -> Path:
    """One panel per figure in ``keys`` against the noise level, one line per model;
    ``floor`` draws persistence as a dashed line on the clean-estimate panels."""
    names = [n for n in per_level if n != "noise_level"]
    levels = per_level["noise_level"]
    labels = {"eps_mse": "noise-prediction MSE", "clean_mse": "clean-estimate MSE",
              "clean_mse_pooled": "clean-estimate MSE, pooled"}
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for name in names:
            ax.plot(levels, per_level[name][key], marker="o", label=name.replace("_", " "))
        if floor and key in floor:
            ax.axhline(floor[key], color="k", ls="--", lw=1, label="persistence")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("noise level (noise / signal)")
        ax.set_ylabel(labels.get(key, key))
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)
