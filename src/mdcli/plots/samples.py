"""Figures of the distillation: sampled next frames beside the truth, loss per noise level."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mdcli.diffusion.samplers import sample  # noqa: E402
from mdcli.storage.atomic import atomic_path  # noqa: E402


@torch.no_grad()
def draw_next_frames(models: dict[str, torch.nn.Module], cond: torch.Tensor, era5: torch.Tensor,
                     objective, sampling, device, seed: int) -> dict[str, torch.Tensor]:
    """One sample of the predicted frames per window and model (the teacher also sees ERA5).

    Every model starts from the same noise (a generator seeded with ``seed``).
    """
    out = {}
    shape = (cond.shape[0], objective_frames(models), *cond.shape[-2:])
    for name, model in models.items():
        model.eval()
        if name == "teacher":
            def net(x, s, model=model):
                return model(x, s, cond, era5)
        else:
            def net(x, s, model=model):
                return model(x, s, cond)
        out[name] = sample(net, objective, shape, sampling.method,
                           torch.Generator().manual_seed(seed), device, sampling.steps,
                           sampling.eta, sampling.clip, sampling.n_steps_each,
                           sampling.step_lr, description=f"sampling {name}").cpu()
    return out


def objective_frames(models: dict[str, torch.nn.Module]) -> int:
    return next(iter(models.values())).cfg.pred_frames


def plot_samples(models: dict[str, torch.nn.Module], loader, objective, sampling, device,
                 path: Path, seed: int = 0) -> Path:
    """``path``: rows = held-out windows; columns = last condition frame, true next frame,
    then each model's sampled next frame."""
    cond, era5, target = next(iter(loader))
    n = min(sampling.num_samples, cond.shape[0])
    cond, era5, target = cond[:n].to(device), era5[:n].to(device), target[:n]
    frames = draw_next_frames(models, cond, era5, objective, sampling, device, seed)
    columns = {"last condition": cond[:, -1].cpu(), "truth": target[:, 0]}
    columns.update({name: value[:, 0] for name, value in frames.items()})
    fig, axes = plt.subplots(n, len(columns), figsize=(2.0 * len(columns), 2.0 * n),
                             squeeze=False)
    for j, (title, images) in enumerate(columns.items()):
        for i in range(n):
            ax = axes[i][j]
            ax.imshow(images[i].numpy(), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title.replace("_", " "), fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def plot_dsm_per_level(per_level: dict[str, list[float]], path: Path) -> Path:
    """Held-out denoising loss against the noise level, one line per model."""
    levels = per_level["noise_level"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, values in per_level.items():
        if name != "noise_level":
            ax.plot(levels, values, marker="o", label=name.replace("_", " "))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise level")
    ax.set_ylabel("held-out denoising loss")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
