"""Denoising losses of the two diffusion objectives, one value per sample."""

from __future__ import annotations

import torch


def prediction_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DDPM's simple loss: the mean squared error between the network output and its target
    (the noise, ``v`` or the clean sample, per the objective's ``prediction``).

    Parameters
    ----------
    output, target : ``[B, ...]``

    Returns
    -------
    ``[B]``, the MSE of each sample over its pixels.
    """
    return (output - target).pow(2).flatten(1).mean(dim=1)


def annealed_dsm_loss(score: torch.Tensor, x_noisy: torch.Tensor, x: torch.Tensor,
                      sigma: torch.Tensor, anneal_power: float = 2.0) -> torch.Tensor:
    """NCSN's annealed denoising score matching loss.

    ``0.5 * sum_pixels (score + (x_noisy - x) / sigma^2)^2 * sigma^anneal_power``.

    Parameters
    ----------
    score : ``[B, ...]`` estimated score at ``x_noisy``.
    x_noisy, x : ``[B, ...]`` perturbed and clean samples.
    sigma : ``[B]`` noise scale of each sample.

    Returns
    -------
    ``[B]``
    """
    shape = (-1,) + (1,) * (x.ndim - 1)
    s = sigma.view(shape).to(x.dtype)
    target = -(x_noisy - x) / s**2
    return 0.5 * (score - target).pow(2).flatten(1).sum(dim=1) * sigma.to(x.dtype) ** anneal_power
