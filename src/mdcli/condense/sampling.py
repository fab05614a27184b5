"""Frequencies ``t`` for the CF loss: Gaussian, or from NCFM's adversarial sampling network.

The sampling network maps fresh Gaussian noise ``z (num_freqs, d)`` to
``t = scale * (z + g(z))`` with an MLP ``g`` whose last layer starts at zero, so it starts
as the plain Gaussian and every one of the ``num_freqs`` rows is its own frequency (``g``
acts row by row on distinct noise rows). It is trained to *maximise* the CF discrepancy.
"""

from __future__ import annotations

import torch
from torch import nn


def gaussian_frequencies(num_freqs: int, dim: int, scale: float,
                         generator: torch.Generator) -> torch.Tensor:
    """``scale * z`` with ``z ~ N(0, I)`` of shape (num_freqs, dim), from ``generator``."""
    return scale * torch.randn(num_freqs, dim, generator=generator)


class SamplingNet(nn.Module):
    """``t = scale * (z + g(z))`` for noise ``z (k, dim)``; ``g`` is a 2-layer MLP."""

    def __init__(self, dim: int, scale: float = 1.0, hidden: int = 0) -> None:
        super().__init__()
        hidden = hidden or dim
        self.scale = scale
        self.g = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, dim))
        nn.init.zeros_(self.g[2].weight)
        nn.init.zeros_(self.g[2].bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z (k, dim)`` -> frequencies ``(k, dim)``."""
        return self.scale * (z + self.g(z))
