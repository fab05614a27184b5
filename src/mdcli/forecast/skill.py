"""Forecast skill: the one-step clean estimate per noise level, and storm summaries of
sampled frames, beside two forecasts that use no network: persistence (the last condition
frame copied forward) and extrapolation (that frame moved on by the storm's last displacement,
the floor a satellite-only forecast of the track must beat).

Every model sees the same windows and the same noise draws. MSEs are on normalised IR;
"pooled" averages ``pool x pool`` pixel blocks first (the storm scale, where ERA5 acts).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mdcli.forecast.config import EvalConfig
from mdcli.forecast.forecasters import Forecaster
from mdcli.forecast.heldout import HeldOut
from mdcli.forecast.storms import storm_summaries


def pooled(x: torch.Tensor, pool: int) -> torch.Tensor:
    """``[..., H, W]`` averaged over ``pool x pool`` blocks."""
    if pool <= 1:
        return x
    out = F.avg_pool2d(x.reshape(-1, 1, *x.shape[-2:]), pool)
    return out.reshape(*x.shape[:-2], *out.shape[-2:])


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-window MSE ``[N]``."""
    return (a - b).pow(2).flatten(1).mean(1).double()


@torch.no_grad()
def denoising_skill(models: dict[str, Forecaster], held: HeldOut, objective, cfg: EvalConfig,
                    device: torch.device, clip: float | None = None) -> dict[str, dict]:
    """Per model and noise level: the noise-prediction MSE (``eps_mse``, comparable across
    eps/v/x0 networks: their output converted to a noise estimate) and the clean-estimate MSE
    (full and pooled).

    Returns ``{name: {"noise_level", "eps_mse", "clean_mse", "clean_mse_pooled"}}`` (lists
    over the ``cfg.noise_levels`` levels, low to high noise) plus the mean ``eps_mse_mean``
    and, over the ``cfg.top_levels`` highest levels, ``clean_mse_top`` and
    ``clean_mse_pooled_top``.
    """
    levels = objective.eval_indices(cfg.noise_levels).tolist()
    generator = torch.Generator().manual_seed(cfg.seed)
    sums = {name: torch.zeros(3, len(levels), dtype=torch.float64) for name in models}
    for rows in held.batches(cfg.batch_size):
        target = held.target[rows].to(device)
        for j, level in enumerate(levels):
            idx = torch.full((target.shape[0],), level, dtype=torch.long, device=device)
            noise = torch.randn(target.shape, generator=generator).to(device)
            x_noisy, sigma = objective.perturb(target, idx, noise)
            for name, model in models.items():
                out = model(x_noisy, sigma, held, rows).float()
                x0 = objective.denoise(out, x_noisy, idx)
                x0 = x0.clamp(-clip, clip) if clip is not None else x0
                sums[name][:, j] += torch.stack([
                    _mse(objective.eps_from(out, x_noisy, idx), noise).sum(),
                    _mse(x0, target).sum(),
                    _mse(pooled(x0, cfg.pool), pooled(target, cfg.pool)).sum()]).cpu()
    top = slice(max(0, len(levels) - cfg.top_levels), len(levels))
    noise_levels = objective.levels[levels].tolist()
    result = {}
    for name, total in sums.items():
        mean = total / len(held)
        result[name] = {"noise_level": noise_levels, "eps_mse": mean[0].tolist(),
                        "clean_mse": mean[1].tolist(), "clean_mse_pooled": mean[2].tolist(),
                        "eps_mse_mean": float(mean[0].mean()),
                        "clean_mse_top": float(mean[1, top].mean()),
                        "clean_mse_pooled_top": float(mean[2, top].mean())}
    return result


def persistence(held: HeldOut) -> torch.Tensor:
    """The persistence forecast ``[N, P, H, W]``: the last condition frame, repeated."""
    return held.cond[:, -1:].expand_as(held.target)


