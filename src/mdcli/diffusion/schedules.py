"""Noise schedules: DDPM's linear betas and NCSN's geometric sigma ladder."""

from __future__ import annotations

import math

import torch


def ddpm_betas(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linear beta schedule ``[num_steps]`` (float64), as in Ho et al. (2020)."""
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


def ncsn_sigmas(sigma_begin: float, sigma_end: float, num_sigmas: int) -> torch.Tensor:
    """Geometric sigma ladder from ``sigma_begin`` (largest) down to ``sigma_end``.

    Returns ``[num_sigmas]`` (float64) with a constant ratio between neighbours, as in NCSN.
    """
    return torch.exp(torch.linspace(math.log(sigma_begin), math.log(sigma_end), num_sigmas,
                                    dtype=torch.float64))