def shift_frames(frames: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` frames moved by ``shift [N, 2]`` (rows, cols, pixels; may be
    fractional): bilinear interpolation, edge values continued past the border."""
    n, _, h, w = frames.shape
    rows = torch.arange(h, dtype=frames.dtype).view(1, h, 1) - shift[:, 0].view(n, 1, 1)
    cols = torch.arange(w, dtype=frames.dtype).view(1, 1, w) - shift[:, 1].view(n, 1, 1)
    # grid_sample's normalised coordinates (align_corners=True: -1 and 1 are pixel centres)
    grid = torch.stack([(2 * cols / (w - 1) - 1).expand(n, h, w),
                        (2 * rows / (h - 1) - 1).expand(n, h, w)], dim=-1)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border",
                         align_corners=True)


def extrapolation(held: HeldOut) -> torch.Tensor | None:
    """The extrapolation forecast ``[N, P, H, W]``: predicted frame ``p`` (1-based) is the last
    condition frame moved by ``p`` times the displacement of the extracted storm centre
    between the last two condition frames (no fitted parameter; None with one condition
    frame)."""
    if held.cond.shape[1] < 2:
        return None
    last = held.cond[:, -2:].float()
    n = last.shape[0]
    centre = torch.from_numpy(storm_summaries(last.flatten(0, 1).numpy())["center"])
    step = (centre.view(n, 2, 2)[:, 1] - centre.view(n, 2, 2)[:, 0]).float()
    frames = [shift_frames(last[:, 1:], p * step) for p in range(1, held.target.shape[1] + 1)]
    return torch.cat(frames, dim=1)


def baselines(held: HeldOut) -> dict[str, torch.Tensor]:
    """The forecasts that use no network: ``persistence`` and (K >= 2) ``extrapolation``."""
    out = {"persistence": persistence(held)}
    moved = extrapolation(held)
    if moved is not None:
        out["extrapolation"] = moved
    return out


def baseline_skill(frames: torch.Tensor, held: HeldOut, pool: int) -> dict[str, float]:
    """Clean-estimate figures of a network-free forecast (the same at every noise level)."""
    full = float(_mse(frames, held.target).mean())
    coarse = float(_mse(pooled(frames, pool), pooled(held.target, pool)).mean())
    return {"clean_mse_top": full, "clean_mse_pooled_top": coarse}


def true_centers(held: HeldOut) -> torch.Tensor:
    """``[N, P, 2]``: the generator's centres, or the extractor's on the true frames."""
    if held.center is not None:
        return held.center
    flat = held.target.flatten(0, 1).numpy()
    return torch.from_numpy(storm_summaries(flat)["center"]).view(*held.target.shape[:2], 2)


def summaries_of(frames: torch.Tensor, pixel_km: float | None) -> dict[str, np.ndarray]:
    """Storm summaries of ``[N, P, H, W]`` frames, each ``[N, P]`` (centre ``[N, P, 2]``)."""
    n, p = frames.shape[:2]
    out = storm_summaries(frames.flatten(0, 1).float().numpy(), pixel_km)
    return {k: np.asarray(v).reshape(n, p, *np.shape(v)[1:]) for k, v in out.items()}


def sample_skill(frames: torch.Tensor, held: HeldOut, pool: int) -> dict[str, float]:
    """Skill of sampled (or persistence) frames ``[N, P, H, W]``, or of an ensemble
    ``[M, N, P, H, W]``, against the truth: pixel and pooled MSE, storm-centre error (pixels,
    km), cloud-top coldness error (K) and cloudy-area error (km^2, or pixels without a pixel
    size), each a mean absolute error over windows, predicted frames and members; and
    ``track_error_ensemble_px``, the error of the members' mean centre (the ensemble-mean
    track; equal to ``track_error_px`` for one member)."""
    members = frames.float().cpu()
    members = members if members.dim() == 5 else members[None]
    m, n = members.shape[:2]
    truth = summaries_of(held.target, held.pixel_km)
    got = {k: v.reshape(m, n, *v.shape[1:])  # every member's frames in one batched pass
           for k, v in summaries_of(members.flatten(0, 1), held.pixel_km).items()}
    true_centre = true_centers(held).numpy()
    result: dict[str, Any] = {
        "pixel_mse": float((members - held.target).double().pow(2).mean()),
        "pooled_mse": float((pooled(members, pool) - pooled(held.target, pool)
                             ).double().pow(2).mean()),
        "track_error_px": float(np.linalg.norm(got["center"] - true_centre, axis=-1).mean()),
        "track_error_ensemble_px": float(np.linalg.norm(got["center"].mean(0) - true_centre,
                                                        axis=-1).mean()),
        "coldness_error_k": float(np.abs(got["coldness"] - truth["coldness"]).mean()),
        "cloudy_area_error": float(np.abs(got["cloudy_area"] - truth["cloudy_area"]).mean()),
    }
    if held.pixel_km is not None:
        result["track_error_km"] = result["track_error_px"] * held.pixel_km
    return result


def extractor_skill(held: HeldOut) -> dict[str, float]:
    """The centre extractor's own error on the true frames (synthetic data only)."""
    if held.center is None:
        return {}
    got = summaries_of(held.target, held.pixel_km)["center"]
    track = float(np.linalg.norm(got - held.center.numpy(), axis=-1).mean())
    out = {"track_error_px": track}
    if held.pixel_km is not None:
        out["track_error_km"] = track * held.pixel_km
    return out
